// RolloutController with a fake clock (TimePoints passed in) and synthetic windows.
#include "routing/rollout.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace gp::routing {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{} + std::chrono::hours(24 * 365 * 55);

config::Rollout policy(std::vector<std::uint32_t> steps_bp = {100, 500, 1000, 2500, 5000, 10000}) {
  config::Rollout p;
  p.steps_bp = std::move(steps_bp);
  p.interval = 30s;
  p.min_requests = 50;
  p.max_error_rate = 0.01;
  p.failure_limit = 2;
  p.consecutive_successes = 1;
  return p;
}

VersionWindow window(std::uint64_t requests, std::uint64_t errors, double p99 = NAN) {
  return VersionWindow{requests, errors, p99};
}

const VersionWindow kClean = window(100, 0);
const VersionWindow kStable = window(10000, 50);  // 0.5%

// Drives a controller tick by tick, 30 s apart.
struct Driver {
  RolloutController c;
  int ticks = 0;
  RolloutController::TickResult tick(const VersionWindow& canary,
                                     const VersionWindow& stable = kStable) {
    ++ticks;
    return c.tick(kT0 + ticks * 30s, canary, stable);
  }
  TimePoint now() const { return kT0 + ticks * 30s; }
};

Driver start(config::Rollout p, std::uint32_t initial_bp = 0) {
  return Driver{RolloutController(std::move(p), initial_bp, kT0)};
}

TEST(Rollout, StateNames) {
  for (RolloutState s : {RolloutState::idle, RolloutState::progressing, RolloutState::paused,
                         RolloutState::promoted, RolloutState::rolled_back})
    EXPECT_EQ(parse_state(to_string(s)), s);
  EXPECT_STREQ(to_string(RolloutState::rolled_back), "rolled_back");
  EXPECT_EQ(parse_state("rolled-back"), std::nullopt);
  EXPECT_EQ(parse_state(""), std::nullopt);
  EXPECT_STREQ(to_string(Verdict::inconclusive), "inconclusive");
}

TEST(Rollout, StartsAtTheFirstStepFromZero) {
  RolloutController c(policy(), 0, kT0);
  EXPECT_EQ(c.state(), RolloutState::progressing);
  EXPECT_EQ(c.weight_bp(), 100u);
  EXPECT_EQ(c.status().step_index, 0);
  EXPECT_EQ(c.status().since, kT0);
  EXPECT_EQ(c.status().reason, "rollout started at 1% (step 1 of 6)");
}

TEST(Rollout, StartsFromTheStepAtOrAboveTheInitialWeight) {
  RolloutController at(policy(), 1000, kT0);
  EXPECT_EQ(at.weight_bp(), 1000u);
  EXPECT_EQ(at.status().step_index, 2);

  // Between steps: judged where it is, and the first pass moves it up to that step.
  Driver d = start(policy(), 700);
  EXPECT_EQ(d.c.weight_bp(), 700u);
  EXPECT_EQ(d.c.status().step_index, 2);
  auto r = d.tick(kClean);
  EXPECT_TRUE(r.weight_changed);
  EXPECT_EQ(d.c.weight_bp(), 1000u);
  EXPECT_EQ(d.c.status().step_index, 2);
  d.tick(kClean);
  EXPECT_EQ(d.c.weight_bp(), 2500u);

  // Above every step: the last one; passing it promotes.
  Driver high = start(policy({100, 500, 5000}), 8000);
  EXPECT_EQ(high.c.weight_bp(), 8000u);
  EXPECT_EQ(high.c.status().step_index, 2);
  high.tick(kClean);
  EXPECT_EQ(high.c.state(), RolloutState::promoted);
  EXPECT_EQ(high.c.weight_bp(), 10000u);
}

