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
  p.step_warmup = 0s;  // the warm-up has its own tests
  return p;
}

VersionWindow window(std::uint64_t requests, std::uint64_t errors, double p99 = NAN) {
  return VersionWindow{requests, errors, p99};
}

// No errors in 1,000 requests: enough to rule out the 1% limit at any step in one window.
const VersionWindow kClean = window(1000, 0);
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
  EXPECT_EQ(r.transition_reason.rfind("step 2 of 6 (5%) after 1 pass in a row at 1%: against "
                                      "stable: rules out 32x stable's error rate (",
                                      0),
            0u)
      << r.transition_reason;
  EXPECT_NE(r.transition_reason.find("canary 0/1000 errors, stable 50/10000 in this window"),
            std::string::npos)
      << r.transition_reason;
}

// min_requests gates a pass, not a judgement: every window is judged.
TEST(Rollout, MinRequestsGatesThePass) {
  Driver d = start(policy());
  for (int i = 1; i <= 4; ++i) {
    const auto r = d.tick(window(10, 0));
    ASSERT_TRUE(r.judgement);
    EXPECT_EQ(r.judgement->verdict, Verdict::inconclusive) << r.judgement->reason;
    EXPECT_NE(r.judgement->reason.find("the step has " + std::to_string(10 * i) +
                                       " canary requests < min_requests 50"),
              std::string::npos)
        << r.judgement->reason;
  }
  EXPECT_EQ(d.c.weight_bp(), 100u);
  EXPECT_EQ(d.tick(window(10, 0)).judgement->verdict, Verdict::pass);  // 50 now
  EXPECT_EQ(d.c.weight_bp(), 500u);
}

TEST(Rollout, AnythingButAPassEndsARunOfPasses) {
  auto p = policy();
  p.consecutive_successes = 2;
  Driver d = start(p);
  d.tick(kClean);
  EXPECT_EQ(d.c.status().consecutive_passes, 1u);
  EXPECT_EQ(d.tick(kClean, window(10000, 500)).judgement->verdict, Verdict::hold);
  EXPECT_EQ(d.c.status().consecutive_passes, 0u);
  d.tick(kClean);
  EXPECT_EQ(d.c.weight_bp(), 100u);
  d.tick(kClean);
  EXPECT_EQ(d.c.weight_bp(), 500u);
}

// "A canary failing 10 of its first 10 requests is not kept up": overwhelming evidence fails at
// once, whatever min_requests says.
TEST(Rollout, OverwhelmingEvidenceFailsBelowMinRequests) {
  Driver d = start(policy());
  auto r = d.tick(window(10, 10));
  EXPECT_EQ(r.judgement->verdict, Verdict::fail) << r.judgement->reason;
  r = d.tick(window(10, 10));
  EXPECT_EQ(d.c.state(), RolloutState::rolled_back);
  EXPECT_EQ(r.transition_reason.rfind("rolled back after 2 failures in a row at 1%: ", 0), 0u)
      << r.transition_reason;
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
  EXPECT_EQ(r.transition_reason.rfind("rolled back after 3 failures in a row at 1%: canary at 2x "
                                      "stable's error rate or worse (evidence ",
                                      0),
            0u)
      << r.transition_reason;
  EXPECT_EQ(d.c.status().reason, r.transition_reason);
  EXPECT_EQ(d.c.status().since, d.now());
}

// A failure count lasts while a test stays over its bar: a window that does not confirm it is
// not a failure but does not clear it either; a window under every bar does.
TEST(Rollout, FailureCountsLastWhileOverTheBar) {
  auto p = policy();
  p.failure_limit = 3;
  Driver d = start(p);
  EXPECT_EQ(d.tick(window(100, 50)).judgement->verdict, Verdict::fail);
  const auto quiet = d.tick(kClean);
  EXPECT_EQ(quiet.judgement->verdict, Verdict::inconclusive) << quiet.judgement->reason;
  EXPECT_EQ(d.c.status().consecutive_failures, 1u);
  d.tick(window(100, 50));
  d.tick(window(100, 50));
  EXPECT_EQ(d.c.state(), RolloutState::rolled_back);

  // One window alone above max_error_rate (5/100) and then a clean one: cleared.
  Driver once = start(p);
  const auto bad = once.tick(window(100, 5));
  EXPECT_EQ(bad.judgement->verdict, Verdict::fail) << bad.judgement->reason;
  EXPECT_NE(bad.judgement->reason.find("this window alone: canary 5/100 above max_error_rate"),
            std::string::npos)
      << bad.judgement->reason;
  once.tick(kClean);
  EXPECT_EQ(once.c.status().consecutive_failures, 0u);
}

