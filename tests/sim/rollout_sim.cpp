// Decision-quality simulation: drives the real RolloutController with synthetic traffic
// (binomial errors per interval, lognormal latencies where p99 matters), many seeded rollouts
// per scenario, and checks the issue's acceptance:
//   steps [1, 5, 10, 25, 50, 100], max_error_rate 0.01, consecutive_successes 2, every other
//   key at its default, 100 canary requests per interval, stable at 0.5% errors:
//   - healthy canary (0.5%): at most 1 in 200 rollouts rolled back;
//   - bad canary (5%): at least 199 in 200 rolled back before reaching 25%.
// Other scenarios are printed for information, including a plain per-window threshold for
// comparison. Columns: rb_before_25% = rolled back without ever reaching 25%; med_to_rb /
// med_to_pro = median intervals to rollback / promotion. Usage: rollout_sim [rollouts]
// (default 200; the pass marks scale with it).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "routing/rollout.hpp"
#include "tests/sim/sim_traffic.hpp"

namespace {

using namespace std::chrono_literals;
using gp::routing::RolloutController;
using gp::routing::RolloutState;
using gp::routing::VersionWindow;
using gp::sim::Latency;
using gp::sim::Outcome;

constexpr std::uint64_t kCanaryPerInterval = 100;
constexpr int kMaxIntervals = 2000;  // a rollout still running after this counts as stuck

struct Scenario {
  std::string name;
  gp::config::Rollout policy;
  double canary_error_rate;
  double stable_error_rate;
  std::optional<Latency> canary_latency = {};  // none: p99 unknown (NaN)
  std::optional<Latency> stable_latency = {};
  bool per_window_baseline = false;  // judge with PerWindowThreshold instead, for comparison
};

// What Flagger/Argo-style analysis does: each window alone against max_error_rate, with the
// same step, consecutive_successes and failure_limit rules. Only for the comparison rows.
class PerWindowThreshold {
 public:
  PerWindowThreshold(gp::config::Rollout p, std::uint32_t, gp::routing::TimePoint)
      : p_(std::move(p)), weight_(p_.steps_bp[0]) {}
  std::uint32_t weight_bp() const { return weight_; }
  RolloutState state() const { return state_; }
  void tick(gp::routing::TimePoint, const VersionWindow& canary, const VersionWindow&) {
    if (canary.requests < std::max<std::uint64_t>(p_.min_requests, 1)) return;
    const bool fail = static_cast<double>(canary.errors) >
                      p_.max_error_rate * static_cast<double>(canary.requests);
    passes_ = fail ? 0 : passes_ + 1;
    failures_ = fail ? failures_ + 1 : 0;
    if (failures_ >= p_.failure_limit) {
      state_ = RolloutState::rolled_back;
      weight_ = 0;
    } else if (passes_ >= p_.consecutive_successes) {
      passes_ = failures_ = 0;
      if (++step_ == p_.steps_bp.size()) {
        state_ = RolloutState::promoted;
        weight_ = 10000;
      } else {
        weight_ = p_.steps_bp[step_];
      }
    }
  }

 private:
  gp::config::Rollout p_;
  std::uint32_t weight_;
  std::size_t step_ = 0;
  std::uint32_t passes_ = 0;
  std::uint32_t failures_ = 0;
  RolloutState state_ = RolloutState::progressing;
};

// The canary sees a fixed 100 requests per interval; stable the rest of the traffic.
template <typename Controller>
Outcome run(const Scenario& sc, int rollouts, std::uint64_t seed) {
  const gp::sim::Traffic traffic{
      .canary_error = sc.canary_error_rate,
      .stable_error = sc.stable_error_rate,
      .canary_requests = kCanaryPerInterval,
      .canary_latency = sc.canary_latency,
      .stable_latency = sc.stable_latency,
      .latency_limit_seconds = std::chrono::duration<double>(
                                   sc.policy.max_p99_latency.value_or(std::chrono::milliseconds(0)))
                                   .count()};
  return gp::sim::simulate<Controller>(sc.policy, rollouts, seed, kMaxIntervals, traffic);
}

}  // namespace

