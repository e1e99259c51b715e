// The scenario table the rollout analysis is measured by (docs/analysis.md): 2,000 seeded
// rollouts per scenario through the real RolloutController, printed as a markdown table with
// each scenario's target and whether it is met. Targets are printed, not asserted (the table is
// the evidence, and a miss is for a person to read); the exit status is non-zero only when a run
// is malformed (impossible state or window) or the program crashes.
//
// Modelling choices:
//  - Policy: issue_policy() (steps [1, 5, 10, 25, 50, 100], max_error_rate 1%,
//    consecutive_successes 2, the rest default) plus max_p99_latency 300ms, the same for every
//    row (rows without latencies have p99 unknown, which the controller skips).
//  - Traffic: 2,000 requests per interval; the canary gets exactly round(2,000 x weight) of
//    them, stable the rest; stable at 0.5% errors unless stated. Errors are binomial per
//    request, or in sessions: users make sessions of N requests (all in one interval, on one
//    version) and a failing session fails every request, each session failing with the stated
//    rate, so the mean is that rate but errors come in bursts of N. Healthy clustered: both
//    versions' sessions fail with 0.5%. "5% of users": 5% of the canary's sessions fail (mean
//    5%), stable's with 0.5%, same session length.
//  - Shared blips: each interval, with probability 3%, both versions at 10%. Shared outage:
//    both at 5% throughout, or in intervals 3-6 only. Diurnal: total traffic 2,000 x (1 + 9 x
//    (1 - cos(2 pi (interval + phase) / 48)) / 2), 2,000 at the trough to 20,000 at the peak,
//    phase = rollout index mod 48 (rollouts start evenly over the day); both versions' error
//    rate 0.25% + 0.75% x (load - 1) / 9 (0.25% at the trough, 1% at the peak).
//  - Latency: per-window p99 of every canary (and stable) request's lognormal draw (sigma
//    0.5), no shortcut: stable's true p99 225ms (0.75 x the limit); the canary's the same, or
//    450ms (2 x stable, 1.5 x the limit); the controller reads the number of requests over the
//    limit (binomial with the lognormal's tail share).
//  - A/A halves: the lower half of the hash space holds half of each version's full sessions,
//    and the failing sessions fall among them at random.
//  - Low traffic: the canary gets 5 requests per interval whatever its weight, stable 5 x
//    (100% - weight) / weight; healthy = 0.5%, failing = 100% errors.
//  - A rollout still progressing after 300 intervals is held/undecided. "Rolled back before
//    the weight passes 25%": rolled back without ever going above 25% (at 1, 5, 10 or 25%).
//    Median intervals are over the rollouts with that outcome; the target "median time to
//    promotion <= 30" counts all rollouts, so at least half must be promoted within 30.
//  - Seeds: FNV-1a of the scenario's name, so rows are reproducible and independent of order.
// Usage: rollout_scenarios [rollouts] (default 2,000).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "routing/rollout.hpp"
#include "tests/sim/sim_traffic.hpp"