TEST(Rollout, AHandfulOfErrorsIsNotAFailure) {
  // 2 or 3 errors in 100 against a 1% limit happen 26% / 8% of the time at exactly 1%.
  for (std::uint64_t errors : {1u, 2u, 3u}) {
    Driver d = start(policy());
    const auto r = d.tick(window(100, errors));
    EXPECT_NE(r.judgement->verdict, Verdict::fail) << r.judgement->reason;
    EXPECT_EQ(d.c.status().consecutive_failures, 0u);
  }
}

// Steps reset their counts, not the evidence: a regression seen at 1% still counts at 5%.
TEST(Rollout, EvidenceIsKeptAcrossSteps) {
  Driver d = start(policy());
  d.tick(kClean);
  ASSERT_EQ(d.c.weight_bp(), 500u);
  EXPECT_EQ(d.c.status().step_canary_requests, 0u);
  EXPECT_TRUE(d.c.status().evidence.relative_active);
  EXPECT_LT(d.c.status().evidence.relative[0], 0);  // 0 errors against stable's 50
  const RolloutStatus before = d.c.status();
  d.c.pause(d.now());  // an operator's action starts afresh
  EXPECT_FALSE(d.c.status().evidence.relative_active);
  EXPECT_NE(d.c.status().evidence, before.evidence);
}

TEST(Rollout, RelativeCheck) {
  auto p = policy();
  p.max_error_rate = 1;  // no absolute limit
  {
    Driver d = start(p);
    const auto r = d.tick(window(1000, 20), window(10000, 50));  // 2% vs 0.5%
    const Judgement& j = *r.judgement;
    EXPECT_EQ(j.verdict, Verdict::fail) << j.reason;
    EXPECT_GE(j.relative.evidence, j.relative.bar);
    EXPECT_DOUBLE_EQ(j.stable.error_rate, 0.005);
    EXPECT_EQ(j.reason.rfind("canary at 2x stable's error rate or worse (evidence ", 0), 0u)
        << j.reason;
  }
  {  // A few errors more than stable at low traffic: no failure.
    Driver d = start(p);
    EXPECT_NE(d.tick(window(100, 2), window(9900, 50)).judgement->verdict, Verdict::fail);
  }
  {  // Same as stable: pass.
    Driver d = start(p);
    EXPECT_EQ(d.tick(window(1000, 20), window(10000, 200)).judgement->verdict, Verdict::pass);
  }
  {  // compare_to_stable: false judges the canary by itself.
    p.compare_to_stable = false;
    p.max_error_rate = 0.05;
    Driver d = start(p);
    const auto r = d.tick(window(1000, 20), window(10000, 50));
    EXPECT_NE(r.judgement->verdict, Verdict::fail) << r.judgement->reason;
    EXPECT_TRUE(std::isnan(r.judgement->relative.evidence));
  }
}

// Both versions failing together is not the canary's fault: hold, neither pass nor fail, and
// the rollout goes on when stable recovers.
TEST(Rollout, SharedOutageHolds) {
  Driver d = start(policy());
  for (int i = 0; i < 5; ++i) {
    const auto r = d.tick(window(100, 5), window(10000, 500));  // both at 5%
    EXPECT_EQ(r.judgement->verdict, Verdict::hold) << r.judgement->reason;
    EXPECT_EQ(r.judgement->reason.rfind("holding: stable itself above max_error_rate 1.00% in "
                                        "this window (500/10000, p=",
                                        0),
              0u)
        << r.judgement->reason;
  }
  EXPECT_EQ(d.c.status().holds, 5u);
  EXPECT_EQ(d.c.state(), RolloutState::progressing);
  EXPECT_EQ(d.c.weight_bp(), 100u);
  d.tick(kClean);  // stable recovered
  EXPECT_EQ(d.c.weight_bp(), 500u);
}

