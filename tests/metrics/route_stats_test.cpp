#include "metrics/route_stats.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "metrics/metrics.hpp"

namespace gp::metrics {
namespace {

using namespace std::chrono_literals;

TEST(RouteStats, ShardsAreSummedPerVersion) {
  Metrics m(3, "v");
  RouteStats& r = m.route("shop");
  r.record(0, Version::stable, 200, 1ms);
  r.record(1, Version::stable, 500, 1ms);
  r.record(2, Version::stable, 502, 20ms);
  r.record(2, Version::canary, 200, 20ms);
  r.upstream_error(0, Version::stable, UpstreamError::connect);
  r.upstream_error(2, Version::stable, UpstreamError::connect);
  r.upstream_error(1, Version::canary, UpstreamError::protocol);

  const VersionTotals s = r.sum(Version::stable);
  EXPECT_EQ(s.code_class[1], 1u);
  EXPECT_EQ(s.code_class[4], 2u);
  EXPECT_EQ(s.buckets[bucket_index(1ms)], 2u);
  EXPECT_EQ(s.buckets[bucket_index(20ms)], 1u);
  EXPECT_EQ(s.sum_us, 22000u);
  EXPECT_EQ(s.upstream_errors[static_cast<std::size_t>(UpstreamError::connect)], 2u);
  EXPECT_EQ(s.upstream_errors[static_cast<std::size_t>(UpstreamError::protocol)], 0u);

  const VersionTotals c = r.sum(Version::canary);
  EXPECT_EQ(c.code_class[1], 1u);
  EXPECT_EQ(c.upstream_errors[static_cast<std::size_t>(UpstreamError::protocol)], 1u);

  const Snapshot snap = r.totals(Version::stable);
  EXPECT_EQ(snap.requests, 3u);
  EXPECT_EQ(snap.errors_5xx, 2u);
  EXPECT_DOUBLE_EQ(snap.sum_seconds, 0.022);
}

TEST(RouteStats, CountsTheAaHalf) {
  Metrics m(2, "v");
  RouteStats& r = m.route("shop");
  r.record(0, Version::canary, 200, 1ms, true);
  r.record(1, Version::canary, 503, 1ms, true);
  r.record(1, Version::canary, 500, 1ms, false);
  r.record(0, Version::canary, 404, 1ms, false);
  const Snapshot s = r.totals(Version::canary);
  EXPECT_EQ(s.requests, 4u);
  EXPECT_EQ(s.errors_5xx, 2u);
  EXPECT_EQ(s.half_requests, 2u);
  EXPECT_EQ(s.half_errors_5xx, 1u);
  EXPECT_EQ(r.totals(Version::stable).half_requests, 0u);
}

TEST(RouteStats, SumRoundsToMicrosecondsAndIgnoresNegativeLatency) {
  Metrics m(1, "v");
  RouteStats& r = m.route("x");
  r.record(0, Version::stable, 200, 1499ns);  // 1 us
  r.record(0, Version::stable, 200, 1500ns);  // 2 us
  r.record(0, Version::stable, 200, -5ms);    // a clock step: 0, first bucket
  const VersionTotals t = r.sum(Version::stable);
  EXPECT_EQ(t.sum_us, 3u);
  EXPECT_EQ(t.buckets[0], 3u);
}

TEST(RouteStats, UpstreamErrorsDoNotCountAsRequests) {
  // A failed attempt is also answered (502/504) and recorded once by the proxy; the error
  // counter is separate so retries can be seen.
  Metrics m(1, "v");
  RouteStats& r = m.route("x");
  r.upstream_error(0, Version::canary, UpstreamError::timeout);
  EXPECT_EQ(r.totals(Version::canary).requests, 0u);
}

}  // namespace
}  // namespace gp::metrics