TEST(Rollout, FullProgressionToPromoted) {
  auto p = policy();
  p.consecutive_successes = 2;
  Driver d = start(p);
  std::vector<std::uint32_t> weights{d.c.weight_bp()};
  for (int i = 0; i < 12; ++i) {
    const auto r = d.tick(kClean);
    ASSERT_TRUE(r.judgement);
    EXPECT_EQ(r.judgement->verdict, Verdict::pass) << r.judgement->reason;
    // Every second pass moves on; the last one promotes (already at 100%: the state changes).
    EXPECT_EQ(r.weight_changed, i % 2 == 1 && i < 11) << i;
    EXPECT_EQ(r.state_changed, i == 11) << i;
    EXPECT_EQ(r.transition_reason.empty(), i % 2 == 0) << i;
    if (r.weight_changed) weights.push_back(d.c.weight_bp());
  }
  EXPECT_EQ(weights, (std::vector<std::uint32_t>{100, 500, 1000, 2500, 5000, 10000}));
  EXPECT_EQ(d.c.state(), RolloutState::promoted);
  EXPECT_EQ(d.c.weight_bp(), 10000u);
  EXPECT_EQ(d.c.status().since, d.now());
  EXPECT_EQ(d.c.status().reason.rfind("promoted after 2 passes in a row at 100%: ", 0), 0u)
      << d.c.status().reason;
  // Done: further ticks judge nothing and change nothing.
  const auto after = d.tick(window(100, 100));
  EXPECT_FALSE(after.judgement);
  EXPECT_FALSE(after.weight_changed);
  EXPECT_FALSE(after.state_changed);
  EXPECT_EQ(d.c.state(), RolloutState::promoted);
}

TEST(Rollout, StepTransitionsExplainThemselves) {
  Driver d = start(policy());
  const auto r = d.tick(kClean);
  EXPECT_TRUE(r.weight_changed);
  EXPECT_FALSE(r.state_changed);
  EXPECT_EQ(r.transition_reason,
            "step 2 of 6 (5%) after 1 pass in a row at 1%: error rate 0.00% (0/100, "
            "judgement 1 of this step) within max_error_rate 1.00% (p=1 >= 0.5)");
}

TEST(Rollout, TooFewRequestsNeitherAdvanceNorFail) {
  auto p = policy();
  p.consecutive_successes = 2;
  Driver d = start(p);
  d.tick(kClean);  // one pass
  ASSERT_EQ(d.c.status().consecutive_passes, 1u);
  for (int i = 0; i < 4; ++i) {  // 4 x 10 = 40 < 50 requests, even all errors
    const auto r = d.tick(window(10, 10));
    ASSERT_TRUE(r.judgement);
    EXPECT_EQ(r.judgement->verdict, Verdict::inconclusive);
    EXPECT_EQ(r.judgement->judgement, 0u);
    EXPECT_EQ(r.judgement->reason,
              "too few requests: " + std::to_string(10 * (i + 1)) +
                  " canary requests since the last judgement < min_requests 50");
    EXPECT_FALSE(r.weight_changed);
    EXPECT_FALSE(r.state_changed);
    EXPECT_EQ(d.c.status().consecutive_passes, 1u);
    EXPECT_EQ(d.c.status().consecutive_failures, 0u);
  }
  EXPECT_EQ(d.c.weight_bp(), 100u);
  EXPECT_EQ(d.c.status().pending_canary_requests, 40u);
  EXPECT_EQ(d.c.status().step_canary_requests, 140u);
}

TEST(Rollout, InconclusiveDoesNotBreakARunOfPasses) {
  auto p = policy();
  p.consecutive_successes = 2;
  Driver d = start(p);
  d.tick(kClean);
  d.tick(window(3, 0));  // too few
  const auto r = d.tick(kClean);
  EXPECT_TRUE(r.weight_changed);
  EXPECT_EQ(d.c.weight_bp(), 500u);
}

TEST(Rollout, LowTrafficCarriesRequestsOverToOneJudgement) {
  Driver d = start(policy());
  for (int i = 0; i < 4; ++i) d.tick(window(15, 0));  // 60 requests, judged at the 4th window
  EXPECT_EQ(d.c.weight_bp(), 500u);

  // A broken canary at low traffic is still caught: its errors add up.
  Driver broken = start(policy());
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(broken.tick(window(20, 20)).judgement->verdict,
              i < 2 ? Verdict::inconclusive : Verdict::fail);
  EXPECT_EQ(broken.c.status().consecutive_failures, 1u);
  broken.tick(window(20, 20));
  broken.tick(window(20, 20));
  EXPECT_EQ(broken.tick(window(20, 20)).judgement->verdict, Verdict::fail);
  EXPECT_EQ(broken.c.state(), RolloutState::rolled_back);
}

