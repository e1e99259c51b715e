#include "proxy/cli.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cmath>
#include <limits>

namespace json = boost::json;
using gp::cli::describe_action;
using gp::cli::format_percent;
using gp::cli::parse_admin_url;
using gp::cli::progress_bar;
using gp::cli::render_status;

TEST(CliProgressBar, ProportionalToTheWeight) {
  EXPECT_EQ(progress_bar(0, 10), "[..........]");
  EXPECT_EQ(progress_bar(50, 10), "[#####.....]");
  EXPECT_EQ(progress_bar(100, 10), "[##########]");
  EXPECT_EQ(progress_bar(25, 20), "[#####...............]");
  EXPECT_EQ(progress_bar(10), "[##..................]");  // default width 20
}

TEST(CliProgressBar, SmallAndAlmostFullWeightsAreVisible) {
  EXPECT_EQ(progress_bar(0.01, 10), "[#.........]");
  EXPECT_EQ(progress_bar(1, 20), "[#...................]");
  EXPECT_EQ(progress_bar(99.99, 10), "[#########.]");
}

TEST(CliProgressBar, ClampsOutOfRangeAndNaN) {
  EXPECT_EQ(progress_bar(-5, 4), "[....]");
  EXPECT_EQ(progress_bar(140, 4), "[####]");
  EXPECT_EQ(progress_bar(std::numeric_limits<double>::quiet_NaN(), 4), "[....]");
  EXPECT_EQ(progress_bar(50, 0), "[#.]");  // width at least 2
}

TEST(CliFormatPercent, AsOperatorsWriteIt) {
  EXPECT_EQ(format_percent(10), "10%");
  EXPECT_EQ(format_percent(12.5), "12.5%");
  EXPECT_EQ(format_percent(0.01), "0.01%");
  EXPECT_EQ(format_percent(0), "0%");
  EXPECT_EQ(format_percent(100), "100%");
  EXPECT_EQ(format_percent(33.333), "33.33%");
  EXPECT_EQ(format_percent(std::nan("")), "?");
}

TEST(CliAdminUrl, Forms) {
  std::string err;
  auto u = parse_admin_url("http://127.0.0.1:9901", err);
  ASSERT_TRUE(u) << err;
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "9901");
  EXPECT_EQ(u->prefix, "");
  EXPECT_EQ(u->str(), "http://127.0.0.1:9901");

  u = parse_admin_url("localhost:19901", err);
  ASSERT_TRUE(u) << err;
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, "19901");

  u = parse_admin_url("http://[::1]:9901/admin/", err);
  ASSERT_TRUE(u) << err;
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->prefix, "/admin");
  EXPECT_EQ(u->str(), "http://[::1]:9901/admin");

  u = parse_admin_url("http://admin.internal", err);
  ASSERT_TRUE(u) << err;
  EXPECT_EQ(u->port, "80");
}

TEST(CliAdminUrl, Rejects) {
  std::string err;
  EXPECT_FALSE(parse_admin_url("https://127.0.0.1:9901", err));
  EXPECT_NE(err.find("only http://"), std::string::npos) << err;
  EXPECT_FALSE(parse_admin_url("127.0.0.1", err));
  EXPECT_FALSE(parse_admin_url("http://:9901", err));
  EXPECT_FALSE(parse_admin_url("http://127.0.0.1:99999", err));
  EXPECT_FALSE(parse_admin_url("http://127.0.0.1:0", err));
  EXPECT_FALSE(parse_admin_url("http://127.0.0.1:abc", err));
  EXPECT_FALSE(parse_admin_url("http://[::1:9901", err));
}

TEST(CliRenderStatus, OneRowPerRouteWithBarStepAndLastVerdict) {
  auto status = json::parse(R"({
    "version": "0.1.0", "draining": false,
    "routes": [
      {"name": "shop", "stable": "v1", "canary": "v2", "weight_percent": 10,
       "steps_percent": [10, 50, 100],
       "rollout": {"state": "progressing", "step_index": 0, "reason": "started",
                   "judgements": [
                     {"verdict": "inconclusive", "reason": "too few requests"},
                     {"verdict": "pass", "reason": "canary error rate 0% within 1%"}]}},
      {"name": "static", "stable": "v1", "canary": null, "weight_percent": 0},
      {"name": "blog-beta", "stable": "v1", "canary": "v2", "weight_percent": 12.5,
       "rollout": {"state": "idle"}}
    ]})");
  const std::string out = render_status(status);
  EXPECT_EQ(out,
            "ROUTE      STATE        WEIGHT  STEP  PROGRESS                LAST VERDICT\n"
            "shop       progressing     10%   1/3  [##..................]  pass: canary error "
            "rate 0% within 1%\n"
            "static     plain             -     -  -                       -\n"
            "blog-beta  idle          12.5%     -  [###.................]  -\n");
}

TEST(CliRenderStatus, DrainingAndEmpty) {
  EXPECT_EQ(render_status(json::parse(R"({"routes": []})")), "no routes\n");
  EXPECT_EQ(render_status(json::parse(R"({"draining": true, "routes": []})")),
            "the proxy is draining (shutting down)\nno routes\n");
  EXPECT_EQ(render_status(json::parse("[]")), "no routes\n");  // not a status: no crash
}

TEST(CliDescribeAction, SaysWhatHappened) {
  auto a = json::parse(R"({"route": "shop", "state": "paused", "weight_percent": 10})");
  EXPECT_EQ(describe_action("pause", "shop", a),
            "shop: rollout paused (state paused, canary weight 10%)");
  a = json::parse(R"({"route": "shop", "state": "promoted", "weight_percent": 100})");
  EXPECT_EQ(describe_action("promote", "shop", a),
            "shop: canary promoted (state promoted, canary weight 100%)");
  a = json::parse(R"({"route": "shop", "state": "rolled_back", "weight_percent": 0})");
  EXPECT_EQ(describe_action("abort", "shop", a),
            "shop: rollout aborted, canary rolled back (state rolled_back, canary weight 0%)");
  a = json::parse(R"({"route": "shop", "state": "paused", "weight_percent": 12.5})");
  EXPECT_EQ(describe_action("weight", "shop", a),
            "shop: canary weight set to 12.5% (state paused)");
}

TEST(CliCommands, Words) {
  for (auto w : {"status", "promote", "abort", "pause", "resume", "weight"})
    EXPECT_TRUE(gp::cli::is_command(w)) << w;
  for (auto w : {"-c", "--check", "--demo", "statuses", ""})
    EXPECT_FALSE(gp::cli::is_command(w)) << w;
}
