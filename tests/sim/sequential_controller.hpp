// The step rules of RolloutController around the sequential evidence (routing/canary_evidence),
// for the scenario table: what the controller will decide once it judges with it. Same steps,
// consecutive_successes and failure_limit; each interval is one judgement:
//   fail: a sequential test failed or the canary alone breached max_error_rate;  hold: stable
//   itself significantly above max_error_rate; pass: the relative test (and the latency test, with
//   max_p99_latency) passed and the step
//         has at least min_requests canary requests;  otherwise inconclusive.
#pragma once

#include <chrono>
#include <cstdint>

#include "config/config.hpp"
#include "routing/canary_evidence.hpp"
#include "routing/rollout.hpp"
#include "tests/sim/sim_traffic.hpp"

namespace gp::sim {

inline routing::EvidencePolicy evidence_policy(const config::Rollout& p) {
  routing::EvidencePolicy e;
  e.max_error_rate = p.max_error_rate;
  e.judge_latency = p.max_p99_latency.has_value();
  return e;
}

class SequentialController {
 public:
  SequentialController(config::Rollout p, std::uint32_t, routing::TimePoint)
      : p_(std::move(p)), evidence_(evidence_policy(p_)), weight_(p_.steps_bp[0]) {}

  std::uint32_t weight_bp() const { return weight_; }
  RolloutState state() const { return state_; }
  int holds() const { return holds_; }

  void tick(routing::TimePoint, const Windows& w) {
    if (state_ != RolloutState::progressing) return;
    const routing::EvidenceReading r =
        evidence_.add(w.canary_counts, w.stable_counts, weight_ / double(kFullBp));
    step_requests_ += w.canary_counts.all.requests;
    const bool fail = r.relative.fail || r.canary_breach || r.latency.fail;
    const bool pass = !fail && !r.stable_breach && r.relative.pass &&
                      (!evidence_.policy().judge_latency || r.latency.pass) &&
                      step_requests_ >= p_.min_requests;
    if (r.stable_breach && !fail) ++holds_;
    passes_ = pass ? passes_ + 1 : 0;
    // A failure count lasts while a test stays over its bar.
    const bool over = r.relative.over || r.latency.over || r.canary_breach;
    failures_ = fail ? failures_ + 1 : (over ? failures_ : 0);
    if (failures_ >= p_.failure_limit) {
      state_ = RolloutState::rolled_back;
      weight_ = 0;
    } else if (passes_ >= p_.consecutive_successes) {
      passes_ = 0;
      failures_ = 0;
      step_requests_ = 0;
      if (++step_ >= p_.steps_bp.size()) {
        state_ = RolloutState::promoted;
        weight_ = kFullBp;
      } else {
        weight_ = p_.steps_bp[step_];
      }
    }
  }

 private:
  config::Rollout p_;
  routing::CanaryEvidence evidence_;
  std::uint32_t weight_;
  std::size_t step_ = 0;
  RolloutState state_ = RolloutState::progressing;
  std::uint32_t passes_ = 0;
  std::uint32_t failures_ = 0;
  std::uint64_t step_requests_ = 0;
  int holds_ = 0;
};

}  // namespace gp::sim