TEST(Rollout, WithoutStableTheAbsoluteLimitDecides) {
  Driver d = start(policy({10000}));
  auto r = d.tick(window(100, 1), window(0, 0));
  EXPECT_EQ(r.judgement->verdict, Verdict::inconclusive) << r.judgement->reason;
  EXPECT_NE(r.judgement->reason.find("no stable traffic to compare with yet"), std::string::npos);
  r = d.tick(window(1000, 1), window(0, 0));
  EXPECT_EQ(r.judgement->verdict, Verdict::pass) << r.judgement->reason;
  EXPECT_EQ(d.c.state(), RolloutState::promoted);
}

// Latency is judged from the requests over max_p99_latency, in every window however small
// (a p99 "not judged" or "unknown" never passes).
TEST(Rollout, LatencyFromTheRequestsOverTheLimit) {
  auto p = policy();
  p.max_p99_latency = 300ms;
  auto slow = [](std::uint64_t requests, std::uint64_t over) {
    VersionWindow w = window(requests, 0, 0.45);
    w.slow = over;
    return w;
  };
  {
    Driver d = start(p);
    const auto r = d.tick(slow(20, 20));
    EXPECT_EQ(r.judgement->verdict, Verdict::fail) << r.judgement->reason;
    EXPECT_EQ(r.judgement->reason.rfind("more than 1% of canary requests slower than "
                                        "max_p99_latency 300ms (20/20 in this window; evidence ",
                                        0),
              0u)
        << r.judgement->reason;
    EXPECT_EQ(r.judgement->canary.slow, 20u);
    EXPECT_DOUBLE_EQ(r.judgement->max_p99_seconds, 0.3);
  }
  {  // 5% over the limit at 25%: never a pass.
    Driver d = start(p, 2500);
    for (int i = 0; i < 30; ++i) {
      const auto r = d.tick(slow(500, 25), window(1500, 7));
      ASSERT_NE(r.judgement->verdict, Verdict::pass) << i << ": " << r.judgement->reason;
    }
    EXPECT_NE(d.c.state(), RolloutState::promoted);
  }
  {  // Nothing over the limit: passes.
    Driver d = start(p);
    EXPECT_EQ(d.tick(slow(100, 0)).judgement->verdict, Verdict::pass);
  }
}

// A window of `requests` at `seconds` each (one sketch bin).
VersionWindow timed(std::uint64_t requests, double seconds) {
  VersionWindow w = window(requests, 0, seconds);
  w.latency = {{seconds * 0.9, requests / 2}, {seconds * 1.1, requests - requests / 2}};
  return w;
}

TEST(Rollout, LatencyAgainstStable) {
  auto p = policy();
  p.max_latency_ratio = 1.5;
  {  // 2x stable's latency: fails, with the window's rank probability in the reason.
    Driver d = start(p, 2500);
    const auto r = d.tick(timed(500, 0.2), timed(1500, 0.1));
    EXPECT_EQ(r.judgement->verdict, Verdict::fail) << r.judgement->reason;
    EXPECT_EQ(
        r.judgement->reason.rfind("canary's latency above max_latency_ratio 1.5x stable's", 0), 0u)
        << r.judgement->reason;
    EXPECT_DOUBLE_EQ(r.judgement->rank_probability, 1);
    EXPECT_DOUBLE_EQ(r.judgement->max_latency_ratio, 1.5);
    EXPECT_GE(r.judgement->latency_ratio.evidence, r.judgement->latency_ratio.bar);
  }
  {  // As fast as stable: passes.
    Driver d = start(p, 2500);
    const auto r = d.tick(timed(1000, 0.1), timed(3000, 0.1));
    EXPECT_EQ(r.judgement->verdict, Verdict::pass) << r.judgement->reason;
    EXPECT_NE(r.judgement->reason.find("latency against stable: rules out 1.5x stable's latency"),
              std::string::npos)
        << r.judgement->reason;
  }
  {  // No latencies on one side: never a pass on the errors alone.
    Driver d = start(p, 2500);
    const auto r = d.tick(window(500, 0), timed(1500, 0.1));
    EXPECT_EQ(r.judgement->verdict, Verdict::inconclusive) << r.judgement->reason;
    EXPECT_NE(r.judgement->reason.find("no window with latencies on both versions yet"),
              std::string::npos)
        << r.judgement->reason;
  }
}