TEST(Rollout, RollbackAfterExactlyFailureLimitConsecutiveFailures) {
  auto p = policy();
  p.failure_limit = 3;
  Driver d = start(p);
  for (std::uint32_t i = 1; i <= 2; ++i) {
    const auto r = d.tick(window(100, 50));
    EXPECT_EQ(r.judgement->verdict, Verdict::fail);
    EXPECT_FALSE(r.weight_changed);
    EXPECT_EQ(d.c.state(), RolloutState::progressing);
    EXPECT_EQ(d.c.status().consecutive_failures, i);
    EXPECT_EQ(r.judgement->consecutive_failures, i);
  }
  const auto r = d.tick(window(100, 50));
  EXPECT_EQ(r.judgement->verdict, Verdict::fail);
  EXPECT_TRUE(r.weight_changed);
  EXPECT_TRUE(r.state_changed);
  EXPECT_EQ(d.c.state(), RolloutState::rolled_back);
  EXPECT_EQ(d.c.weight_bp(), 0u);
  EXPECT_EQ(
      r.transition_reason.rfind("rolled back after 3 failures in a row at 1%: error rate ", 0), 0u)
      << r.transition_reason;
  EXPECT_EQ(d.c.status().reason, r.transition_reason);
  EXPECT_EQ(d.c.status().since, d.now());
}

// p99 failures are per window, so they show the counter rules without accumulation effects.
TEST(Rollout, APassInBetweenResetsTheFailureCount) {
  auto p = policy();
  p.max_p99_latency = 300ms;
  p.consecutive_successes = 2;  // so the pass does not move the step
  Driver d = start(p);
  const auto slow = window(100, 0, 0.5);
  const auto fast = window(100, 0, 0.1);
  EXPECT_EQ(d.tick(slow).judgement->verdict, Verdict::fail);
  EXPECT_EQ(d.tick(fast).judgement->verdict, Verdict::pass);
  EXPECT_EQ(d.c.status().consecutive_failures, 0u);
  EXPECT_EQ(d.c.status().consecutive_passes, 1u);
  EXPECT_EQ(d.tick(slow).judgement->verdict, Verdict::fail);
  EXPECT_EQ(d.c.status().consecutive_passes, 0u);  // a failure resets the passes too
  EXPECT_EQ(d.c.state(), RolloutState::progressing);
  EXPECT_EQ(d.c.status().consecutive_failures, 1u);
  // An inconclusive window between failures resets nothing.
  EXPECT_EQ(d.tick(window(10, 0, 0.5)).judgement->verdict, Verdict::inconclusive);
  EXPECT_EQ(d.c.status().consecutive_failures, 1u);
  d.tick(slow);
  EXPECT_EQ(d.c.state(), RolloutState::rolled_back);
}

TEST(Rollout, ErrorRateCheckAlone) {
  Driver d = start(policy());
  const auto r = d.tick(window(100, 10));
  const Judgement& j = *r.judgement;
  EXPECT_EQ(j.verdict, Verdict::fail);
  EXPECT_TRUE(std::isnan(j.p_value));  // no comparison configured
  EXPECT_LT(j.error_rate_p_value, j.fail_below);
  EXPECT_GT(j.error_rate_lower, 0.01);
  EXPECT_EQ(j.reason.rfind("error rate 10.00% (10/100, judgement 1 of this step) > "
                           "max_error_rate 1.00% (p=",
                           0),
            0u)
      << j.reason;
}

TEST(Rollout, AHandfulOfErrorsIsNotAFailure) {
  // 2 or 3 errors in 100 against a 1% limit happen 26% / 8% of the time at exactly 1%: the
  // step waits for more evidence instead of failing.
  for (std::uint64_t errors : {2u, 3u}) {
    Driver d = start(policy());
    const auto r = d.tick(window(100, errors));
    EXPECT_EQ(r.judgement->verdict, Verdict::inconclusive) << r.judgement->reason;
    EXPECT_NE(r.judgement->reason.find("may exceed max_error_rate 1.00%"), std::string::npos);
    EXPECT_EQ(d.c.status().consecutive_failures, 0u);
  }
  // One error in 100 is within 1%.
  Driver one = start(policy());
  EXPECT_EQ(one.tick(window(100, 1)).judgement->verdict, Verdict::pass);
}

