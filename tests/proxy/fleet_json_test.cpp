// The documents fleet mode keeps in etcd survive a round trip, and bad ones are refused.
#include "proxy/fleet_json.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace gp::proxy {
namespace {

const routing::TimePoint kT0 = routing::TimePoint{} + std::chrono::milliseconds(1'800'000'000'000);

TEST(FleetJson, ReportRoundTrip) {
  MemberReport r;
  r.instance = "edge-1:9901";
  r.admin = "127.0.0.1:9901";
  r.time_ms = 1'800'000'000'123;
  metrics::Snapshot canary;
  canary.requests = 40;
  canary.errors_5xx = 3;
  canary.bucket_counts[5] = 39;
  canary.bucket_counts[metrics::kBuckets - 1] = 1;
  canary.sum_seconds = 61.5;
  canary.latency[100] = 38;
  canary.latency[metrics::kSketchFinite] = 2;
  r.totals.routes["shop"] = {metrics::Snapshot{}, canary};
  r.held["shop"] = routing::HeldState{"edge-1:9901", 17, routing::RolloutState::paused, 2500};

  const MemberReport back = report_from_text(to_text(r));
  EXPECT_EQ(back.instance, r.instance);
  EXPECT_EQ(back.admin, r.admin);
  EXPECT_EQ(back.time_ms, r.time_ms);
  EXPECT_EQ(back.totals.instance, r.instance);
  auto const& c = back.totals.routes.at("shop")[1];
  EXPECT_EQ(c.requests, 40u);
  EXPECT_EQ(c.errors_5xx, 3u);
  EXPECT_EQ(c.bucket_counts, canary.bucket_counts);
  EXPECT_DOUBLE_EQ(c.sum_seconds, 61.5);
  EXPECT_EQ(c.latency, canary.latency);
  // Only the non-empty buckets travel.
  EXPECT_NE(to_text(r).find(R"("buckets":[[100,38],[736,2]])"), std::string::npos) << to_text(r);
  auto const& h = back.held.at("shop");
  EXPECT_EQ(h.seq, 17u);
  EXPECT_EQ(h.state, routing::RolloutState::paused);
  EXPECT_EQ(h.weight_bp, 2500u);
  EXPECT_EQ(h.instance, r.instance);
}

// A member of a build with another sketch layout: its latencies are left out, its counts are not.
TEST(FleetJson, SketchOfAnotherLayoutIsLeftOut) {
  MemberReport r;
  r.instance = "edge-2:9901";
  metrics::Snapshot s;
  s.requests = 5;
  s.latency[3] = 5;
  r.totals.routes["shop"] = {s, s};
  std::string text = to_text(r);
  const auto at = text.find("log-linear/5/27");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 15, "log-linear/4/27");
  const MemberReport back = report_from_text(text);
  EXPECT_EQ(back.totals.routes.at("shop")[0].requests, 5u);
  EXPECT_EQ(metrics::total(back.totals.routes.at("shop")[0].latency), 0u);
  // An index past the layout is a malformed report.
  text = to_text(r);
  const auto idx = text.find("[[3,5]]");
  ASSERT_NE(idx, std::string::npos) << text;
  text.replace(idx, 7, "[[9999,5]]");
  EXPECT_THROW(report_from_text(text), std::exception);
}

TEST(FleetJson, RouteDocRoundTripKeepsJudgements) {
  config::Rollout p;
  p.step_warmup = std::chrono::seconds(0);
  p.steps_bp = {1000, 5000, 10000};
  p.min_requests = 10;
  routing::RolloutController ctl(p, 1000, kT0);
  (void)ctl.tick(kT0 + std::chrono::seconds(30), {1000, 0, 0.01, 500, 0, 0},
                 {9000, 10, 0.01, 4500, 6, 0});
  RouteDoc d;
  d.seq = 5;
  d.writer = "edge-2:9901";
  d.cause = "judgement";
  d.time_ms = 1'800'000'030'000;
  d.weight_bp = ctl.weight_bp();
  d.rollout = ctl.status();

  const RouteDoc back = route_doc_from_text(to_text(d));
  EXPECT_EQ(back.seq, 5u);
  EXPECT_EQ(back.writer, d.writer);
  EXPECT_EQ(back.cause, "judgement");
  EXPECT_EQ(back.time_ms, d.time_ms);
  EXPECT_EQ(back.weight_bp, 5000u);
  ASSERT_TRUE(back.rollout);
  EXPECT_EQ(back.rollout->state, routing::RolloutState::progressing);
  EXPECT_EQ(back.rollout->step_index, 1);
  ASSERT_EQ(back.rollout->last.size(), 1u);
  EXPECT_EQ(back.rollout->last[0].verdict, routing::Verdict::pass);
  EXPECT_EQ(back.rollout->last[0].canary.requests, 1000u);
  // The evidence travels with the document: the next leader continues it.
  const routing::EvidenceState& e = back.rollout->evidence;
  EXPECT_TRUE(e.relative_active);
  for (std::size_t j = 0; j < e.relative.size(); ++j)
    EXPECT_NEAR(e.relative[j], ctl.status().evidence.relative[j], 1e-9) << j;
  EXPECT_NEAR(e.dispersion_num, ctl.status().evidence.dispersion_num, 1e-9);
  EXPECT_GT(e.dispersion_den, 0);
  EXPECT_DOUBLE_EQ(e.ratio, 2);
  EXPECT_TRUE(std::isnan(back.rollout->last[0].requests_to_pass));
  EXPECT_DOUBLE_EQ(back.rollout->last[0].relative.pass_factor, 4);
}

TEST(FleetJson, RouteDocWithoutRollout) {
  RouteDoc d;
  d.seq = 1;
  d.writer = "a";
  d.cause = "admin";
  d.weight_bp = 1250;
  const RouteDoc back = route_doc_from_text(to_text(d));
  EXPECT_EQ(back.weight_bp, 1250u);
  EXPECT_FALSE(back.rollout);
}

TEST(FleetJson, RefusesWhatIsNotADocument) {
  EXPECT_ANY_THROW(route_doc_from_text("not json"));
  EXPECT_ANY_THROW(route_doc_from_text("[1]"));
  EXPECT_ANY_THROW(route_doc_from_text(R"({"seq":1})"));
  EXPECT_ANY_THROW(
      route_doc_from_text(R"({"seq":1,"writer":"a","cause":"x","time_ms":0,"weight_bp":10001})"));
  // Another histogram layout cannot be summed bucket by bucket.
  EXPECT_ANY_THROW(report_from_text(
      R"({"instance":"a","admin":"x","time_ms":0,"routes":{"shop":{"stable":{"requests":0,)"
      R"("errors_5xx":0,"buckets":[0,0],"sum_seconds":0},"canary":{"requests":0,)"
      R"("errors_5xx":0,"buckets":[0,0],"sum_seconds":0}}}})"));
}

}  // namespace
}  // namespace gp::proxy
