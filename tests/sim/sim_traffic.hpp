// Shared by the rollout simulations (rollout_sim, rollout_scenarios): the issue's policy, a
// synthetic traffic model, and the loop that drives a controller through seeded rollouts and
// tallies the outcomes. Everything is deterministic given the seed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "metrics/latency_sketch.hpp"
#include "routing/canary_evidence.hpp"
#include "routing/rollout.hpp"

namespace gp::sim {

using Rng = std::mt19937_64;
using routing::RolloutState;
using routing::VersionWindow;

constexpr std::uint32_t kFullBp = 10000;

// steps [1, 5, 10, 25, 50, 100], max_error_rate 0.01, consecutive_successes 2, every other key
// at its default.
inline config::Rollout issue_policy() {
  config::Rollout p;
  p.steps_bp = {100, 500, 1000, 2500, 5000, 10000};
  p.max_error_rate = 0.01;
  p.consecutive_successes = 2;
  return p;
}

struct Latency {
  double median_seconds;
  double sigma;  // of the log; p99 = median * exp(2.326 * sigma)
  static Latency with_p99(double p99_seconds, double sigma) {
    return {p99_seconds / std::exp(2.326 * sigma), sigma};
  }
};

// Empirical p99 of n lognormal draws, like histogram_quantile over fine buckets.
inline double p99_of(std::uint64_t n, const Latency& l, Rng& rng) {
  if (n == 0) return std::nan("");
  std::lognormal_distribution<double> d(std::log(l.median_seconds), l.sigma);
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  const auto rank = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(n))) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rank), v.end());
  return v[rank];
}

// Errors among n requests made in sessions of `session` requests, each session failing all of
// its requests with probability `rate` (the last, partial session too). session 1: independent
// requests, one binomial draw.
inline std::uint64_t session_errors(std::uint64_t n, double rate, std::uint64_t session, Rng& rng) {
  const std::uint64_t rest = n % session;
  std::uint64_t errors =
      session * std::binomial_distribution<std::uint64_t>(n / session, rate)(rng);
  if (rest > 0 && std::bernoulli_distribution(rate)(rng)) errors += rest;
  return errors;
}

// The A/A half of one version's interval: the users in the lower half of the hash space make
// half of the full sessions and the failed full sessions fall among them at random (a session
// is one user's); the partial session is never theirs.
inline routing::Counts half_of(std::uint64_t n, std::uint64_t errors, std::uint64_t session,
                               Rng& aux) {
  const std::uint64_t sessions = n / session;
  const std::uint64_t half_sessions = sessions / 2;
  routing::Counts half{half_sessions * session, 0};
  if (sessions == 0 || errors == 0) return half;
  // Which of the failed sessions are the half's: drawn without replacement.
  std::uint64_t slots = half_sessions;
  std::uint64_t left = sessions;
  for (std::uint64_t i = std::min(errors / session, sessions); i > 0 && slots > 0; --i, --left) {
    if (std::uniform_int_distribution<std::uint64_t>(1, left)(aux) <= slots) {
      --slots;
      half.errors += session;
    }
  }
  return half;
}

// Requests slower than `limit` among n lognormal latencies.
inline std::uint64_t slow_count(std::uint64_t n, const Latency& l, double limit, Rng& aux) {
  const double z = (std::log(limit) - std::log(l.median_seconds)) / l.sigma;
  const double share = 0.5 * std::erfc(z / std::sqrt(2.0));
  return std::binomial_distribution<std::uint64_t>(n, share)(aux);
}

// n lognormal latencies as the proxy's sketch records them (rounded to its buckets), as the
// controller's bins.
inline routing::LatencyBins sketch_of(std::uint64_t n, const Latency& l, Rng& aux) {
  std::lognormal_distribution<double> d(std::log(l.median_seconds), l.sigma);
  metrics::SketchCounts c{};
  for (std::uint64_t k = 0; k < n; ++k)
    ++c[metrics::sketch_index(std::chrono::nanoseconds(static_cast<std::int64_t>(d(aux) * 1e9)))];
  routing::LatencyBins bins;
  for (std::size_t i = 0; i < c.size(); ++i)
    if (c[i] != 0) bins.push_back({metrics::sketch_value_seconds(i), c[i]});
  return bins;
}