TEST(Rollout, EvidenceAccumulatesOverTheStep) {
  Driver d = start(policy());
  // 2/100: inconclusive; then 0/100: 2/200 = 1% is within the limit.
  EXPECT_EQ(d.tick(window(100, 2)).judgement->verdict, Verdict::inconclusive);
  const auto r = d.tick(window(100, 0));
  EXPECT_EQ(r.judgement->verdict, Verdict::pass);
  EXPECT_EQ(r.judgement->canary.step_requests, 200u);
  EXPECT_EQ(r.judgement->canary.step_errors, 2u);
  EXPECT_EQ(r.judgement->judgement, 2u);
  EXPECT_EQ(d.c.weight_bp(), 500u);
  EXPECT_EQ(d.c.status().step_canary_requests, 0u);  // a new step starts afresh

  // 3/100 then 4/100: 7/200 is clearly above 1% even at the second judgement's stricter level.
  Driver bad = start(policy());
  EXPECT_EQ(bad.tick(window(100, 3)).judgement->verdict, Verdict::inconclusive);
  const auto f = bad.tick(window(100, 4));
  EXPECT_EQ(f.judgement->verdict, Verdict::fail) << f.judgement->reason;
}

TEST(Rollout, FailLevelsAreSpentOverTheStep) {
  auto p = policy();
  p.consecutive_successes = 100;
  p.confidence = 0.95;
  Driver d = start(p);
  for (int k = 1; k <= 4; ++k) {
    const Judgement j = *d.tick(kClean).judgement;
    EXPECT_EQ(j.judgement, static_cast<std::uint32_t>(k));
    EXPECT_NEAR(j.fail_below, 0.05 / (k * (k + 1)), 1e-15);
    EXPECT_DOUBLE_EQ(j.pass_from, 1.0 / (k + 1));
  }
}

TEST(Rollout, RelativeCheckAlone) {
  auto p = policy();
  p.max_error_rate = 1;  // no absolute limit
  p.compare_to_stable = true;
  p.confidence = 0.99;
  {
    Driver d = start(p);
    const auto r = d.tick(window(1000, 20), window(10000, 50));  // 2% vs 0.5%
    const Judgement& j = *r.judgement;
    EXPECT_EQ(j.verdict, Verdict::fail) << j.reason;
    EXPECT_LT(j.p_value, j.fail_below);
    EXPECT_DOUBLE_EQ(j.stable.error_rate, 0.005);
    EXPECT_EQ(j.reason.rfind("error rate 2.00% higher than stable 0.50% (50/10000) (p=", 0), 0u)
        << j.reason;
  }
  {  // A few errors more than stable at low traffic: no failure.
    Driver d = start(p);
    const auto r = d.tick(window(100, 2), window(9900, 50));
    EXPECT_EQ(r.judgement->verdict, Verdict::pass) << r.judgement->reason;
    EXPECT_GT(r.judgement->p_value, 0.05);
  }
  {  // Same as stable: pass.
    Driver d = start(p);
    EXPECT_EQ(d.tick(window(1000, 20), window(10000, 200)).judgement->verdict, Verdict::pass);
  }
  {  // max_error_rate_increase: 2% vs 0.5% is within +3 points, not within +0.5 points.
    p.max_error_rate_increase = 0.03;
    Driver loose = start(p);
    EXPECT_EQ(loose.tick(window(3000, 60), window(10000, 50)).judgement->verdict, Verdict::pass);
    p.max_error_rate_increase = 0.005;
    Driver tight = start(p);
    const auto r = tight.tick(window(3000, 60), window(10000, 50));
    EXPECT_EQ(r.judgement->verdict, Verdict::fail);
    EXPECT_NE(r.judgement->reason.find("+ max_error_rate_increase 0.50%"), std::string::npos)
        << r.judgement->reason;
  }
}

TEST(Rollout, RelativeCheckIsSkippedWithoutStableTraffic) {
  auto p = policy({10000});
  p.compare_to_stable = true;
  Driver d = start(p);
  const auto r = d.tick(window(100, 1), window(0, 0));
  EXPECT_EQ(r.judgement->verdict, Verdict::pass);
  EXPECT_TRUE(std::isnan(r.judgement->p_value));
  EXPECT_NE(r.judgement->reason.find("no stable requests to compare with"), std::string::npos);
  EXPECT_EQ(d.c.state(), RolloutState::promoted);
}

