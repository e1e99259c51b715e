// The rollout status as the state file and the fleet store it.
#include "proxy/rollout_json.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>

namespace gp::proxy {
namespace {

const routing::TimePoint kT0 = routing::TimePoint{} + std::chrono::hours(24 * 365 * 55);

TEST(RolloutJson, StatusRoundTripKeepsTheEvidence) {
  config::Rollout p;
  p.step_warmup = std::chrono::seconds(0);
  p.steps_bp = {100, 500, 10000};
  p.max_latency_ratio = 1.5;
  routing::RolloutController ctl(p, 0, kT0);
  // Stable's errors all in one half: they cluster.
  routing::VersionWindow canary{100, 1, 0.2, 50, 1, 0};
  canary.latency = {{0.1, 60}, {0.2, 40}};
  routing::VersionWindow stable{9900, 40, 0.1, 4950, 40, 0};
  stable.latency = {{0.05, 9000}, {0.1, 900}};
  (void)ctl.tick(kT0 + std::chrono::seconds(30), canary, stable);
  const routing::RolloutStatus& s = ctl.status();
  const routing::RolloutStatus back =
      status_from_json(boost::json::parse(boost::json::serialize(to_json(s))).as_object());
  for (std::size_t j = 0; j < s.evidence.relative.size(); ++j) {
    EXPECT_NEAR(back.evidence.relative[j], s.evidence.relative[j], 1e-9) << j;
    EXPECT_NEAR(back.evidence.absolute_accept[j], s.evidence.absolute_accept[j], 1e-9) << j;
  }
  EXPECT_NEAR(back.evidence.dispersion_num, s.evidence.dispersion_num, 1e-9);
  EXPECT_TRUE(back.evidence.rank_active);
  EXPECT_NE(s.evidence.rank_information, 0);
  EXPECT_NEAR(back.evidence.rank_score, s.evidence.rank_score, 1e-9);
  EXPECT_NEAR(back.evidence.rank_information, s.evidence.rank_information, 1e-6);
  EXPECT_EQ(back.evidence.latency_ratio, 1.5);
  EXPECT_EQ(back.last.back().max_latency_ratio, 1.5);
  EXPECT_NEAR(back.last.back().rank_probability, s.last.back().rank_probability, 1e-12);
  EXPECT_EQ(back.last.back().latency_ratio.bar, s.last.back().latency_ratio.bar);
  EXPECT_GT(back.last.back().dispersion, 1);
  EXPECT_EQ(back.last.back().verdict, s.last.back().verdict);
  EXPECT_EQ(back.last.back().reason, s.last.back().reason);
  EXPECT_EQ(back.step_canary_requests, s.step_canary_requests);
  EXPECT_EQ(back.weight_bp, s.weight_bp);
}

// A state file written before the sequential analysis: it loads, and the analysis starts afresh.
TEST(RolloutJson, StatusOfAnEarlierBuildLoads) {
  const char* text = R"json({"state":"progressing","weight_bp":500,"weight_percent":5,
    "step_index":1,"consecutive_passes":1,"consecutive_failures":0,"step_windows":2,
    "step_canary_requests":200,"step_canary_errors":1,"step_stable_requests":3800,
    "step_stable_errors":20,"pending_canary_requests":0,"step_judgements":2,
    "judge_from_ms":1800000000000,"since_ms":1800000000000,"reason":"step 2 of 6 (5%)",
    "judgements":[{"time_ms":1800000030000,"verdict":"pass","reason":"within",
      "step_index":1,"weight_bp":500,"weight_percent":5,"window":2,"judgement":2,
      "new_requests":100,
      "canary":{"requests":100,"errors":0,"step_requests":200,"step_errors":1,
                "error_rate":0.005,"p99_seconds":0.1},
      "stable":{"requests":1900,"errors":10,"step_requests":3800,"step_errors":20,
                "error_rate":0.0052,"p99_seconds":0.1},
      "fail_below":0.0083,"pass_from":0.33,"error_rate_p_value":0.8,"error_rate_lower":0,
      "error_rate_upper":0.03,"p_value":null,
      "thresholds":{"min_requests":50,"max_error_rate":0.01,"confidence":0.95,
                    "compare_to_stable":false,"max_error_rate_increase":0,
                    "max_p99_seconds":null},
      "consecutive_passes":1,"consecutive_failures":0}]})json";
  const routing::RolloutStatus s = status_from_json(boost::json::parse(text).as_object());
  EXPECT_EQ(s.state, routing::RolloutState::progressing);
  EXPECT_EQ(s.weight_bp, 500u);
  EXPECT_EQ(s.evidence, routing::EvidenceState{});
  ASSERT_EQ(s.last.size(), 1u);
  EXPECT_EQ(s.last[0].verdict, routing::Verdict::pass);
  EXPECT_DOUBLE_EQ(s.last[0].dispersion, 1);
  EXPECT_TRUE(std::isnan(s.last[0].relative.evidence));
  EXPECT_EQ(s.last[0].canary.slow, 0u);
}

TEST(RolloutJson, HoldIsAVerdict) {
  config::Rollout p;
  p.step_warmup = std::chrono::seconds(0);
  p.steps_bp = {100, 10000};
  routing::RolloutController ctl(p, 0, kT0);
  (void)ctl.tick(kT0 + std::chrono::seconds(30), {100, 5, 0.1}, {9900, 500, 0.1});
  ASSERT_EQ(ctl.status().last.back().verdict, routing::Verdict::hold);
  const auto back = status_from_json(
      boost::json::parse(boost::json::serialize(to_json(ctl.status()))).as_object());
  EXPECT_EQ(back.last.back().verdict, routing::Verdict::hold);
  EXPECT_EQ(back.holds, 1u);
}

}  // namespace
}  // namespace gp::proxy