namespace {

using namespace std::chrono_literals;
using gp::sim::Conditions;
using gp::sim::Environment;
using gp::sim::Latency;
using gp::sim::Outcome;
using gp::sim::Rng;
using gp::sim::Rollback;
using gp::sim::Tick;
using gp::sim::Traffic;

constexpr int kDefaultRollouts = 2000;
constexpr int kMaxIntervals = 300;  // still progressing after this: held/undecided

// Shared conditions.
Environment blips(double share_of_intervals, double error_rate) {
  return [=](const Tick&, Rng& rng) {
    return std::bernoulli_distribution(share_of_intervals)(rng) ? Conditions{1, error_rate}
                                                                : Conditions{};
  };
}

Environment outage(double error_rate, int first_interval, int last_interval) {
  return [=](const Tick& t, Rng&) {
    return t.interval >= first_interval && t.interval <= last_interval ? Conditions{1, error_rate}
                                                                       : Conditions{};
  };
}

Environment diurnal(int period, double peak_load, double trough_error, double peak_error) {
  return [=](const Tick& t, Rng&) {
    const double phase = 2 * std::numbers::pi * (t.interval + t.rollout % period) / period;
    const double x = (1 - std::cos(phase)) / 2;  // 0 at the trough, 1 at the peak
    return Conditions{1 + (peak_load - 1) * x, trough_error + (peak_error - trough_error) * x};
  };
}

double percent(int n, const Outcome& o) {
  return o.rollouts > 0 ? 100.0 * n / o.rollouts : 0;
}

// Rolled back without the weight ever going above 25%.
int caught_by_25(const Outcome& o) {
  return o.rollbacks_where([](const Rollback& r) { return r.highest_bp <= 2500; });
}

int rolled_back_within(const Outcome& o, int intervals) {
  return o.rollbacks_where([=](const Rollback& r) { return r.intervals <= intervals; });
}

struct Target {
  std::string text;
  std::function<bool(const Outcome&)> met;
};

Target healthy() {
  return {"rolled back <= 0.5%", [](const Outcome& o) { return percent(o.rolled_back, o) <= 0.5; }};
}

Target healthy_and_fast() {
  return {"rolled back <= 0.5%, median to promotion <= 30", [](const Outcome& o) {
            const auto fast =
                std::count_if(o.intervals_to_promote.begin(), o.intervals_to_promote.end(),
                              [](int i) { return i <= 30; });
            return percent(o.rolled_back, o) <= 0.5 && 2 * fast >= o.rollouts;
          }};
}

Target held() {
  return {"held: rolled back <= 0.5%, promoted <= 0.5%", [](const Outcome& o) {
            return percent(o.rolled_back, o) <= 0.5 && percent(o.promoted, o) <= 0.5;
          }};
}

Target caught(double min_percent) {
  char text[64];
  std::snprintf(text, sizeof text, "rolled back before passing 25%% in >= %g%%", min_percent);
  return {text, [=](const Outcome& o) { return percent(caught_by_25(o), o) >= min_percent; }};
}

Target never_promoted() {
  return {"never promoted", [](const Outcome& o) { return o.promoted == 0; }};
}

Target all_rolled_back_within(int intervals) {
  return {"rolled back within " + std::to_string(intervals) + " intervals",
          [=](const Outcome& o) { return rolled_back_within(o, intervals) == o.rollouts; }};
}

struct Scenario {
  std::string name;
  Traffic traffic;
  Target target;
};

std::uint64_t seed_of(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (const char c : name) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h;
}

std::string steps_text(const std::vector<std::uint32_t>& steps_bp) {
  std::string s;
  for (const std::uint32_t bp : steps_bp) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%s%g", s.empty() ? "" : ", ", bp / 100.0);
    s += buf;
  }
  return "[" + s + "]";
}

std::string pct_text(int n, const Outcome& o) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", percent(n, o));
  return buf;
}

template <typename Controller>
bool print_table(const gp::config::Rollout& policy, int rollouts, std::vector<Scenario> scenarios);

}  // namespace

