// The rollout controller (DESIGN.md "Rollout controller") as pure logic: it judges the canary
// from window statistics it is given, at the times it is given, and moves the weight. The proxy
// runs tick() every `interval`, persists status() and maps the admin API onto the actions.
//
// How a tick judges (why: a handful of errors at low traffic must not roll back a healthy
// canary, yet a bad one must be caught within a few windows; one window of 100 requests cannot
// tell 0.5% from 1%, so evidence has to accumulate):
//  - Evidence accumulates over all windows of the current step (it restarts when the weight
//    changes or the rollout resumes), and judgements within a step are numbered k = 1, 2, ...
//  - A judgement needs `min_requests` canary requests since the previous one; windows with
//    fewer are inconclusive and carry their requests over (low traffic judges less often).
//  - max_error_rate: p = P(X >= errors | step requests, max_error_rate), the exact binomial
//    p-value of "the canary's rate is above the limit". FAIL when p < (1 - confidence)/(k(k+1));
//    PASS when p >= 1/(k+1); INCONCLUSIVE in between. The fail levels sum to 1 - confidence
//    (alpha spending), so the chance of ever failing a canary exactly at the limit during a
//    step stays below 1 - confidence however many judgements it takes; the pass level makes
//    the first judgement pass only when the observed rate is within the limit (p >= 1/2) and
//    gives later ones more benefit of the doubt, so a step does not wait forever. The exact tail is
//    used because Wilson's bound is too eager at a handful of errors (3 in 100 "exceeds" 1% at
//    95%).
//  - compare_to_stable: FAIL when the one-sided two-proportion test (Agresti-Caffo, over the
//    step's counts) gives p < (1 - confidence)/(k(k+1)) for "canary - stable >
//    max_error_rate_increase" (default 0). It only fails: a canary no worse than stable is never
//    held back by it. Skipped while stable has no requests (at 100%).
//  - max_p99_latency: FAIL when this window's p99 exceeds it; checked only for windows that
//    themselves hold `min_requests` canary requests (a p99 of a few requests is noise).
//  - `consecutive_successes` passes in a row -> next step (past the last: promoted, 100%);
//    `failure_limit` failures in a row -> rolled_back (0%). A pass resets the failure count, a
//    failure the pass count; inconclusive judgements change neither.
// tests/sim/rollout_sim.cpp measures the outcome: with steps [1,5,10,25,50,100],
// max_error_rate 0.01, consecutive_successes 2 and the defaults, at 100 canary requests per
// window, a canary at 0.5% errors is practically never rolled back and one at 5% always is,
// at 1%, after a median of 2 windows.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace gp::routing {

using TimePoint = std::chrono::system_clock::time_point;

enum class RolloutState : std::uint8_t { idle, progressing, paused, promoted, rolled_back };
const char* to_string(RolloutState s);
std::optional<RolloutState> parse_state(std::string_view s);

// One version's traffic in one window (the proxy converts metrics::Window into this).
// Errors are 5xx from the upstream and proxy-generated 5xx (502/503/504) alike.
struct VersionWindow {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  double p99_seconds = std::numeric_limits<double>::quiet_NaN();  // NaN when unknown
};

enum class Verdict : std::uint8_t { pass, fail, inconclusive };
const char* to_string(Verdict v);

// One version as a judgement saw it.
struct VersionStats {
  std::uint64_t requests = 0;  // this window
  std::uint64_t errors = 0;
  std::uint64_t step_requests = 0;  // accumulated over the current step, this window included
  std::uint64_t step_errors = 0;
  double error_rate = std::numeric_limits<double>::quiet_NaN();   // step_errors / step_requests
  double p99_seconds = std::numeric_limits<double>::quiet_NaN();  // this window
};

