#include "proxy/history.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cmath>

#include "metrics/types.hpp"

namespace json = boost::json;
using gp::metrics::Snapshot;
using gp::metrics::Version;
using gp::proxy::History;
using namespace std::chrono_literals;

namespace {

// `requests` requests, `errors` of them 5xx, all with latency in bucket `bucket`.
Snapshot totals(std::uint64_t requests, std::uint64_t errors, std::size_t bucket = 5) {
  Snapshot s;
  s.requests = requests;
  s.errors_5xx = errors;
  s.bucket_counts[bucket] = requests;
  return s;
}

gp::config::Route route_with_interval(std::optional<gp::config::Duration> interval) {
  gp::config::Route r;
  r.name = "shop";
  if (interval) {
    gp::config::Rollout ro;
    ro.interval = *interval;
    r.rollout = ro;
  }
  return r;
}

}  // namespace

TEST(History, FirstSampleIsTheBaseline) {
  History h;
  const auto t0 = History::Clock::time_point{} + 100s;
  EXPECT_EQ(h.series("shop", Version::stable), nullptr);
  h.add("shop", Version::stable, totals(50, 1), t0, 1000);
  ASSERT_NE(h.series("shop", Version::stable), nullptr);
  EXPECT_TRUE(h.series("shop", Version::stable)->empty());
  EXPECT_EQ(h.series("shop", Version::canary), nullptr);
}

TEST(History, PointIsTheWindowSinceThePreviousSample) {
  History h;
  const auto t0 = History::Clock::time_point{} + 100s;
  h.add("shop", Version::canary, totals(50, 1), t0, 1000);
  h.add("shop", Version::canary, totals(250, 11), t0 + 10s, 11000);
  auto const* s = h.series("shop", Version::canary);
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->size(), 1u);
  auto const& p = s->front();
  EXPECT_EQ(p.time_ms, 11000);
  EXPECT_EQ(p.requests, 200u);
  EXPECT_DOUBLE_EQ(p.rate, 20.0);
  EXPECT_DOUBLE_EQ(p.error_ratio, 0.05);
  // All in bucket 5 (2 ms, 2.5 ms]: p99 interpolates to 0.99 of the way.
  EXPECT_NEAR(p.p99_seconds, 0.002 + 0.99 * 0.0005, 1e-9);
}

TEST(History, EmptyWindowHasZeroRateAndNoRatios) {
  History h;
  const auto t0 = History::Clock::time_point{} + 100s;
  h.add("shop", Version::stable, totals(7, 0), t0, 1);
  h.add("shop", Version::stable, totals(7, 0), t0 + 5s, 2);
  auto const& p = h.series("shop", Version::stable)->front();
  EXPECT_EQ(p.rate, 0);
  EXPECT_TRUE(std::isnan(p.error_ratio));
  EXPECT_TRUE(std::isnan(p.p99_seconds));
  auto js = h.to_json(3);
  auto const& v = js.at("routes").as_array()[0].at("versions").at("stable").as_object();
  EXPECT_TRUE(v.at("error_ratio").as_array()[0].is_null());
  EXPECT_TRUE(v.at("p99_seconds").as_array()[0].is_null());
  EXPECT_EQ(v.at("rate").as_array()[0].to_number<double>(), 0);
}

TEST(History, SampleAtTheSameTimeIsIgnored) {
  History h;
  const auto t0 = History::Clock::time_point{} + 100s;
  h.add("shop", Version::stable, totals(1, 0), t0, 1);
  h.add("shop", Version::stable, totals(2, 0), t0, 1);
  EXPECT_TRUE(h.series("shop", Version::stable)->empty());
}

TEST(History, RingKeepsTheNewestPoints) {
  History h(3);
  const auto t0 = History::Clock::time_point{} + 100s;
  for (int i = 0; i <= 5; ++i)
    h.add("shop", Version::stable, totals(10 * i, 0), t0 + i * 10s, i * 10000);
  auto const* s = h.series("shop", Version::stable);
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ(s->front().time_ms, 30000);
  EXPECT_EQ(s->back().time_ms, 50000);
  EXPECT_EQ(History::kMaxPoints, 360u);
}

TEST(History, RetainForgetsRemovedRoutes) {
  History h;
  const auto t0 = History::Clock::time_point{} + 100s;
  h.add("shop", Version::stable, totals(1, 0), t0, 1);
  h.add("blog", Version::stable, totals(1, 0), t0, 1);
  h.retain({"blog"});
  EXPECT_EQ(h.series("shop", Version::stable), nullptr);
  EXPECT_NE(h.series("blog", Version::stable), nullptr);
}

TEST(History, PeriodIsTenSecondsOrTheShorterRolloutInterval) {
  EXPECT_EQ(History::period_for(route_with_interval(std::nullopt)), 10s);
  EXPECT_EQ(History::period_for(route_with_interval(30s)), 10s);
  EXPECT_EQ(History::period_for(route_with_interval(2s)), 2s);
  EXPECT_EQ(History::period_for(route_with_interval(250ms)), 1s);
}

TEST(History, JsonIsColumnarOldestFirst) {
  History h;
  const auto t0 = History::Clock::time_point{} + 100s;
  h.add("shop", Version::stable, totals(0, 0), t0, 0);
  h.add("shop", Version::stable, totals(10, 0), t0 + 10s, 10000);
  h.add("shop", Version::stable, totals(30, 2), t0 + 20s, 20000);
  auto js = h.to_json(25000);
  EXPECT_EQ(js.at("now_ms").to_number<std::int64_t>(), 25000);
  EXPECT_EQ(js.at("max_points").to_number<std::size_t>(), 360u);
  auto const& r = js.at("routes").as_array().at(0).as_object();
  EXPECT_EQ(r.at("name").as_string(), "shop");
  EXPECT_EQ(json::serialize(r.at("period_seconds")), "10");
  auto const& v = r.at("versions").as_object();
  EXPECT_FALSE(v.contains("canary"));
  auto const& s = v.at("stable").as_object();
  EXPECT_EQ(json::serialize(s.at("time_ms")), "[10000,20000]");
  EXPECT_EQ(json::serialize(s.at("rate")), "[1,2]");
  EXPECT_EQ(json::serialize(s.at("requests")), "[10,20]");
  EXPECT_EQ(s.at("error_ratio").as_array()[1].to_number<double>(), 0.1);
}