// What the traffic model is asked for: one interval of one rollout at the current weight.
struct Tick {
  int rollout;   // 0-based index of the rollout within its scenario
  int interval;  // 1-based
  std::uint32_t weight_bp;
};

struct Windows {
  VersionWindow canary;
  VersionWindow stable;
};

// What both versions see in one interval whatever the canary does: the load on the service and
// an error rate that replaces both versions' own (an incident, load-driven errors).
struct Conditions {
  double load = 1;  // factor on Traffic::total_requests
  std::optional<double> error_rate;
};
using Environment = std::function<Conditions(const Tick&, Rng&)>;

// One interval's traffic. Draws, in this order: the environment (if any), canary errors,
// stable errors, canary p99, stable p99 (each p99 only when that version has a latency).
struct Traffic {
  double canary_error = 0.005;  // per request, or per session when session > 1
  double stable_error = 0.005;
  std::uint64_t session = 1;  // requests per user session; a failing session fails them all
  // 0: total_requests x load per interval, round(that x weight) to the canary, the rest to
  // stable. > 0 (low traffic): this many to the canary whatever its weight, and
  // canary_requests x (100% - weight) / weight to stable.
  std::uint64_t canary_requests = 0;
  std::uint64_t total_requests = 2000;
  Environment environment = nullptr;           // none: load 1, each version at its own error rate
  std::optional<Latency> canary_latency = {};  // none: p99 unknown (NaN)
  std::optional<Latency> stable_latency = {};
  double latency_limit_seconds = 0;  // > 0: count the requests slower than this
  bool latency_sketch = false;       // each version's latencies, for max_latency_ratio

  Windows operator()(const Tick& t, Rng& rng) const {
    const Conditions c = environment ? environment(t, rng) : Conditions{};
    Windows w;
    if (canary_requests > 0) {
      w.canary.requests = canary_requests;
      w.stable.requests = canary_requests * (kFullBp - t.weight_bp) / t.weight_bp;
    } else {
      const auto total = static_cast<std::uint64_t>(std::llround(c.load * total_requests));
      w.canary.requests = static_cast<std::uint64_t>(
          std::llround(static_cast<double>(total) * t.weight_bp / kFullBp));
      w.stable.requests = total - w.canary.requests;
    }
    w.canary.errors =
        session_errors(w.canary.requests, c.error_rate.value_or(canary_error), session, rng);
    w.stable.errors =
        session_errors(w.stable.requests, c.error_rate.value_or(stable_error), session, rng);
    if (canary_latency) w.canary.p99_seconds = p99_of(w.canary.requests, *canary_latency, rng);
    if (stable_latency) w.stable.p99_seconds = p99_of(w.stable.requests, *stable_latency, rng);
    return w;
  }

  // With the A/A half and the requests over latency_limit_seconds, drawn from `aux` so that
  // the draws above do not depend on them.
  Windows operator()(const Tick& t, Rng& rng, Rng& aux) const {
    Windows w = (*this)(t, rng);
    auto extend = [&](VersionWindow& v, const std::optional<Latency>& latency) {
      const routing::Counts half = half_of(v.requests, v.errors, session, aux);
      v.half_requests = half.requests;
      v.half_errors = half.errors;
      if (latency && latency_limit_seconds > 0)
        v.slow = slow_count(v.requests, *latency, latency_limit_seconds, aux);
      if (latency && latency_sketch) v.latency = sketch_of(v.requests, *latency, aux);
    };
    extend(w.canary, canary_latency);
    extend(w.stable, stable_latency);
    return w;
  }
};

struct Rollback {
  int intervals;             // until the rollback, the rolling-back interval included
  std::uint32_t highest_bp;  // highest weight the rollout reached before it
};

struct Outcome {
  int rollouts = 0;
  int rolled_back = 0;
  int promoted = 0;
  int undecided = 0;  // still progressing after max_intervals
  std::vector<Rollback> rollbacks;
  std::vector<int> intervals_to_promote;
  std::string malformed;  // the first inconsistency seen; empty when the run is sound

