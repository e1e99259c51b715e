#include "routing/outlier.hpp"

#include <gtest/gtest.h>

namespace gp::routing {
namespace {

using namespace std::chrono_literals;
using T = OutlierClock::time_point;

const T kT0 = T(1000s);

OutlierPolicy policy(std::uint32_t failures = 3, OutlierClock::duration base = 10s,
                     OutlierClock::duration max = 35s, std::uint32_t percent = 50) {
  OutlierPolicy p;
  p.consecutive_failures = failures;
  p.ejection_time = base;
  p.max_ejection_time = max;
  p.max_ejection_percent = percent;
  return p;
}

TEST(OutlierPolicyFromConfig, AbsentBlockKeepsTheOldRule) {
  config::Cluster c;
  const OutlierPolicy p = outlier_policy(c);
  EXPECT_EQ(p.consecutive_failures, 1u);
  EXPECT_EQ(p.ejection_time, 5s);
  EXPECT_EQ(p.max_ejection_time, 5s);
  EXPECT_EQ(p.max_ejection_percent, 100u);
  EXPECT_FALSE(p.count_responses);
}

TEST(OutlierPolicyFromConfig, BlockIsTakenAsWritten) {
  config::Cluster c;
  c.outlier_detection = config::OutlierDetection{2, 1500ms, 20s, 30};
  const OutlierPolicy p = outlier_policy(c);
  EXPECT_EQ(p.consecutive_failures, 2u);
  EXPECT_EQ(p.ejection_time, 1500ms);
  EXPECT_EQ(p.max_ejection_time, 20s);
  EXPECT_EQ(p.max_ejection_percent, 30u);
  EXPECT_TRUE(p.count_responses);
}

TEST(OutlierClassify, GatewayErrorsAndLocalFailuresCount) {
  const OutlierPolicy p = policy();
  EXPECT_EQ(classify(p, AttemptResult::connect_failure), 1);
  EXPECT_EQ(classify(p, AttemptResult::reset), 1);
  EXPECT_EQ(classify(p, AttemptResult::timeout), 1);
  EXPECT_EQ(classify(p, AttemptResult::response, 502), 1);
  EXPECT_EQ(classify(p, AttemptResult::response, 503), 1);
  EXPECT_EQ(classify(p, AttemptResult::response, 504), 1);
  EXPECT_EQ(classify(p, AttemptResult::response, 500), -1);  // the application's answer
  EXPECT_EQ(classify(p, AttemptResult::response, 501), -1);
  EXPECT_EQ(classify(p, AttemptResult::response, 200), 0);
  EXPECT_EQ(classify(p, AttemptResult::response, 404), 0);
}

TEST(OutlierClassify, OldRuleCountsConnectFailuresOnly) {
  config::Cluster c;
  const OutlierPolicy p = outlier_policy(c);
  EXPECT_EQ(classify(p, AttemptResult::connect_failure), 1);
  EXPECT_EQ(classify(p, AttemptResult::reset), -1);
  EXPECT_EQ(classify(p, AttemptResult::timeout), -1);
  EXPECT_EQ(classify(p, AttemptResult::response, 503), -1);
  EXPECT_EQ(classify(p, AttemptResult::response, 200), 0);
}

TEST(OutlierCap, NeverMoreThanThePercentAndNeverTheLast) {
  EXPECT_TRUE(ejection_allowed(50, 0, 2));
  EXPECT_FALSE(ejection_allowed(50, 1, 2));
  EXPECT_FALSE(ejection_allowed(50, 0, 1));  // a single endpoint stays below 100%
  EXPECT_FALSE(ejection_allowed(99, 0, 1));
  EXPECT_TRUE(ejection_allowed(100, 0, 1));
  EXPECT_TRUE(ejection_allowed(100, 1, 2));
  EXPECT_FALSE(ejection_allowed(100, 2, 2));
  EXPECT_TRUE(ejection_allowed(50, 1, 4));
  EXPECT_FALSE(ejection_allowed(50, 2, 4));
  EXPECT_FALSE(ejection_allowed(10, 0, 5));  // one of five is 20%
  EXPECT_TRUE(ejection_allowed(20, 0, 5));
  EXPECT_FALSE(ejection_allowed(0, 0, 10));
  EXPECT_FALSE(ejection_allowed(90, 2, 3));  // 3 of 3 would leave none
  EXPECT_FALSE(ejection_allowed(100, 0, 0));
}

TEST(OutlierDuration, GrowsWithTheMultiplierUpToTheCap) {
  const OutlierPolicy p = policy(3, 10s, 35s);
  EXPECT_EQ(ejection_duration(p, 0), 10s);
  EXPECT_EQ(ejection_duration(p, 1), 10s);
  EXPECT_EQ(ejection_duration(p, 2), 20s);
  EXPECT_EQ(ejection_duration(p, 3), 30s);
  EXPECT_EQ(ejection_duration(p, 4), 35s);
  EXPECT_EQ(ejection_duration(p, 4000000000u), 35s);  // no overflow
}

TEST(OutlierRecord, EjectsAtTheThresholdAndReturnsAfterTheEjectionTime) {
  const OutlierPolicy p = policy(3, 10s, 35s);
  EndpointOutlier e;
  EXPECT_FALSE(record_failure(p, e, kT0, 0, 2));
  EXPECT_FALSE(record_failure(p, e, kT0, 0, 2));
  EXPECT_EQ(e.consecutive_failures, 2u);
  EXPECT_FALSE(is_ejected(e, kT0));
  EXPECT_TRUE(record_failure(p, e, kT0 + 1s, 0, 2));
  EXPECT_EQ(e.consecutive_failures, 0u);
  EXPECT_EQ(e.times_ejected, 1u);
  EXPECT_EQ(e.ejected_until, kT0 + 11s);
  EXPECT_TRUE(is_ejected(e, kT0 + 1s));
  EXPECT_TRUE(is_ejected(e, kT0 + 11s - 1ms));
  EXPECT_FALSE(is_ejected(e, kT0 + 11s));
}

TEST(OutlierRecord, SuccessResetsTheCount) {
  const OutlierPolicy p = policy(3);
  EndpointOutlier e;
  record_failure(p, e, kT0, 0, 2);
  record_failure(p, e, kT0, 0, 2);
  record_success(e);
  EXPECT_FALSE(record_failure(p, e, kT0, 0, 2));
  EXPECT_FALSE(record_failure(p, e, kT0, 0, 2));
  EXPECT_TRUE(record_failure(p, e, kT0, 0, 2));
}

TEST(OutlierRecord, FailuresWhileEjectedAreIgnored) {
  const OutlierPolicy p = policy(1, 10s, 35s);
  EndpointOutlier e;
  EXPECT_TRUE(record_failure(p, e, kT0, 0, 2));
  EXPECT_FALSE(record_failure(p, e, kT0 + 5s, 0, 2));  // an answer from before the ejection
  EXPECT_EQ(e.times_ejected, 1u);
  EXPECT_EQ(e.ejected_until, kT0 + 10s);
}

TEST(OutlierRecord, CapHoldsTheCountAtTheThresholdUntilAllowed) {
  const OutlierPolicy p = policy(2, 10s, 35s, 50);
  EndpointOutlier e;
  record_failure(p, e, kT0, 1, 2);
  EXPECT_FALSE(record_failure(p, e, kT0, 1, 2));  // the other endpoint is out
  EXPECT_EQ(e.consecutive_failures, 2u);
  EXPECT_EQ(e.times_ejected, 0u);
  EXPECT_FALSE(record_failure(p, e, kT0, 1, 2));
  EXPECT_EQ(e.consecutive_failures, 2u);              // does not grow past the threshold
  EXPECT_TRUE(record_failure(p, e, kT0 + 1s, 0, 2));  // the other one returned
}

TEST(OutlierRecord, RepeatedEjectionsLastLongerAndResetAfterAQuietPeriod) {
  const OutlierPolicy p = policy(1, 10s, 35s);
  EndpointOutlier e;
  ASSERT_TRUE(record_failure(p, e, kT0, 0, 2));
  EXPECT_EQ(e.ejected_until, kT0 + 10s);
  ASSERT_TRUE(record_failure(p, e, kT0 + 10s, 0, 2));  // fails again right after returning
  EXPECT_EQ(e.multiplier, 2u);
  EXPECT_EQ(e.ejected_until, kT0 + 30s);
  ASSERT_TRUE(record_failure(p, e, kT0 + 30s, 0, 2));
  EXPECT_EQ(e.ejected_until, kT0 + 60s);
  ASSERT_TRUE(record_failure(p, e, kT0 + 60s, 0, 2));
  EXPECT_EQ(e.ejected_until, kT0 + 95s);  // capped at max_ejection_time
  EXPECT_EQ(e.times_ejected, 4u);
  // Healthy for max_ejection_time since it returned: back to the base time.
  ASSERT_TRUE(record_failure(p, e, kT0 + 95s + 35s, 0, 2));
  EXPECT_EQ(e.multiplier, 1u);
  EXPECT_EQ(e.ejected_until, kT0 + 130s + 10s);
  EXPECT_EQ(e.times_ejected, 5u);
}

TEST(OutlierRecord, OldRuleEjectsASingleEndpointOnTheFirstRefusal) {
  config::Cluster c;
  const OutlierPolicy p = outlier_policy(c);
  EndpointOutlier e;
  EXPECT_TRUE(record_failure(p, e, kT0, 0, 1));
  EXPECT_EQ(e.ejected_until, kT0 + 5s);
  EXPECT_TRUE(record_failure(p, e, kT0 + 5s, 0, 1));
  EXPECT_EQ(e.ejected_until, kT0 + 10s);  // fixed: max_ejection_time is 5 s too
}

}  // namespace
}  // namespace gp::routing