TEST(Rollout, WarmupAfterEveryWeightChange) {
  auto p = policy({500, 10000});
  p.step_warmup.reset();  // default: one interval
  Driver d = start(p);
  auto r = d.tick(kClean);
  EXPECT_EQ(r.judgement->verdict, Verdict::inconclusive);
  EXPECT_TRUE(r.judgement->warmup);
  EXPECT_NE(r.judgement->reason.find("warm-up after the weight change (window 1 of 1)"),
            std::string::npos)
      << r.judgement->reason;
  EXPECT_EQ(d.c.status().step_canary_requests, 0u);  // not the step's evidence
  EXPECT_FALSE(d.c.status().evidence.relative_active);
  EXPECT_FALSE(d.c.status().evidence.absolute_active);
  EXPECT_EQ(d.c.status().evidence.absolute_accept, EvidenceSums{});
  r = d.tick(kClean);
  EXPECT_EQ(r.judgement->verdict, Verdict::pass) << r.judgement->reason;
  EXPECT_FALSE(r.judgement->warmup);
  EXPECT_EQ(d.c.weight_bp(), 10000u);
  EXPECT_TRUE(d.tick(kClean).judgement->warmup);  // again after the step
  EXPECT_EQ(d.tick(kClean).judgement->verdict, Verdict::pass);
  EXPECT_EQ(d.c.state(), RolloutState::promoted);

  // Two and a half intervals: three windows. 0: none.
  p.step_warmup = 75s;
  Driver longer = start(p);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(longer.tick(kClean).judgement->warmup) << i;
  EXPECT_FALSE(longer.tick(kClean).judgement->warmup);
  p.step_warmup = 0s;
  EXPECT_FALSE(start(p).tick(kClean).judgement->warmup);
}

TEST(Rollout, ABreachFailsDuringTheWarmup) {
  auto p = policy();
  p.step_warmup.reset();
  Driver d = start(p);
  const auto r = d.tick(window(10, 10));
  EXPECT_TRUE(r.judgement->warmup);
  EXPECT_EQ(r.judgement->verdict, Verdict::fail) << r.judgement->reason;
  EXPECT_EQ(d.tick(window(10, 10)).judgement->verdict, Verdict::fail);
  EXPECT_EQ(d.c.state(), RolloutState::rolled_back);
}