TEST(Rollout, P99CheckAlone) {
  auto p = policy();
  p.max_p99_latency = 300ms;
  {
    Driver d = start(p);
    const auto r = d.tick(window(100, 0, 0.45), window(10000, 50, 0.12));
    EXPECT_EQ(r.judgement->verdict, Verdict::fail);
    EXPECT_EQ(r.judgement->reason, "p99 450ms > max_p99_latency 300ms (stable 120ms)");
    EXPECT_DOUBLE_EQ(r.judgement->max_p99_seconds, 0.3);
    EXPECT_DOUBLE_EQ(r.judgement->canary.p99_seconds, 0.45);
  }
  {  // Unknown p99 is not a failure.
    Driver d = start(p);
    const auto r = d.tick(window(100, 0, NAN));
    EXPECT_EQ(r.judgement->verdict, Verdict::pass);
    EXPECT_NE(r.judgement->reason.find("p99 unknown"), std::string::npos);
  }
  {  // A p99 from a window smaller than min_requests is not judged, even when carried over.
    Driver d = start(p);
    d.tick(window(40, 0, 0.1));
    const auto r = d.tick(window(20, 0, 5.0));
    EXPECT_EQ(r.judgement->verdict, Verdict::pass);
    EXPECT_NE(r.judgement->reason.find("p99 not judged: 20 requests in this window"),
              std::string::npos);
  }
}

TEST(Rollout, JudgementsKeepTheNumbersNextToTheThresholds) {
  auto p = policy();
  p.compare_to_stable = true;
  p.max_p99_latency = 250ms;
  Driver d = start(p);
  const auto r = d.tick(window(100, 1, 0.2), window(9900, 40, 0.15));
  const Judgement& j = *r.judgement;
  EXPECT_EQ(j.time, d.now());
  EXPECT_EQ(j.verdict, Verdict::pass);
  EXPECT_EQ(j.step_index, 0);
  EXPECT_EQ(j.weight_bp, 100u);
  EXPECT_EQ(j.window, 1u);
  EXPECT_EQ(j.new_requests, 100u);
  EXPECT_EQ(j.canary.requests, 100u);
  EXPECT_EQ(j.canary.errors, 1u);
  EXPECT_DOUBLE_EQ(j.canary.error_rate, 0.01);
  EXPECT_EQ(j.stable.requests, 9900u);
  EXPECT_EQ(j.stable.step_errors, 40u);
  EXPECT_DOUBLE_EQ(j.stable.p99_seconds, 0.15);
  EXPECT_EQ(j.min_requests, 50u);
  EXPECT_DOUBLE_EQ(j.max_error_rate, 0.01);
  EXPECT_DOUBLE_EQ(j.confidence, 0.95);
  EXPECT_TRUE(j.compare_to_stable);
  EXPECT_DOUBLE_EQ(j.max_error_rate_increase, 0);
  EXPECT_DOUBLE_EQ(j.max_p99_seconds, 0.25);
  EXPECT_NEAR(j.fail_below, 0.025, 1e-15);
  EXPECT_DOUBLE_EQ(j.pass_from, 0.5);
  EXPECT_NEAR(j.error_rate_p_value, 0.634, 0.001);  // P(X >= 1 | 100, 1%)
  EXPECT_LT(j.error_rate_lower, 0.01);
  EXPECT_GT(j.error_rate_upper, 0.01);
  EXPECT_FALSE(std::isnan(j.p_value));
  EXPECT_EQ(j.consecutive_passes, 1u);
  EXPECT_EQ(j.reason,
            "error rate 1.00% (1/100, judgement 1 of this step) within max_error_rate 1.00% "
            "(p=0.634 >= 0.5); not shown higher than stable 0.40% (40/9900) (p=0.13 >= 0.025); "
            "p99 200ms <= max_p99_latency 250ms");
  ASSERT_EQ(d.c.status().last.size(), 1u);
  EXPECT_EQ(d.c.status().last.back().reason, j.reason);
}

TEST(Rollout, KeepsTheLastTwentyJudgements) {
  auto p = policy();
  p.consecutive_successes = 1000;
  Driver d = start(p);
  for (int i = 0; i < 25; ++i) d.tick(kClean);
  const auto& last = d.c.status().last;
  ASSERT_EQ(last.size(), RolloutController::kMaxJudgements);
  EXPECT_EQ(last.front().window, 6u);
  EXPECT_EQ(last.back().window, 25u);
}

