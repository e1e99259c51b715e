#include "proxy/upstream/cluster_state.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace gp::proxy {
namespace {

using namespace std::chrono_literals;
using routing::AttemptResult;
using routing::OutlierClock;

TEST(ClusterStateBreaker, TakeRespectsTheLimitAndSlotsGiveBack) {
  ClusterState cs;
  BreakerSlot a, b, c, refused;
  ASSERT_TRUE(ClusterState::take(cs.active, 2, a));
  ASSERT_TRUE(ClusterState::take(cs.active, 2, b));
  EXPECT_FALSE(ClusterState::take(cs.active, 2, refused));
  EXPECT_EQ(cs.active.load(), 2u);
  b.release();
  EXPECT_EQ(cs.active.load(), 1u);
  ASSERT_TRUE(ClusterState::take(cs.active, 2, c));
  BreakerSlot moved = std::move(c);
  EXPECT_EQ(cs.active.load(), 2u);
  { BreakerSlot gone = std::move(moved); }
  EXPECT_EQ(cs.active.load(), 1u);
  a.release();
  EXPECT_EQ(cs.active.load(), 0u);
  // No limit: always allowed and nothing counted (no shared write per request).
  BreakerSlot free;
  EXPECT_TRUE(ClusterState::take(cs.pending, 0, free));
  EXPECT_EQ(cs.pending.load(), 0u);
}

TEST(ClusterStateBreaker, ConcurrentTakesNeverExceedTheLimit) {
  ClusterState cs;
  constexpr int kLimit = 3;
  std::atomic<int> holders{0};
  std::atomic<int> max_holders{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        BreakerSlot slot;
        if (!ClusterState::take(cs.active, kLimit, slot)) continue;
        const int now = ++holders;
        int prev = max_holders.load();
        while (now > prev && !max_holders.compare_exchange_weak(prev, now)) {
        }
        --holders;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(cs.active.load(), 0u);
  EXPECT_LE(max_holders.load(), kLimit);
  EXPECT_GE(max_holders.load(), 1);
}

TEST(ClusterStateOutlier, EjectsUpToTheCapAndUpdatesTheMetrics) {
  metrics::EndpointStats stats_a, stats_b;
  EndpointHealthList eps{std::make_shared<EndpointHealth>("127.0.0.1:1", &stats_a),
                         std::make_shared<EndpointHealth>("127.0.0.1:2", &stats_b)};
  ClusterState cs;
  routing::OutlierPolicy p;
  p.consecutive_failures = 2;
  p.ejection_time = 1s;
  p.max_ejection_time = 10s;
  p.max_ejection_percent = 50;
  const auto t0 = OutlierClock::now();

  EXPECT_FALSE(cs.report(p, eps, 0, AttemptResult::response, 503, t0));
  EXPECT_EQ(eps[0]->load().consecutive_failures, 1u);
  EXPECT_FALSE(cs.report(p, eps, 0, AttemptResult::response, 200, t0));  // clears
  EXPECT_EQ(eps[0]->load().consecutive_failures, 0u);
  EXPECT_FALSE(cs.report(p, eps, 0, AttemptResult::reset, 0, t0));
  EXPECT_TRUE(cs.report(p, eps, 0, AttemptResult::connect_failure, 0, t0));
  EXPECT_TRUE(eps[0]->ejected(t0 + 999ms));
  EXPECT_FALSE(eps[0]->ejected(t0 + 1s));
  EXPECT_EQ(stats_a.ejections.load(), 1u);
  EXPECT_EQ(
      stats_a.ejected_until_ns.load(),
      std::chrono::duration_cast<std::chrono::nanoseconds>((t0 + 1s).time_since_epoch()).count());

  // The other one may not go while the first is out (50% of two).
  EXPECT_FALSE(cs.report(p, eps, 1, AttemptResult::timeout, 0, t0));
  EXPECT_FALSE(cs.report(p, eps, 1, AttemptResult::timeout, 0, t0));
  EXPECT_FALSE(eps[1]->ejected(t0));
  EXPECT_EQ(stats_b.ejections.load(), 0u);
  // Once the first is back, the next failure ejects it.
  EXPECT_TRUE(cs.report(p, eps, 1, AttemptResult::timeout, 0, t0 + 1s));
  EXPECT_EQ(stats_b.ejections.load(), 1u);
  EXPECT_EQ(eps[1]->load().times_ejected, 1u);
}

TEST(ClusterStateOutlier, ConcurrentFailuresEjectOnce) {
  metrics::EndpointStats stats;
  EndpointHealthList eps{std::make_shared<EndpointHealth>("a:1", &stats),
                         std::make_shared<EndpointHealth>("a:2", nullptr)};
  ClusterState cs;
  routing::OutlierPolicy p;
  p.consecutive_failures = 5;
  p.ejection_time = 60s;
  const auto t0 = OutlierClock::now();
  std::atomic<int> ejections{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (cs.report(p, eps, 0, AttemptResult::connect_failure, 0, t0)) ++ejections;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ejections.load(), 1);
  EXPECT_EQ(stats.ejections.load(), 1u);
}

}  // namespace
}  // namespace gp::proxy