TEST(Rollout, JudgementsKeepTheNumbersNextToTheThresholds) {
  auto p = policy();
  p.max_p99_latency = 250ms;
  Driver d = start(p);
  VersionWindow canary = window(100, 1, 0.2);
  canary.slow = 1;
  const auto r = d.tick(canary, window(9900, 40, 0.15));
  const Judgement& j = *r.judgement;
  EXPECT_EQ(j.time, d.now());
  EXPECT_EQ(j.verdict, Verdict::pass) << j.reason;
  EXPECT_EQ(j.step_index, 0);
  EXPECT_EQ(j.weight_bp, 100u);
  EXPECT_EQ(j.window, 1u);
  EXPECT_EQ(j.canary.requests, 100u);
  EXPECT_EQ(j.canary.errors, 1u);
  EXPECT_EQ(j.canary.slow, 1u);
  EXPECT_DOUBLE_EQ(j.canary.error_rate, 0.01);
  EXPECT_EQ(j.stable.requests, 9900u);
  EXPECT_EQ(j.stable.step_errors, 40u);
  EXPECT_DOUBLE_EQ(j.stable.p99_seconds, 0.15);
  EXPECT_EQ(j.min_requests, 50u);
  EXPECT_DOUBLE_EQ(j.max_error_rate, 0.01);
  EXPECT_DOUBLE_EQ(j.max_error_rate_ratio, 2);
  EXPECT_DOUBLE_EQ(j.confidence, 0.995);
  EXPECT_DOUBLE_EQ(j.compare_confidence, 0.995);
  EXPECT_DOUBLE_EQ(j.power, 0.95);
  EXPECT_TRUE(j.compare_to_stable);
  EXPECT_DOUBLE_EQ(j.max_p99_seconds, 0.25);
  EXPECT_DOUBLE_EQ(j.dispersion, 1);  // no A/A counts: nothing says errors cluster
  EXPECT_NEAR(j.relative.bar, std::log(200.0), 1e-9);
  EXPECT_NEAR(j.relative.pass_bound, std::log(0.05), 1e-9);
  EXPECT_DOUBLE_EQ(j.relative.pass_factor, 32);  // at 1%: rules out 32x (docs/analysis.md)
  EXPECT_LT(j.relative.pass_evidence, j.relative.pass_bound);
  EXPECT_LT(j.relative.evidence, j.relative.bar);
  EXPECT_FALSE(std::isnan(j.absolute.evidence));
  EXPECT_FALSE(std::isnan(j.latency.evidence));
  EXPECT_NEAR(j.canary_breach_p, 0.634, 0.001);  // P(X >= 1 | 100, 1%)
  EXPECT_GT(j.stable_breach_p, 0.5);
  EXPECT_TRUE(std::isnan(j.requests_to_pass));  // passed
  EXPECT_EQ(j.consecutive_passes, 1u);
  ASSERT_EQ(d.c.status().last.size(), 1u);
  EXPECT_EQ(d.c.status().last.back().reason, j.reason);
}

// mode: analyze judges and says what it would do, and moves nothing.
TEST(Rollout, AnalyzeModeMovesNothing) {
  auto p = policy();
  p.analyze_only = true;
  Driver d = start(p);
  auto r = d.tick(kClean);
  EXPECT_EQ(r.judgement->verdict, Verdict::pass);
  EXPECT_TRUE(r.judgement->analyze_only);
  EXPECT_NE(r.judgement->reason.find("; analyze mode: would step up"), std::string::npos)
      << r.judgement->reason;
  EXPECT_FALSE(r.weight_changed);
  EXPECT_EQ(d.c.weight_bp(), 100u);
  EXPECT_EQ(d.c.status().consecutive_passes, 0u);  // counted afresh
  d.tick(window(100, 50));
  r = d.tick(window(100, 50));
  EXPECT_EQ(r.judgement->verdict, Verdict::fail);
  EXPECT_NE(r.judgement->reason.find("; analyze mode: would roll back"), std::string::npos)
      << r.judgement->reason;
  EXPECT_FALSE(r.state_changed);
  EXPECT_EQ(d.c.state(), RolloutState::progressing);
  EXPECT_EQ(d.c.weight_bp(), 100u);
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
  d.tick(window(100, 2));  // evidence that the new weight must not inherit
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
  EXPECT_EQ(restored.status().step_canary_requests, 2000u);
  EXPECT_EQ(restored.status().evidence, saved.evidence);
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
  // The default warm-up: the first window after the weight change is not judged.
  d.tick(window(1000, 0), window(0, 0));
  EXPECT_EQ(d.c.state(), RolloutState::progressing);
  EXPECT_NE(d.c.status().last.back().reason.find("warm-up"), std::string::npos);
  d.tick(window(1000, 0), window(0, 0));  // 0 in 1000: rules out the 1% limit
  EXPECT_EQ(d.c.state(), RolloutState::promoted);
}

}  // namespace
}  // namespace gp::routing