TEST(Rollout, StartDelayIgnoresWarmUpWindows) {
  auto p = policy();
  p.start_delay = 2min;
  Driver d = start(p);
  EXPECT_EQ(d.c.weight_bp(), 100u);  // traffic flows during the warm-up
  EXPECT_EQ(d.c.status().judge_from, kT0 + 2min);
  EXPECT_NE(d.c.status().reason.find("start_delay 120s"), std::string::npos);
  for (int i = 0; i < 3; ++i) {  // 30 s, 60 s, 90 s
    const auto r = d.tick(window(100, 100));
    EXPECT_FALSE(r.judgement);
    EXPECT_FALSE(r.state_changed);
  }
  EXPECT_EQ(d.c.status().step_canary_requests, 0u);  // warm-up errors are not evidence
  EXPECT_TRUE(d.tick(kClean).judgement);             // 120 s
  EXPECT_EQ(d.c.weight_bp(), 500u);
}

TEST(Rollout, PauseAndResume) {
  auto p = policy();
  p.consecutive_successes = 2;
  Driver d = start(p);
  d.tick(kClean);
  auto r = d.c.pause(d.now());
  EXPECT_TRUE(r.state_changed);
  EXPECT_FALSE(r.weight_changed);
  EXPECT_EQ(r.transition_reason, "paused by operator at 1%");
  EXPECT_EQ(d.c.state(), RolloutState::paused);
  r = d.c.pause(d.now());  // again: nothing to do, not an error
  EXPECT_FALSE(r.state_changed);
  EXPECT_TRUE(r.error.empty());
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(d.tick(kClean).judgement);  // paused: no judging
  EXPECT_EQ(d.c.weight_bp(), 100u);

  r = d.c.resume(d.now());
  EXPECT_TRUE(r.state_changed);
  EXPECT_EQ(r.transition_reason, "resumed by operator at 1% (step 1 of 6)");
  EXPECT_EQ(d.c.state(), RolloutState::progressing);
  EXPECT_EQ(d.c.status().consecutive_passes, 0u);  // evidence starts over
  EXPECT_FALSE(d.c.resume(d.now()).state_changed);
  d.tick(kClean);
  EXPECT_EQ(d.c.weight_bp(), 100u);
  d.tick(kClean);
  EXPECT_EQ(d.c.weight_bp(), 500u);
}

TEST(Rollout, Promote) {
  Driver d = start(policy());
  auto r = d.c.promote(d.now());
  EXPECT_TRUE(r.state_changed);
  EXPECT_TRUE(r.weight_changed);
  EXPECT_EQ(r.transition_reason, "promoted by operator (was progressing at 1%)");
  EXPECT_EQ(d.c.state(), RolloutState::promoted);
  EXPECT_EQ(d.c.weight_bp(), 10000u);
  EXPECT_FALSE(d.c.promote(d.now()).state_changed);
  EXPECT_FALSE(d.tick(window(100, 100)).judgement);
  EXPECT_FALSE(d.c.pause(d.now()).error.empty());
  EXPECT_EQ(d.c.resume(d.now()).error,
            "cannot resume: the rollout is promoted; set a weight to start a new one");
}

TEST(Rollout, Abort) {
  Driver d = start(policy());
  d.c.pause(d.now());
  auto r = d.c.abort(d.now());
  EXPECT_TRUE(r.state_changed);
  EXPECT_TRUE(r.weight_changed);
  EXPECT_EQ(r.transition_reason, "aborted by operator (was paused at 1%)");
  EXPECT_EQ(d.c.state(), RolloutState::rolled_back);
  EXPECT_EQ(d.c.weight_bp(), 0u);
  EXPECT_FALSE(d.c.abort(d.now()).state_changed);
  EXPECT_FALSE(d.tick(kClean).judgement);
  EXPECT_EQ(d.c.pause(d.now()).error, "cannot pause: the rollout is rolled_back");
  // An operator may still promote after an abort, and abort after a promotion.
  d.c.promote(d.now());
  EXPECT_EQ(d.c.weight_bp(), 10000u);
  d.c.abort(d.now());
  EXPECT_EQ(d.c.weight_bp(), 0u);
}

