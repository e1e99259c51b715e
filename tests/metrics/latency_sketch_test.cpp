#include "metrics/latency_sketch.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "metrics/fleet_window.hpp"
#include "metrics/metrics.hpp"
#include "metrics/route_stats.hpp"
#include "metrics/window.hpp"

namespace gp::metrics {
namespace {

using namespace std::chrono_literals;

std::size_t index_us(std::uint64_t us) {
  return sketch_index(std::chrono::microseconds(us));
}

TEST(LatencySketch, BucketsTileTheRangeInOrder) {
  EXPECT_EQ(index_us(0), 0u);
  EXPECT_EQ(sketch_index(-5ns), 0u);
  EXPECT_EQ(index_us(31), 31u);
  EXPECT_EQ(index_us(32), 32u);
  for (std::size_t i = 0; i + 1 < kSketchFinite; ++i) {
    EXPECT_EQ(sketch_upper_us(i), sketch_lower_us(i + 1)) << i;
    // The bounds are whole microseconds and map back to their bucket.
    const auto lower = static_cast<std::uint64_t>(sketch_lower_us(i));
    const auto last = static_cast<std::uint64_t>(sketch_upper_us(i)) - 1;
    EXPECT_EQ(index_us(lower), i);
    EXPECT_EQ(index_us(last), i);
  }
  EXPECT_EQ(sketch_upper_us(kSketchFinite - 1), std::ldexp(1.0, kSketchTopBit));
  EXPECT_EQ(index_us(std::uint64_t{1} << kSketchTopBit), kSketchFinite);
  EXPECT_EQ(sketch_index(std::chrono::hours(24 * 365)), kSketchFinite);
  EXPECT_TRUE(std::isinf(sketch_upper_us(kSketchFinite)));
}

// The promise the rollout analysis rests on: from 32 us to 134 s, the value a bucket stands for
// is within 1/64 of every latency it counts (the bound is 2%).
TEST(LatencySketch, RelativeErrorAtMostOneSixtyFourth) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> log_us(std::log(32.0), std::log(std::ldexp(1.0, 27)));
  double worst = 0;
  for (int k = 0; k < 200000; ++k) {
    const auto ns = static_cast<std::int64_t>(std::exp(log_us(rng)) * 1000);
    const double truth = static_cast<double>(ns / 1000) / 1e6;  // the sketch keeps whole us
    const double got = sketch_value_seconds(sketch_index(std::chrono::nanoseconds(ns)));
    worst = std::max(worst, std::abs(got - truth) / truth);
  }
  EXPECT_LE(worst, 1.0 / 64 + 1e-12);
  EXPECT_GT(worst, 1.0 / 80);  // the bound is tight, not loose by a factor
}

TEST(LatencySketch, QuantileAndCountAboveAgreeWithTheSamples) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> latency_ms(std::log(80.0), 0.6);
  std::vector<double> seconds;
  SketchCounts c{};
  for (int k = 0; k < 50000; ++k) {
    const double ms = latency_ms(rng);
    seconds.push_back(std::floor(ms * 1000) / 1e6);
    ++c[sketch_index(std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1e6)))];
  }
  std::sort(seconds.begin(), seconds.end());
  EXPECT_EQ(total(c), seconds.size());
  for (const double q : {0.5, 0.9, 0.99, 0.999}) {
    const double truth = seconds[static_cast<std::size_t>(std::ceil(q * 50000)) - 1];
    EXPECT_NEAR(sketch_quantile(c, q), truth, truth / 64) << q;
  }
  for (const double limit : {0.05, 0.2, 0.3, 0.5}) {
    const auto truth = static_cast<double>(seconds.end() -
                                           std::upper_bound(seconds.begin(), seconds.end(), limit));
    // Only the bucket holding the limit is interpolated: within its count.
    const double in_bucket = static_cast<double>(
        c[sketch_index(std::chrono::nanoseconds(static_cast<std::int64_t>(limit * 1e9)))]);
    EXPECT_NEAR(static_cast<double>(sketch_count_above(c, limit)), truth, in_bucket + 1) << limit;
  }
  EXPECT_TRUE(std::isnan(sketch_quantile(SketchCounts{}, 0.5)));
  EXPECT_TRUE(std::isnan(sketch_quantile(c, 1.5)));
  EXPECT_EQ(sketch_count_above(c, std::nan("")), 50000u);
  EXPECT_EQ(sketch_count_above(SketchCounts{}, 0.1), 0u);
}

TEST(LatencySketch, OverflowCountsAsSlowerThanAnyLimit) {
  SketchCounts c{};
  c[kSketchFinite] = 3;
  c[index_us(1000)] = 7;
  EXPECT_EQ(sketch_count_above(c, 1000.0), 3u);
  EXPECT_EQ(sketch_count_above(c, 0.01), 3u);
  EXPECT_DOUBLE_EQ(sketch_quantile(c, 1), std::ldexp(1.0, kSketchTopBit) / 1e6);
}

// Workers' shards, windows and fleet members merge by adding counts: the merged sketch is the
// sketch of all the latencies, exactly.
TEST(LatencySketch, ShardsAndWindowsMergeExactly) {
  Metrics m(3, "v");
  RouteStats& s = m.route("r");
  SketchCounts expected{};
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<std::int64_t> ns(1'000, 5'000'000'000);
  Snapshot before;
  for (int k = 0; k < 3000; ++k) {
    if (k == 1000) before = s.totals(Version::canary);
    const auto latency = std::chrono::nanoseconds(ns(rng));
    s.record(static_cast<unsigned>(k % 3), Version::canary, 200, latency);
    if (k >= 1000) ++expected[sketch_index(latency)];
  }
  const Window w = delta(s.totals(Version::canary), before);
  EXPECT_EQ(w.latency, expected);
  EXPECT_EQ(total(w.latency), w.requests);
  Window sum;
  add(sum, w);
  add(sum, w);
  for (std::size_t i = 0; i < kSketchBuckets; ++i) EXPECT_EQ(sum.latency[i], 2 * expected[i]);
}

}  // namespace
}  // namespace gp::metrics