int main(int argc, char** argv) {
  const int rollouts = argc > 1 ? std::max(1, std::atoi(argv[1])) : kDefaultRollouts;
  auto policy = gp::sim::issue_policy();
  policy.max_p99_latency = 300ms;
  const Latency p99_225ms = Latency::with_p99(0.225, 0.5);
  const Latency p99_450ms = Latency::with_p99(0.450, 0.5);
  constexpr std::uint64_t kLowTraffic = 5;

  const std::vector<Scenario> scenarios{
      {"healthy (0.5%)", {}, healthy_and_fast()},
      {"healthy, errors in sessions of 5", {.session = 5}, healthy()},
      {"healthy, errors in sessions of 20", {.session = 20}, healthy()},
      {"shared blips (both 10% in 3% of intervals)", {.environment = blips(0.03, 0.10)}, healthy()},
      {"diurnal 10x, both 0.25%-1% with load",
       {.environment = diurnal(48, 10, 0.0025, 0.01)},
       healthy()},
      {"shared outage, both 5% throughout",
       {.environment = outage(0.05, 1, kMaxIntervals)},
       held()},
      {"shared outage, both 5% in intervals 3-6", {.environment = outage(0.05, 3, 6)}, healthy()},
      {"3x regression (1.5%)", {.canary_error = 0.015}, caught(95)},
      {"20% errors", {.canary_error = 0.20}, caught(99.5)},
      {"5% of users at 100% errors, sessions of 5",
       {.canary_error = 0.05, .session = 5},
       caught(95)},
      {"5% of users at 100% errors, sessions of 20",
       {.canary_error = 0.05, .session = 20},
       caught(95)},
      {"p99 at 0.75x the limit (225ms)",
       {.canary_latency = p99_225ms, .stable_latency = p99_225ms},
       healthy()},
      {"p99 2x stable, over the limit (450ms)",
       {.canary_latency = p99_450ms, .stable_latency = p99_225ms},
       never_promoted()},
      {"low traffic (5 canary req/interval), healthy", {.canary_requests = kLowTraffic}, healthy()},
      {"low traffic (5 canary req/interval), 100% errors",
       {.canary_error = 1.0, .canary_requests = kLowTraffic},
       all_rolled_back_within(5)},
  };

  std::printf(
      "Policy: steps %s, max_error_rate %g%%, consecutive_successes %u, failure_limit %u, "
      "min_requests %llu, confidence %g, power %g, max_error_rate_ratio %g, max_p99_latency "
      "%lldms, interval %llds. Traffic: %llu "
      "requests/interval, canary round(weight x that), stable the rest, stable at 0.5%% errors "
      "unless stated; %d rollouts per scenario, held/undecided = still progressing after %d "
      "intervals.\n\n",
      steps_text(policy.steps_bp).c_str(), policy.max_error_rate * 100,
      policy.consecutive_successes, policy.failure_limit,
      static_cast<unsigned long long>(policy.min_requests), policy.confidence, policy.power,
      policy.max_error_rate_ratio, static_cast<long long>(policy.max_p99_latency->count()),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::seconds>(policy.interval).count()),
      static_cast<unsigned long long>(Traffic{}.total_requests), rollouts, kMaxIntervals);
  bool sound = print_table<gp::routing::RolloutController>(policy, rollouts, scenarios);

  // Latency against stable: the rank test on the two versions' sketches.
  auto ratio_policy = policy;
  ratio_policy.max_latency_ratio = 1.5;
  const Latency median_50ms{0.05, 0.5};
  const Latency median_65ms{0.065, 0.5};
  const Latency median_100ms{0.1, 0.5};
  const std::vector<Scenario> latency_scenarios{
      {"latency as stable's (median 50ms)",
       {.canary_latency = median_50ms, .stable_latency = median_50ms, .latency_sketch = true},
       healthy_and_fast()},
      {"latency 1.3x stable's (within 1.5x)",
       {.canary_latency = median_65ms, .stable_latency = median_50ms, .latency_sketch = true},
       healthy()},
      {"latency 2x stable's",
       {.canary_latency = median_100ms, .stable_latency = median_50ms, .latency_sketch = true},
       caught(95)},
  };
  std::printf(
      "\nThe same policy with max_latency_ratio 1.5; latencies lognormal (sigma 0.5 of the log), "
      "recorded through the proxy's latency sketch:\n\n");
  sound = print_table<gp::routing::RolloutController>(ratio_policy, rollouts, latency_scenarios) &&
          sound;
  return sound ? 0 : 2;
}

namespace {

template <typename Controller>
bool print_table(const gp::config::Rollout& policy, int rollouts, std::vector<Scenario> scenarios) {
  std::printf(
      "| scenario | rollouts | rolled back | promoted | held/undecided | rolled back before "
      "passing 25%% | median intervals to rollback | median intervals to promotion | rolled "
      "back within 5 intervals | target | met |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  bool sound = true;
  for (Scenario& sc : scenarios) {
    sc.traffic.latency_limit_seconds =
        std::chrono::duration<double>(policy.max_p99_latency.value_or(0ms)).count();
    const Outcome o = gp::sim::simulate<Controller>(policy, rollouts, seed_of(sc.name),
                                                    kMaxIntervals, sc.traffic);
    if (!o.malformed.empty() || o.rollouts != rollouts ||
        o.rolled_back + o.promoted + o.undecided != o.rollouts) {
      std::fprintf(stderr, "%s: malformed run: %s\n", sc.name.c_str(),
                   o.malformed.empty() ? "outcomes do not add up" : o.malformed.c_str());
      sound = false;
      continue;
    }
    std::printf("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc.name.c_str(),
                o.rollouts, pct_text(o.rolled_back, o).c_str(), pct_text(o.promoted, o).c_str(),
                pct_text(o.undecided, o).c_str(), pct_text(caught_by_25(o), o).c_str(),
                gp::sim::median(o.intervals_to_rollback()).c_str(),
                gp::sim::median(o.intervals_to_promote).c_str(),
                pct_text(rolled_back_within(o, 5), o).c_str(), sc.target.text.c_str(),
                sc.target.met(o) ? "met" : "MISSED");
  }
  return sound;
}

}  // namespace