TEST(Rollout, SetWeightWhileProgressingContinuesFromThere) {
  Driver d = start(policy());
  d.tick(window(100, 2));  // inconclusive evidence that the new weight must not inherit
  auto r = d.c.set_weight(700, d.now());
  EXPECT_TRUE(r.weight_changed);
  EXPECT_FALSE(r.state_changed);
  EXPECT_EQ(r.transition_reason,
            "weight set to 7% by operator; judging continues from there (step 3 of 6)");
  EXPECT_EQ(d.c.state(), RolloutState::progressing);
  EXPECT_EQ(d.c.status().step_index, 2);
  EXPECT_EQ(d.c.status().step_canary_requests, 0u);
  d.tick(kClean);
  EXPECT_EQ(d.c.weight_bp(), 1000u);

  EXPECT_EQ(d.c.set_weight(10001, d.now()).error, "weight must be between 0 and 100%, got 100.01%");
  EXPECT_EQ(d.c.weight_bp(), 1000u);

  // 0 stops the rollout (a canary without traffic cannot be judged); resume restarts it.
  r = d.c.set_weight(0, d.now());
  EXPECT_TRUE(r.state_changed);
  EXPECT_EQ(d.c.state(), RolloutState::idle);
  EXPECT_EQ(d.c.weight_bp(), 0u);
  EXPECT_FALSE(d.tick(kClean).judgement);
  r = d.c.resume(d.now());
  EXPECT_EQ(r.transition_reason, "started by operator at 1% (step 1 of 6)");
  EXPECT_EQ(d.c.weight_bp(), 100u);
}

TEST(Rollout, SetWeightWhilePausedOrAfterTheEnd) {
  Driver d = start(policy());
  d.c.pause(d.now());
  d.c.set_weight(2500, d.now());
  EXPECT_EQ(d.c.state(), RolloutState::paused);
  EXPECT_EQ(d.c.weight_bp(), 2500u);
  d.c.resume(d.now());
  d.tick(kClean);
  EXPECT_EQ(d.c.weight_bp(), 5000u);

  auto p = policy();
  p.start_delay = 1min;
  Driver done = start(p);
  done.c.abort(done.now());
  auto r = done.c.set_weight(500, done.now());
  EXPECT_EQ(done.c.state(), RolloutState::idle);
  EXPECT_EQ(done.c.weight_bp(), 500u);
  EXPECT_EQ(r.transition_reason,
            "weight set to 5% by operator after the rollout was rolled_back; resume starts a new "
            "rollout");
  done.c.resume(done.now());  // a new rollout: warm-up again
  EXPECT_EQ(done.c.state(), RolloutState::progressing);
  EXPECT_EQ(done.c.weight_bp(), 500u);
  EXPECT_EQ(done.c.status().judge_from, done.now() + 1min);
}

TEST(Rollout, ResumesAPersistedStatus) {
  auto p = policy();
  p.consecutive_successes = 3;
  Driver d = start(p);
  d.tick(kClean);
  d.tick(kClean);
  const RolloutStatus saved = d.c.status();

  RolloutController restored(p, saved);
  EXPECT_EQ(restored.state(), RolloutState::progressing);
  EXPECT_EQ(restored.weight_bp(), 100u);
  EXPECT_EQ(restored.status().consecutive_passes, 2u);
  EXPECT_EQ(restored.status().step_canary_requests, 200u);
  EXPECT_EQ(restored.status().last.size(), 2u);
  restored.tick(d.now() + 30s, kClean, kStable);  // the third pass moves on
  EXPECT_EQ(restored.weight_bp(), 500u);

  // Reloaded with other steps: the step is recomputed and its evidence dropped.
  RolloutController moved(policy({50, 100, 200}), saved);
  EXPECT_EQ(moved.status().step_index, 1);
  EXPECT_EQ(moved.status().consecutive_passes, 0u);
  EXPECT_EQ(moved.status().step_canary_requests, 0u);

  // Inconsistent files are repaired: weights of done states, long histories.
  RolloutStatus odd = saved;
  odd.state = RolloutState::promoted;
  odd.weight_bp = 300;
  for (int i = 0; i < 30; ++i) odd.last.push_back(Judgement{});
  RolloutController repaired(p, odd);
  EXPECT_EQ(repaired.weight_bp(), 10000u);
  EXPECT_EQ(repaired.status().last.size(), RolloutController::kMaxJudgements);
}

TEST(Rollout, DefaultPolicyFromConfigWorks) {
  config::Rollout p;  // only steps set, as `rollout: {steps: [100]}` parses
  p.steps_bp = {10000};
  Driver d = start(p);
  EXPECT_EQ(d.c.weight_bp(), 10000u);
  d.tick(window(100, 0), window(0, 0));
  EXPECT_EQ(d.c.state(), RolloutState::promoted);
}

}  // namespace
}  // namespace gp::routing
