// FleetWindows: the leader's sum of the members' cumulative totals (no clock, no sockets).
#include "metrics/fleet_window.hpp"

#include <gtest/gtest.h>

namespace gp::metrics {
namespace {

constexpr std::size_t kStable = 0;
constexpr std::size_t kCanary = 1;

// Cumulative totals: `requests` requests, `errors` of them 5xx, all in bucket `bucket`.
Snapshot totals(std::uint64_t requests, std::uint64_t errors, std::size_t bucket = 3) {
  Snapshot s;
  s.requests = requests;
  s.errors_5xx = errors;
  s.bucket_counts[bucket] = requests;
  s.sum_seconds = 0.001 * static_cast<double>(requests);
  return s;
}

MemberTotals member(std::string id, Snapshot stable, Snapshot canary,
                    const std::string& route = "shop") {
  MemberTotals m;
  m.instance = std::move(id);
  m.routes[route] = {stable, canary};
  return m;
}

TEST(FleetWindows, FirstCallTakesBaselinesOnly) {
  FleetWindows w;
  EXPECT_FALSE(w.advance("shop", {member("a", totals(100, 1), totals(10, 0))}));
  auto next = w.advance("shop", {member("a", totals(150, 2), totals(30, 1))});
  ASSERT_TRUE(next);
  EXPECT_EQ((*next)[kStable].requests, 50u);
  EXPECT_EQ((*next)[kStable].errors_5xx, 1u);
  EXPECT_EQ((*next)[kCanary].requests, 20u);
  EXPECT_EQ((*next)[kCanary].errors_5xx, 1u);
  EXPECT_EQ((*next)[kCanary].bucket_counts[3], 20u);
}

TEST(FleetWindows, SumsMembersIncludingTheirHistograms) {
  FleetWindows w;
  (void)w.advance(
      "shop", {member("a", totals(0, 0), totals(0, 0)), member("b", totals(0, 0), totals(0, 0))});
  auto next = w.advance("shop", {member("a", totals(100, 0), totals(40, 2, 3)),
                                 member("b", totals(60, 0), totals(60, 0, 20))});
  ASSERT_TRUE(next);
  auto const& c = (*next)[kCanary];
  EXPECT_EQ(c.requests, 100u);
  EXPECT_EQ(c.errors_5xx, 2u);
  EXPECT_EQ(c.bucket_counts[3], 40u);
  EXPECT_EQ(c.bucket_counts[20], 60u);
  // The fleet's p99 comes from the summed buckets: rank 99 of 100 is in b's slow bucket.
  EXPECT_GT(quantile(c, 0.99), bucket_upper_bound_seconds(19));
  EXPECT_EQ((*next)[kStable].requests, 160u);
}

TEST(FleetWindows, SumsTheAaHalves) {
  FleetWindows w;
  Snapshot a = totals(0, 0);
  Snapshot b = totals(0, 0);
  (void)w.advance("shop", {member("a", a, a), member("b", b, b)});
  a = totals(100, 10);
  a.half_requests = 50;
  a.half_errors_5xx = 8;
  b = totals(60, 6);
  b.half_requests = 30;
  b.half_errors_5xx = 1;
  auto next = w.advance("shop", {member("a", totals(0, 0), a), member("b", totals(0, 0), b)});
  ASSERT_TRUE(next);
  EXPECT_EQ((*next)[kCanary].half_requests, 80u);
  EXPECT_EQ((*next)[kCanary].half_errors_5xx, 9u);
}

TEST(FleetWindows, AReportReadTwiceCountsOnce) {
  FleetWindows w;
  (void)w.advance("shop", {member("a", totals(0, 0), totals(0, 0))});
  auto first = w.advance("shop", {member("a", totals(10, 0), totals(10, 1))});
  auto again = w.advance("shop", {member("a", totals(10, 0), totals(10, 1))});
  ASSERT_TRUE(first && again);
  EXPECT_EQ((*first)[kCanary].requests, 10u);
  EXPECT_EQ((*again)[kCanary].requests, 0u);
}

TEST(FleetWindows, NewMemberCountsFromItsSecondReport) {
  FleetWindows w;
  (void)w.advance("shop", {member("a", totals(0, 0), totals(0, 0))});
  // b joins with history of unknown age: only its baseline is taken.
  auto next = w.advance("shop", {member("a", totals(10, 0), totals(5, 0)),
                                 member("b", totals(1000, 0), totals(500, 0))});
  ASSERT_TRUE(next);
  EXPECT_EQ((*next)[kCanary].requests, 5u);
  next = w.advance("shop", {member("a", totals(10, 0), totals(5, 0)),
                            member("b", totals(1000, 0), totals(520, 3))});
  EXPECT_EQ((*next)[kCanary].requests, 20u);
  EXPECT_EQ((*next)[kCanary].errors_5xx, 3u);
}

TEST(FleetWindows, GoneMemberIsForgottenAndRestartCountsNewTotals) {
  FleetWindows w;
  (void)w.advance("shop", {member("a", totals(0, 0), totals(100, 0)),
                           member("b", totals(0, 0), totals(100, 0))});
  auto next = w.advance("shop", {member("a", totals(0, 0), totals(110, 0))});  // b's lease expired
  EXPECT_EQ((*next)[kCanary].requests, 10u);
  // a restarted: its counters went down, so its new totals are the window.
  next = w.advance("shop", {member("a", totals(0, 0), totals(7, 1))});
  EXPECT_EQ((*next)[kCanary].requests, 7u);
  EXPECT_EQ((*next)[kCanary].errors_5xx, 1u);
}

TEST(FleetWindows, RoutesAreIndependentAndResetRestartsBaselines) {
  FleetWindows w;
  MemberTotals m = member("a", totals(0, 0), totals(0, 0));
  m.routes["api"] = {totals(0, 0), totals(0, 0)};
  (void)w.advance("shop", {m});
  EXPECT_FALSE(w.advance("api", {m}));  // its own first call
  m.routes["shop"] = {totals(0, 0), totals(4, 0)};
  EXPECT_EQ((*w.advance("shop", {m}))[kCanary].requests, 4u);
  w.reset();
  m.routes["shop"] = {totals(0, 0), totals(9, 0)};
  EXPECT_FALSE(w.advance("shop", {m}));
}

}  // namespace
}  // namespace gp::metrics
