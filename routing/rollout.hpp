// The rollout controller (docs/analysis.md) as pure logic: it judges the canary from the window
// statistics it is given, at the times it is given, and moves the weight. The proxy runs tick()
// every `interval`, persists status() and maps the admin API onto the actions.
//
// Every window is one judgement by the sequential analysis (routing/canary_evidence.hpp), whose
// evidence is kept over the whole rollout (the weight moving between windows does not bias it)
// and restarts with a new rollout or an operator's action:
//  - fail: the canary is worse than stable by max_error_rate_ratio or above max_error_rate
//    (evidence over the bar, with this window pointing the same way), its requests are slower
//    than max_p99_latency in more than 1%, or this window alone is significantly above
//    max_error_rate while stable's is not;
//  - hold: stable's window is itself significantly above max_error_rate (an outage on both
//    versions is not the canary's fault; the rollout continues when stable recovers);
//  - pass: the evidence rules out, at this weight, a regression against stable or an error
//    rate at the limit (and a p99 over max_p99_latency), and the step has min_requests canary
//    requests;
//  - inconclusive otherwise (the judgement says how many more canary requests it needs).
// The first windows of every step (`step_warmup`, one interval by default) are warm-up: only a
// breach of max_error_rate in the window itself fails (or holds), and nothing else is learnt.
// `consecutive_successes` passes in a row move to the next step (past the last: promoted,
// 100%); `failure_limit` failures in a row roll back (0%); a failure count lasts while a test
// stays over its bar, anything else ends a run of passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "routing/canary_evidence.hpp"

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
  // The A/A half (users in even cohort buckets) and the requests slower than max_p99_latency.
  std::uint64_t half_requests = 0;
  std::uint64_t half_errors = 0;
  std::uint64_t slow = 0;
  LatencyBins latency{};  // the window's latency sketch, for max_latency_ratio
};

enum class Verdict : std::uint8_t { pass, fail, inconclusive, hold };
const char* to_string(Verdict v);
std::optional<Verdict> parse_verdict(std::string_view s);

// One version as a judgement saw it.
struct VersionStats {
  std::uint64_t requests = 0;  // this window
  std::uint64_t errors = 0;
  std::uint64_t slow = 0;           // this window, over max_p99_latency
  std::uint64_t step_requests = 0;  // accumulated over the current step, this window included
  std::uint64_t step_errors = 0;
  double error_rate = std::numeric_limits<double>::quiet_NaN();   // step_errors / step_requests
  double p99_seconds = std::numeric_limits<double>::quiet_NaN();  // this window
};

// One sequential test as a judgement read it (NaN: not run).
struct TestStats {
  double evidence = std::numeric_limits<double>::quiet_NaN();       // log e-value; over at `bar`
  double bar = std::numeric_limits<double>::quiet_NaN();            // log(1 / (1 - confidence))
  double pass_evidence = std::numeric_limits<double>::quiet_NaN();  // passes at <= pass_bound
  double pass_bound = std::numeric_limits<double>::quiet_NaN();     // log(1 - power)
  double pass_factor = std::numeric_limits<double>::quiet_NaN();    // what a pass rules out
};

// Every number behind one decision next to its threshold, so /status and the log explain it.
struct Judgement {
  TimePoint time{};
  Verdict verdict = Verdict::inconclusive;
  std::string reason;  // the checks that decided, with measured values and thresholds
  int step_index = 0;
  std::uint32_t weight_bp = 0;
  std::uint32_t window = 0;  // 1-based window number within the step
  VersionStats canary;
  VersionStats stable;
  double dispersion = 1;    // phi: errors vary this many times more than binomially
  TestStats relative;       // canary against stable (pass_factor: the error rate ratio)
  TestStats absolute;       // canary against max_error_rate (pass_factor: x max_error_rate)
  TestStats latency;        // share over max_p99_latency against 1% (pass_factor: x 1%)
  TestStats latency_ratio;  // rank test against stable (pass_factor: max_latency_ratio)
  // This window: P(canary latency / max_latency_ratio > stable's); 0.5 at the limit.
  double rank_probability = std::numeric_limits<double>::quiet_NaN();
  bool warmup = false;  // a window right after a weight change: only breaches are judged
  // This window against max_error_rate: exact tails of "the rate is above the limit".
  double canary_breach_p = std::numeric_limits<double>::quiet_NaN();
  double stable_breach_p = std::numeric_limits<double>::quiet_NaN();
  // Canary requests the step still needs to pass at this traffic if the canary is as good as
  // stable (NaN: passed, or cannot tell).
  double requests_to_pass = std::numeric_limits<double>::quiet_NaN();
  // Thresholds in force.
  std::uint64_t min_requests = 0;
  double max_error_rate = 0;
  double max_error_rate_ratio = 0;
  double confidence = 0;
  double compare_confidence = 0;
  double power = 0;
  bool compare_to_stable = false;
  bool analyze_only = false;                                            // mode: analyze
  double max_p99_seconds = std::numeric_limits<double>::quiet_NaN();    // NaN: no limit
  double max_latency_ratio = std::numeric_limits<double>::quiet_NaN();  // NaN: not judged
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
  // The current step's traffic, warm-up windows not counted in the requests and errors.
  std::uint32_t step_windows = 0;  // windows ticked
  std::uint64_t step_canary_requests = 0;
  std::uint64_t step_canary_errors = 0;
  std::uint64_t step_stable_requests = 0;
  std::uint64_t step_stable_errors = 0;
  std::uint32_t holds = 0;     // hold verdicts in this rollout
  EvidenceState evidence;      // the rollout's evidence, kept across steps
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
  // recomputed from the weight, and the step's counts are dropped if that moved it.
  RolloutController(config::Rollout policy, RolloutStatus restored);

  // Judges one window when progressing (ignored otherwise). Called every `interval`.
  TickResult tick(TimePoint now, const VersionWindow& canary, const VersionWindow& stable);

  // Operator actions (each restarts the evidence: the operator may have changed the canary).
  TickResult pause(TimePoint now);    // progressing -> paused
  TickResult resume(TimePoint now);   // paused or idle -> progressing
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
  Judgement judge(TimePoint now, const VersionWindow& canary, const VersionWindow& stable,
                  bool warmup);
  std::uint32_t warmup_windows() const;
  void advance(TimePoint now, const Judgement& j, TickResult& out);
  void begin_progress(TimePoint now);
  void reset_step();
  void reset_evidence();
  void transition(TimePoint now, RolloutState state, std::uint32_t weight_bp, std::string reason,
                  TickResult& out);
  int step_for(std::uint32_t weight_bp) const;

  config::Rollout p_;
  RolloutStatus s_;
};

}  // namespace gp::routing