  template <typename Pred>
  int rollbacks_where(Pred pred) const {
    return static_cast<int>(std::count_if(rollbacks.begin(), rollbacks.end(), pred));
  }
  std::vector<int> intervals_to_rollback() const {
    std::vector<int> v;
    for (const Rollback& r : rollbacks) v.push_back(r.intervals);
    return v;
  }
};

// Why a controller's state or a window is impossible, or empty.
template <typename Controller>
std::string inconsistency(const Controller& c, const config::Rollout& policy) {
  const std::uint32_t w = c.weight_bp();
  switch (c.state()) {
    case RolloutState::progressing:
      if (std::find(policy.steps_bp.begin(), policy.steps_bp.end(), w) != policy.steps_bp.end())
        return {};
      return "progressing at weight " + std::to_string(w) + "bp, not a step";
    case RolloutState::promoted:
      return w == kFullBp ? "" : "promoted at weight " + std::to_string(w) + "bp";
    case RolloutState::rolled_back:
      return w == 0 ? "" : "rolled back at weight " + std::to_string(w) + "bp";
    default:
      return "unexpected state " + std::string(routing::to_string(c.state()));
  }
}

inline std::string inconsistency(const Windows& w) {
  for (const VersionWindow* v : {&w.canary, &w.stable}) {
    if (v->errors > v->requests) return "window with more errors than requests";
    if (!std::isnan(v->p99_seconds) && !(v->p99_seconds > 0 && std::isfinite(v->p99_seconds)))
      return "window with an invalid p99";
  }
  for (const VersionWindow* v : {&w.canary, &w.stable}) {
    if (v->half_requests > v->requests || v->half_errors > v->errors ||
        v->half_errors > v->half_requests || v->slow > v->requests)
      return "window with a half or slow count larger than the whole";
  }
  return {};
}

// Runs `rollouts` rollouts from the first step, one tick per interval with the traffic's
// windows, until each is promoted or rolled back or max_intervals have passed. A malformed
// run (impossible state or window) stops at the first inconsistency and says so in `malformed`.
template <typename Controller, typename TrafficModel>
Outcome simulate(const config::Rollout& policy, int rollouts, std::uint64_t seed, int max_intervals,
                 const TrafficModel& traffic) {
  Rng rng(seed);
  Rng aux(seed ^ 0x9e3779b97f4a7c15ULL);
  Outcome out;
  const auto t0 = routing::TimePoint{} + std::chrono::hours(24 * 365 * 50);
  for (int r = 0; r < rollouts; ++r) {
    Controller c(policy, 0, t0);
    std::uint32_t highest = c.weight_bp();
    int interval = 0;
    out.malformed = inconsistency(c, policy);
    while (out.malformed.empty() && interval < max_intervals &&
           c.state() == RolloutState::progressing) {
      ++interval;
      const auto now = t0 + interval * policy.interval;
      const Tick tick{r, interval, c.weight_bp()};
      const Windows w = traffic(tick, rng, aux);
      out.malformed = inconsistency(w);
      if (!out.malformed.empty()) break;
      c.tick(now, w.canary, w.stable);
      out.malformed = inconsistency(c, policy);
      if (c.state() == RolloutState::progressing) highest = std::max(highest, c.weight_bp());
    }
    if (!out.malformed.empty()) {
      out.malformed = "rollout " + std::to_string(r) + ", interval " + std::to_string(interval) +
                      ": " + out.malformed;
      return out;
    }
    ++out.rollouts;
    if (c.state() == RolloutState::rolled_back) {
      ++out.rolled_back;
      out.rollbacks.push_back({interval, highest});
    } else if (c.state() == RolloutState::promoted) {
      ++out.promoted;
      out.intervals_to_promote.push_back(interval);
    } else {
      ++out.undecided;
    }
  }
  return out;
}

// "13", "13.5", or "-" when empty.
inline std::string median(std::vector<int> v) {
  if (v.empty()) return "-";
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  const double x = v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2.0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

}  // namespace gp::sim