int main(int argc, char** argv) {
  const int rollouts = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
  const Latency fast{0.050, 0.5};  // p99 ~ 160ms
  const Latency slow{0.125, 0.5};  // p99 ~ 400ms

  const auto base = gp::sim::issue_policy();
  auto with = [&](auto edit) {
    auto p = base;
    edit(p);
    return p;
  };
  const auto cmp99 = with([](auto& p) {
    p.compare_to_stable = true;
    p.confidence = 0.99;
  });
  const auto loose_cmp99 = with([](auto& p) {
    p.max_error_rate = 0.05;
    p.compare_to_stable = true;
    p.confidence = 0.99;
  });
  const auto cmp95 = with([](auto& p) { p.compare_to_stable = true; });
  const auto p99 = with([](auto& p) { p.max_p99_latency = 300ms; });
  std::vector<Scenario> scenarios{
      // The two acceptance scenarios first.
      {"healthy 0.5% (stable 0.5%)", base, 0.005, 0.005},
      {"bad 5% (stable 0.5%)", base, 0.05, 0.005},
      {"canary 1% (stable 0.5%)", base, 0.01, 0.005},
      {"canary 2% (stable 0.5%)", base, 0.02, 0.005},
      {"canary 2%, stable 2%", base, 0.02, 0.02},
      {"0.5% = stable, compare 0.99", cmp99, 0.005, 0.005},
      {"0.5% = stable, compare 0.95", cmp95, 0.005, 0.005},
      {"2% = stable 2%, max 5%, compare 0.99", loose_cmp99, 0.02, 0.02},
      {"2% vs stable 0.5%, max 5%, compare 0.99", loose_cmp99, 0.02, 0.005},
      {"p99 160ms, max_p99 300ms", p99, 0.005, 0.005, fast, fast},
      {"p99 regression 400ms, max_p99 300ms", p99, 0.005, 0.005, slow, fast},
      {"per-window threshold: healthy 0.5%", base, 0.005, 0.005, {}, {}, true},
      {"per-window threshold: bad 5%", base, 0.05, 0.005, {}, {}, true},
  };

  std::printf("rollout simulation: %d rollouts per scenario, %llu canary requests per interval\n",
              rollouts, static_cast<unsigned long long>(kCanaryPerInterval));
  std::printf("%-40s %8s %11s %8s %9s %13s %10s %10s\n", "scenario", "rollouts", "rolled_back",
              "promoted", "undecided", "rb_before_25%", "med_to_rb", "med_to_pro");
  // rb_before_25%: rolled back without ever reaching 25%.
  auto before_25 = [](const Outcome& o) {
    return o.rollbacks_where([](const gp::sim::Rollback& r) { return r.highest_bp < 2500; });
  };
  std::vector<Outcome> outcomes;
  for (std::size_t i = 0; i < scenarios.size(); ++i) {
    const std::uint64_t seed = 0x67726179ULL + i;  // "gray" + index: scenarios independent
    const Outcome o = scenarios[i].per_window_baseline
                          ? run<PerWindowThreshold>(scenarios[i], rollouts, seed)
                          : run<RolloutController>(scenarios[i], rollouts, seed);
    if (!o.malformed.empty()) {
      std::printf("%s: malformed run: %s\n", scenarios[i].name.c_str(), o.malformed.c_str());
      return 2;
    }
    std::printf("%-40s %8d %11d %8d %9d %13d %10s %10s\n", scenarios[i].name.c_str(), o.rollouts,
                o.rolled_back, o.promoted, o.undecided, before_25(o),
                gp::sim::median(o.intervals_to_rollback()).c_str(),
                gp::sim::median(o.intervals_to_promote).c_str());
    outcomes.push_back(o);
  }

  // Acceptance, scaled from "1 of 200".
  const int slack = rollouts / 200;
  const bool healthy_ok = outcomes[0].rolled_back <= slack;
  const bool bad_ok = before_25(outcomes[1]) >= rollouts - slack;
  std::printf("\nhealthy: %d/%d rolled back (must be <= %d): %s\n", outcomes[0].rolled_back,
              rollouts, slack, healthy_ok ? "ok" : "FAIL");
  std::printf("bad:     %d/%d rolled back before 25%% (must be >= %d): %s\n",
              before_25(outcomes[1]), rollouts, rollouts - slack, bad_ok ? "ok" : "FAIL");
  return healthy_ok && bad_ok ? 0 : 1;
}