// Every number behind one decision next to its threshold, so /status and the log explain it.
struct Judgement {
  TimePoint time{};
  Verdict verdict = Verdict::inconclusive;
  std::string reason;  // the checks that decided, with measured values and thresholds
  int step_index = 0;
  std::uint32_t weight_bp = 0;
  std::uint32_t window = 0;        // 1-based window number within the step
  std::uint32_t judgement = 0;     // k: 1-based judgement number within the step; 0 = too few
  std::uint64_t new_requests = 0;  // canary requests since the previous judgement
  VersionStats canary;
  VersionStats stable;
  // Levels for this judgement (NaN when too few requests): fail when a p-value is below
  // fail_below = (1 - confidence) / (k(k+1)); the error-rate check passes from pass_from =
  // 1/(k+1) up.
  double fail_below = std::numeric_limits<double>::quiet_NaN();
  double pass_from = std::numeric_limits<double>::quiet_NaN();
  // max_error_rate: exact binomial p-value of "canary's step error rate > max_error_rate", and
  // the exact (Clopper-Pearson) bounds of that rate at confidence 1 - fail_below (so "lower
  // bound > max_error_rate" is the same statement as the failure). NaN / {0, 1}: not judged.
  double error_rate_p_value = std::numeric_limits<double>::quiet_NaN();
  double error_rate_lower = 0;
  double error_rate_upper = 1;
  // compare_to_stable: p-value of "canary - stable > max_error_rate_increase" (NaN: not run).
  double p_value = std::numeric_limits<double>::quiet_NaN();
  // Thresholds in force.
  std::uint64_t min_requests = 0;
  double max_error_rate = 0;
  double confidence = 0;
  bool compare_to_stable = false;
  double max_error_rate_increase = 0;
  double max_p99_seconds = std::numeric_limits<double>::quiet_NaN();  // NaN: no limit
  // Counters after this judgement.
  std::uint32_t consecutive_passes = 0;
  std::uint32_t consecutive_failures = 0;
};

// Everything needed to resume after a restart or reload (the proxy persists it).
struct RolloutStatus {
  RolloutState state = RolloutState::idle;
  std::uint32_t weight_bp = 0;
  // The step being judged: the first step >= weight_bp (the last step when the weight is above
  // all). A weight between steps (an operator's set_weight) moves up to this step on a pass.
  int step_index = 0;
  std::uint32_t consecutive_passes = 0;
  std::uint32_t consecutive_failures = 0;
  // Evidence for the current step.
  std::uint32_t step_windows = 0;  // windows ticked
  std::uint64_t step_canary_requests = 0;
  std::uint64_t step_canary_errors = 0;
  std::uint64_t step_stable_requests = 0;
  std::uint64_t step_stable_errors = 0;
  std::uint64_t pending_canary_requests = 0;  // since the last judgement
  std::uint32_t step_judgements = 0;          // judgements with enough requests (k)
  TimePoint judge_from{};      // windows ticked before this are ignored (start_delay)
  TimePoint since{};           // last transition (state or weight)
  std::string reason;          // why that transition happened
  std::deque<Judgement> last;  // newest at the back, at most RolloutController::kMaxJudgements
};

class RolloutController {
 public:
  static constexpr std::size_t kMaxJudgements = 20;

  struct TickResult {
    bool weight_changed = false;
    bool state_changed = false;
    std::optional<Judgement> judgement;  // set when a progressing tick judged a window
    std::string transition_reason;       // set when the weight or the state changed
    std::string error;  // set when an action is not allowed in this state (nothing changed)
  };

  // Starts progressing: the weight stays as given (0 moves to the first step, since a canary
  // without traffic cannot be judged) and is judged as the first step at or above it; windows
  // ticked before now + start_delay are not judged.
  RolloutController(config::Rollout policy, std::uint32_t initial_weight_bp, TimePoint now);
  // Resumes a persisted status under a (possibly reloaded) policy: the step index is
  // recomputed from the weight, and the step's evidence is dropped if that moved it.
  RolloutController(config::Rollout policy, RolloutStatus restored);

  // Judges one window when progressing (ignored otherwise). Called every `interval`.
  TickResult tick(TimePoint now, const VersionWindow& canary, const VersionWindow& stable);

  // Operator actions.
  TickResult pause(TimePoint now);    // progressing -> paused
  TickResult resume(TimePoint now);   // paused or idle -> progressing, evidence restarts
  TickResult promote(TimePoint now);  // any -> promoted at 100%
  TickResult abort(TimePoint now);    // any -> rolled_back at 0%
  // An operator's weight wins and the rollout continues from there: progressing and paused
  // keep their state with fresh evidence; 0 while progressing stops it (idle); after promoted
  // or rolled_back the route becomes idle at that weight (resume starts a new rollout).
  TickResult set_weight(std::uint32_t weight_bp, TimePoint now);

  const RolloutStatus& status() const { return s_; }
  std::uint32_t weight_bp() const { return s_.weight_bp; }
  RolloutState state() const { return s_.state; }
  const config::Rollout& policy() const { return p_; }

 private:
  Judgement judge(TimePoint now, const VersionWindow& canary, const VersionWindow& stable);
  void advance(TimePoint now, const Judgement& j, TickResult& out);
  void begin_progress(TimePoint now);
  void reset_step();
  void transition(TimePoint now, RolloutState state, std::uint32_t weight_bp, std::string reason,
                  TickResult& out);
  int step_for(std::uint32_t weight_bp) const;

  config::Rollout p_;
  RolloutStatus s_;
};

}  // namespace gp::routing
