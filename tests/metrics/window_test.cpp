#include "metrics/window.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "metrics/metrics.hpp"

namespace gp::metrics {
namespace {

using namespace std::chrono_literals;

// Index of the bucket whose upper bound is `seconds`.
std::size_t at(double seconds) {
  for (std::size_t i = 0; i + 1 < kBuckets; ++i)
    if (bucket_upper_bound_seconds(i) == seconds) return i;
  ADD_FAILURE() << "no bucket " << seconds;
  return 0;
}

TEST(Delta, CarriesTheAaHalfClamped) {
  Snapshot before;
  before.requests = 10;
  before.errors_5xx = 2;
  before.half_requests = 4;
  before.half_errors_5xx = 1;
  Snapshot now = before;
  now.requests = 30;
  now.errors_5xx = 5;
  now.half_requests = 14;
  now.half_errors_5xx = 5;  // read ahead of errors_5xx: clamped to the window's 3
  const Window w = delta(now, before);
  EXPECT_EQ(w.half_requests, 10u);
  EXPECT_EQ(w.half_errors_5xx, 3u);
  now.half_requests = 3;  // went down: a reset, the window is `now` alone
  EXPECT_EQ(delta(now, before).requests, 30u);
}

TEST(Quantile, InterpolatesLinearlyInsideTheBucket) {
  Window w;
  // 100 observations: 50 in (0.2, 0.25], 40 in (0.25, 0.3], 10 in (0.4, 0.5].
  w.bucket_counts[at(0.25)] = 50;
  w.bucket_counts[at(0.3)] = 40;
  w.bucket_counts[at(0.5)] = 10;
  w.requests = 100;
  // p50: rank 50 = the top of the 0.25 bucket -> 0.2 + 0.05 * 50/50.
  EXPECT_DOUBLE_EQ(quantile(w, 0.5), 0.25);
  // p25: rank 25 -> 0.2 + 0.05 * 25/50 = 0.225.
  EXPECT_DOUBLE_EQ(quantile(w, 0.25), 0.225);
  // p70: rank 70, 20 into the 40 of (0.25, 0.3] -> 0.25 + 0.05 * 20/40 = 0.275.
  EXPECT_DOUBLE_EQ(quantile(w, 0.7), 0.275);
  // p99: rank 99, 9 into the 10 of (0.4, 0.5] (0.4 bucket is empty) -> 0.4 + 0.1 * 0.9 = 0.49.
  EXPECT_DOUBLE_EQ(quantile(w, 0.99), 0.49);
  EXPECT_DOUBLE_EQ(quantile(w, 1.0), 0.5);
}

TEST(Quantile, FirstBucketStartsAtZero) {
  Window w;
  w.bucket_counts[0] = 4;  // (0, 0.0005]
  w.requests = 4;
  EXPECT_DOUBLE_EQ(quantile(w, 0.5), 0.00025);
  EXPECT_DOUBLE_EQ(quantile(w, 0.0), 0.0);
}

TEST(Quantile, InfBucketReturnsHighestFiniteBound) {
  Window w;
  w.bucket_counts[at(0.001)] = 90;
  w.bucket_counts[kBuckets - 1] = 10;
  w.requests = 100;
  EXPECT_DOUBLE_EQ(quantile(w, 0.99), 60.0);
  // p90 is exactly the top of the 0.001 bucket; p80 interpolates in (0.0007, 0.001].
  EXPECT_DOUBLE_EQ(quantile(w, 0.9), 0.001);
  EXPECT_NEAR(quantile(w, 0.8), 0.0007 + 0.0003 * 80.0 / 90.0, 1e-15);
}

TEST(Quantile, EdgeCasesLikePromQL) {
  Window empty;
  EXPECT_TRUE(std::isnan(quantile(empty, 0.99)));
  Window w;
  w.bucket_counts[at(0.01)] = 1;
  w.requests = 1;
  EXPECT_EQ(quantile(w, -0.1), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(quantile(w, 1.1), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(quantile(w, std::numeric_limits<double>::quiet_NaN())));
  // One observation in (0.007, 0.01]: p50 is the middle of that bucket.
  EXPECT_DOUBLE_EQ(quantile(w, 0.5), 0.0085);
}

TEST(Quantile, WithinOneBucketStepOfTheTrueValue) {
  // 1000 latencies spread evenly over 1 ms .. 1000 ms: true p99 = 990 ms, p50 = 500 ms.
  Metrics m(1, "v");
  RouteStats& r = m.route("x");
  for (int i = 1; i <= 1000; ++i) r.record(0, Version::canary, 200, std::chrono::milliseconds(i));
  const Window w = delta(r.totals(Version::canary), Snapshot{});
  EXPECT_NEAR(quantile(w, 0.99), 0.99, 0.99 * 0.5);
  EXPECT_NEAR(quantile(w, 0.5), 0.5, 0.5 * 0.5);
  // Hand-computed: rank 990 lies in (0.7, 1.0], which holds 300 (701..1000 ms) above 700
  // below: 0.7 + 0.3 * 290/300 = 0.99 exactly.
  EXPECT_DOUBLE_EQ(quantile(w, 0.99), 0.99);
}

TEST(Window, DeltaSubtractsEveryField) {
  Snapshot before;
  before.requests = 10;
  before.errors_5xx = 1;
  before.bucket_counts[2] = 7;
  before.bucket_counts[5] = 3;
  before.sum_seconds = 1.5;
  Snapshot now = before;
  now.requests = 25;
  now.errors_5xx = 4;
  now.bucket_counts[2] = 17;
  now.bucket_counts[5] = 8;
  now.sum_seconds = 4.0;
  const Window w = delta(now, before);
  EXPECT_EQ(w.requests, 15u);
  EXPECT_EQ(w.errors_5xx, 3u);
  EXPECT_EQ(w.bucket_counts[2], 10u);
  EXPECT_EQ(w.bucket_counts[5], 5u);
  EXPECT_EQ(w.bucket_counts[0], 0u);
  EXPECT_DOUBLE_EQ(w.sum_seconds, 2.5);
  EXPECT_DOUBLE_EQ(error_rate(w), 0.2);
  EXPECT_DOUBLE_EQ(mean_seconds(w), 2.5 / 15);
}

TEST(Window, ResetYieldsNow) {
  Snapshot before;
  before.requests = 100;
  before.bucket_counts[3] = 100;
  Snapshot now;
  now.requests = 5;
  now.errors_5xx = 1;
  now.bucket_counts[3] = 5;
  now.sum_seconds = 0.1;
  const Window w = delta(now, before);
  EXPECT_EQ(w.requests, 5u);
  EXPECT_EQ(w.errors_5xx, 1u);
  EXPECT_EQ(w.bucket_counts[3], 5u);
  EXPECT_DOUBLE_EQ(w.sum_seconds, 0.1);
}

TEST(Window, EmptyWindowRatesAreNaN) {
  const Window w;
  EXPECT_TRUE(std::isnan(error_rate(w)));
  EXPECT_TRUE(std::isnan(mean_seconds(w)));
}

TEST(Window, FromLiveStatsBetweenTwoTicks) {
  Metrics m(2, "v");
  RouteStats& r = m.route("shop");
  r.record(0, Version::canary, 200, 10ms);
  r.record(1, Version::canary, 500, 10ms);
  const Snapshot t0 = m.totals("shop", Version::canary);
  r.record(0, Version::canary, 200, 120ms);
  r.record(1, Version::canary, 502, 280ms);
  r.record(1, Version::canary, 200, 280ms);
  r.record(0, Version::canary, 404, 280ms);
  r.record(0, Version::stable, 500, 1s);  // other version: not in the canary window
  const Window w = delta(m.totals("shop", Version::canary), t0);
  EXPECT_EQ(w.requests, 4u);
  EXPECT_EQ(w.errors_5xx, 1u);
  EXPECT_DOUBLE_EQ(error_rate(w), 0.25);
  EXPECT_EQ(w.bucket_counts[bucket_index(120ms)], 1u);
  EXPECT_EQ(w.bucket_counts[bucket_index(280ms)], 3u);
  EXPECT_EQ(w.bucket_counts[bucket_index(10ms)], 0u);
  EXPECT_NEAR(w.sum_seconds, 0.96, 1e-9);
  // Hand-computed p99: rank 3.96 of 4; 1 in (0.1, 0.15], 3 in (0.25, 0.3] ->
  // 0.25 + 0.05 * (3.96 - 1) / 3.
  EXPECT_NEAR(quantile(w, 0.99), 0.25 + 0.05 * 2.96 / 3, 1e-12);
}

}  // namespace
}  // namespace gp::metrics
