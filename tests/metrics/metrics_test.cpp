#include "metrics/metrics.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/metrics/test_util.hpp"

namespace gp::metrics {
namespace {

using namespace std::chrono_literals;
using test::sample;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string series(const std::string& name, const std::string& route, const std::string& version,
                   const std::string& extra = "") {
  return name + "{route=\"" + route + "\",version=\"" + version + "\"" +
         (extra.empty() ? "" : "," + extra) + "}";
}

TEST(Metrics, RejectsZeroWorkers) {
  EXPECT_THROW(Metrics(0, "x"), std::invalid_argument);
}

TEST(Metrics, RouteIsCreatedOnceAndKeptForTheLifeOfMetrics) {
  Metrics m(2, "1.2.3");
  RouteStats& a = m.route("shop");
  a.record(0, Version::stable, 200, 1ms);
  // Another lookup (e.g. a reload building a new snapshot) gets the same object and counts.
  RouteStats& b = m.route(std::string("shop"));
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(b.name(), "shop");
  EXPECT_EQ(b.workers(), 2u);
  EXPECT_EQ(m.totals("shop", Version::stable).requests, 1u);
  EXPECT_NE(&m.route("other"), &a);
}

TEST(Metrics, UnmatchedRouteExistsFromTheStart) {
  Metrics m(1, "v");
  const std::string text = m.serialize();
  EXPECT_EQ(
      sample(text, series("grayproxy_requests_total", "none", "stable", "code_class=\"4xx\"")),
      0.0);
  m.route(Metrics::kUnmatchedRoute).record(0, Version::stable, 404, 100us);
  EXPECT_EQ(sample(m.serialize(),
                   series("grayproxy_requests_total", "none", "stable", "code_class=\"4xx\"")),
            1.0);
}

TEST(Metrics, TotalsOfUnknownRouteAreZero) {
  Metrics m(1, "v");
  const Snapshot s = m.totals("nope", Version::canary);
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.errors_5xx, 0u);
  EXPECT_EQ(s.sum_seconds, 0.0);
}

TEST(Metrics, RecordsRequestsHistogramAndUpstreamErrors) {
  Metrics m(2, "v");
  RouteStats& r = m.route("shop");
  r.record(0, Version::stable, 200, 400us);   // bucket le=0.0005
  r.record(1, Version::stable, 201, 500us);   // le=0.0005 (inclusive)
  r.record(1, Version::stable, 503, 2500ms);  // le=2.5
  r.record(0, Version::canary, 302, 61s);     // +Inf only
  r.upstream_error(1, Version::stable, UpstreamError::timeout);
  r.upstream_error(0, Version::canary, UpstreamError::no_endpoint);
  r.upstream_error(0, Version::canary, UpstreamError::no_endpoint);
  r.retry(1, Version::canary);
  r.retry(0, Version::canary);

  const std::string t = m.serialize();
  const auto req = [&](const char* v, const char* c) {
    return sample(
        t, series("grayproxy_requests_total", "shop", v, std::string("code_class=\"") + c + "\""));
  };
  EXPECT_EQ(req("stable", "2xx"), 2);
  EXPECT_EQ(req("stable", "5xx"), 1);
  EXPECT_EQ(req("stable", "4xx"), 0);
  EXPECT_EQ(req("canary", "3xx"), 1);
  EXPECT_EQ(req("canary", "2xx"), 0);

  const auto bucket = [&](const char* v, const char* le) {
    return sample(t, series("grayproxy_request_duration_seconds_bucket", "shop", v,
                            std::string("le=\"") + le + "\""));
  };
  EXPECT_EQ(bucket("stable", "0.0005"), 2);
  EXPECT_EQ(bucket("stable", "0.0007"), 2);
  EXPECT_EQ(bucket("stable", "2"), 2);
  EXPECT_EQ(bucket("stable", "2.5"), 3);
  EXPECT_EQ(bucket("stable", "60"), 3);
  EXPECT_EQ(bucket("stable", "+Inf"), 3);
  EXPECT_EQ(bucket("canary", "60"), 0);
  EXPECT_EQ(bucket("canary", "+Inf"), 1);
  EXPECT_EQ(sample(t, series("grayproxy_request_duration_seconds_count", "shop", "stable")), 3);
  EXPECT_DOUBLE_EQ(sample(t, series("grayproxy_request_duration_seconds_sum", "shop", "stable")),
                   2.5009);
  EXPECT_EQ(sample(t, series("grayproxy_request_duration_seconds_sum", "shop", "canary")), 61);

  const auto err = [&](const char* v, const char* reason) {
    return sample(t, series("grayproxy_upstream_errors_total", "shop", v,
                            std::string("reason=\"") + reason + "\""));
  };
  EXPECT_EQ(err("stable", "timeout"), 1);
  EXPECT_EQ(err("stable", "connect"), 0);
  EXPECT_EQ(err("canary", "no_endpoint"), 2);
  EXPECT_EQ(sample(t, series("grayproxy_upstream_retries_total", "shop", "canary")), 2);
  EXPECT_EQ(sample(t, series("grayproxy_upstream_retries_total", "shop", "stable")), 0);

  const Snapshot s = m.totals("shop", Version::stable);
  EXPECT_EQ(s.requests, 3u);
  EXPECT_EQ(s.errors_5xx, 1u);
  EXPECT_EQ(s.bucket_counts[0], 2u);
  EXPECT_EQ(s.bucket_counts[bucket_index(2500ms)], 1u);
  EXPECT_DOUBLE_EQ(s.sum_seconds, 2.5009);
}

TEST(Metrics, EveryFamilyHasHelpAndType) {
  Metrics m(1, "0.1.0");
  m.set_canary_weight("shop", 5);
  m.set_rollout_state("shop", "progressing");
  m.rollout_transition("shop", "progressing");
  m.config_reload(true);
  const std::string t = m.serialize();
  const std::vector<std::pair<std::string, std::string>> families = {
      {"grayproxy_requests_total", "counter"},
      {"grayproxy_request_duration_seconds", "histogram"},
      {"grayproxy_upstream_errors_total", "counter"},
      {"grayproxy_upstream_retries_total", "counter"},
      {"grayproxy_canary_weight_percent", "gauge"},
      {"grayproxy_rollout_state", "gauge"},
      {"grayproxy_rollout_transitions_total", "counter"},
      {"grayproxy_config_reloads_total", "counter"},
      {"grayproxy_config_last_reload_success_timestamp_seconds", "gauge"},
      {"grayproxy_downstream_connections_active", "gauge"},
      {"grayproxy_build_info", "gauge"},
      {"process_start_time_seconds", "gauge"},
  };
  for (const auto& [name, type] : families) {
    EXPECT_NE(t.find("# HELP " + name + " "), std::string::npos) << name;
    EXPECT_NE(t.find("# TYPE " + name + " " + type + "\n"), std::string::npos) << name;
  }
}

TEST(Metrics, GaugesAndLowRateCounters) {
  Metrics m(3, "0.1.0-test");
  m.set_canary_weight("shop", 12.5);
  m.set_canary_weight("shop", 25);
  m.set_canary_weight("cart", 0);
  m.rollout_transition("shop", "progressing");
  m.rollout_transition("shop", "progressing");
  m.rollout_transition("shop", "rolled_back");
  m.config_reload(false);
  const double before = unix_now();
  m.config_reload(true);
  m.config_reload(true);
  const double after = unix_now();
  m.connection_opened(0);
  m.connection_opened(1);
  m.connection_opened(2);
  m.connection_opened(2);
  m.connection_closed(1);

  const std::string t = m.serialize();
  EXPECT_EQ(sample(t, "grayproxy_canary_weight_percent{route=\"shop\"}"), 25);
  EXPECT_EQ(sample(t, "grayproxy_canary_weight_percent{route=\"cart\"}"), 0);
  EXPECT_EQ(sample(t, "grayproxy_rollout_transitions_total{route=\"shop\",to=\"progressing\"}"), 2);
  EXPECT_EQ(sample(t, "grayproxy_rollout_transitions_total{route=\"shop\",to=\"rolled_back\"}"), 1);
  EXPECT_EQ(sample(t, "grayproxy_config_reloads_total{result=\"success\"}"), 2);
  EXPECT_EQ(sample(t, "grayproxy_config_reloads_total{result=\"failure\"}"), 1);
  const double ts = sample(t, "grayproxy_config_last_reload_success_timestamp_seconds");
  EXPECT_GE(ts, std::floor(before));
  EXPECT_LE(ts, after + 1);
  EXPECT_EQ(sample(t, "grayproxy_downstream_connections_active"), 3);
  EXPECT_EQ(sample(t, "grayproxy_build_info{version=\"0.1.0-test\"}"), 1);
  const double start = sample(t, "process_start_time_seconds");
  EXPECT_LE(start, after + 1);
  EXPECT_GT(start, after - 24 * 3600);  // this test process started recently
  EXPECT_THROW(m.rollout_transition("shop", "exploded"), std::invalid_argument);
}

TEST(Metrics, ReloadCountersStartAtZeroAndTimestampAtZero) {
  Metrics m(1, "v");
  const std::string t = m.serialize();
  EXPECT_EQ(sample(t, "grayproxy_config_reloads_total{result=\"success\"}"), 0);
  EXPECT_EQ(sample(t, "grayproxy_config_reloads_total{result=\"failure\"}"), 0);
  EXPECT_EQ(sample(t, "grayproxy_config_last_reload_success_timestamp_seconds"), 0);
  // No series yet: families without samples are left out.
  EXPECT_EQ(t.find("grayproxy_rollout_transitions_total"), std::string::npos);
  EXPECT_EQ(t.find("grayproxy_canary_weight_percent"), std::string::npos);
}

TEST(Metrics, RolloutStateIsOneHot) {
  Metrics m(1, "v");
  m.set_rollout_state("shop", "progressing");
  m.set_rollout_state("cart", "idle");
  m.set_rollout_state("shop", "rolled_back");
  const std::string t = m.serialize();
  const auto state = [&](const char* route, std::string_view s) {
    return sample(t, std::string("grayproxy_rollout_state{route=\"") + route + "\",state=\"" +
                         std::string(s) + "\"}");
  };
  for (std::string_view s : kRolloutStates) {
    EXPECT_EQ(state("shop", s), s == "rolled_back" ? 1 : 0) << s;
    EXPECT_EQ(state("cart", s), s == "idle" ? 1 : 0) << s;
  }
  EXPECT_THROW(m.set_rollout_state("shop", "Paused"), std::invalid_argument);
  EXPECT_EQ(sample(m.serialize(), "grayproxy_rollout_state{route=\"shop\",state=\"rolled_back\"}"),
            1);
}

TEST(Metrics, RegistryExtrasAppearInTheSamePage) {
  Metrics m(1, "v");
  prometheus::BuildGauge()
      .Name("grayproxy_test_extra")
      .Help("An extra gauge.")
      .Register(m.registry())
      .Add({})
      .Set(7);
  EXPECT_EQ(sample(m.serialize(), "grayproxy_test_extra"), 7);
}

// The core property of the design: several workers recording at once, with a concurrent
// scraper, lose nothing and the scraper sees consistent, monotonic values.
TEST(Metrics, ConcurrentWorkersGiveExactTotals) {
  constexpr unsigned kThreads = 4;
  constexpr int kPerThread = 100000;
  Metrics m(kThreads, "v");
  RouteStats& shop = m.route("shop");
  RouteStats& cart = m.route("cart");

  constexpr std::array<unsigned, 10> kStatus = {200, 200, 200, 200, 200, 200, 204, 404, 503, 301};
  constexpr std::array<std::chrono::nanoseconds, 4> kLatency = {300us, 1ms, 250ms, 90s};
  const auto version_of = [](int i) { return i % 4 == 0 ? Version::canary : Version::stable; };

  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    double last_total = 0;
    while (!done.load()) {
      for (const prometheus::MetricFamily& f : m.Collect()) {
        if (f.name == "grayproxy_request_duration_seconds") {
          double total = 0;
          for (const auto& h : f.metric) {
            std::uint64_t prev = 0;
            for (const auto& b : h.histogram.bucket) {
              ASSERT_GE(b.cumulative_count, prev);
              prev = b.cumulative_count;
            }
            ASSERT_EQ(h.histogram.sample_count, h.histogram.bucket.back().cumulative_count);
            total += double(h.histogram.sample_count);
          }
          ASSERT_GE(total, last_total);
          last_total = total;
        }
      }
      ++scrapes;
    }
  });

  std::vector<std::thread> workers;
  for (unsigned w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      for (int i = 0; i < kPerThread; ++i) {
        RouteStats& r = i % 3 == 0 ? cart : shop;
        r.record(w, version_of(i), kStatus[i % 10], kLatency[(i / 10) % 4]);
        if (i % 100 == 0) r.upstream_error(w, version_of(i), UpstreamError::reset);
        if (i % 10 == 0) m.connection_opened(w);
        if (i % 20 == 0) m.connection_closed(w);
      }
    });
  }
  for (auto& t : workers) t.join();
  done = true;
  scraper.join();
  EXPECT_GT(scrapes.load(), 0);

  // Expected values from a single-threaded model of the same pattern, times kThreads.
  struct Expect {
    std::array<double, 5> classes{};
    std::array<double, kBuckets> buckets{};
    std::uint64_t sum_us = 0;
    double resets = 0;
  };
  std::map<std::pair<std::string, Version>, Expect> expect;
  for (int i = 0; i < kPerThread; ++i) {
    Expect& e = expect[{i % 3 == 0 ? "cart" : "shop", version_of(i)}];
    e.classes[code_class_index(kStatus[i % 10])] += kThreads;
    e.buckets[bucket_index(kLatency[(i / 10) % 4])] += kThreads;
    e.sum_us += kThreads * std::uint64_t(kLatency[(i / 10) % 4].count() / 1000);
    if (i % 100 == 0) e.resets += kThreads;
  }

  const std::string t = m.serialize();
  double all = 0;
  for (const auto& [key, e] : expect) {
    const std::string route = key.first;
    const std::string version(to_string(key.second));
    double cumulative = 0;
    for (std::size_t c = 0; c < kCodeClasses; ++c) {
      const double got =
          sample(t, series("grayproxy_requests_total", route, version,
                           "code_class=\"" + std::string(kCodeClassNames[c]) + "\""));
      EXPECT_EQ(got, e.classes[c]) << route << version << c;
      all += got;
    }
    for (std::size_t b = 0; b < kBuckets; ++b) {
      cumulative += e.buckets[b];
      std::ostringstream le;
      le.precision(16);
      if (b + 1 == kBuckets)
        le << "+Inf";
      else
        le << bucket_upper_bound_seconds(b);
      EXPECT_EQ(sample(t, series("grayproxy_request_duration_seconds_bucket", route, version,
                                 "le=\"" + le.str() + "\"")),
                cumulative)
          << route << version << le.str();
    }
    EXPECT_EQ(sample(t, series("grayproxy_request_duration_seconds_count", route, version)),
              cumulative);
    EXPECT_DOUBLE_EQ(sample(t, series("grayproxy_request_duration_seconds_sum", route, version)),
                     double(e.sum_us) / 1e6);
    EXPECT_EQ(
        sample(t, series("grayproxy_upstream_errors_total", route, version, "reason=\"reset\"")),
        e.resets);

    const Snapshot s = m.totals(route, key.second);
    EXPECT_EQ(double(s.requests), cumulative);
    EXPECT_EQ(double(s.errors_5xx), e.classes[4]);
  }
  EXPECT_EQ(all, double(kThreads) * kPerThread);
  // Hand-computed: per thread 100000/10 opened, 100000/20 closed.
  EXPECT_EQ(sample(t, "grayproxy_downstream_connections_active"), kThreads * (10000 - 5000));
  // Hand-computed: stable 5xx on shop = i%10==8 and i%4!=0 and i%3!=0 over 100000, x4.
  int shop_stable_5xx = 0;
  for (int i = 0; i < kPerThread; ++i) shop_stable_5xx += i % 10 == 8 && i % 4 != 0 && i % 3 != 0;
  EXPECT_EQ(shop_stable_5xx, 3333);
  EXPECT_EQ(sample(t, series("grayproxy_requests_total", "shop", "stable", "code_class=\"5xx\"")),
            4 * 3333);
}

// promtool's lint is the acceptance check of docs/design.md "Metrics": run the real binary on a
// full page.
TEST(Metrics, PromtoolAcceptsThePage) {
  Metrics m(2, "0.1.0");
  for (const char* route : {"shop", "cart", "api-v2"}) {
    RouteStats& r = m.route(route);
    r.record(0, Version::stable, 200, 3ms);
    r.record(1, Version::canary, 503, 2s);
    r.upstream_error(1, Version::canary, UpstreamError::connect);
    m.set_canary_weight(route, 10);
    m.set_rollout_state(route, "progressing");
    m.rollout_transition(route, "progressing");
  }
  m.route(Metrics::kUnmatchedRoute).record(0, Version::stable, 404, 50us);
  m.config_reload(true);
  m.config_reload(false);
  m.connection_opened(0);

  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  const std::string stem = "gp_metrics_promtool_" + std::to_string(::getpid());
  const std::filesystem::path page = dir / (stem + ".prom");
  const std::filesystem::path out = dir / (stem + ".out");
  {
    std::ofstream f(page);
    f << m.serialize();
  }
  const std::string cmd =
      "promtool check metrics < '" + page.string() + "' > '" + out.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream o(out);
  const std::string output((std::istreambuf_iterator<char>(o)), std::istreambuf_iterator<char>());
  ASSERT_NE(rc, -1);
  EXPECT_TRUE(WIFEXITED(rc)) << rc;
  EXPECT_EQ(WEXITSTATUS(rc), 0) << output;
  std::filesystem::remove(page);
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace gp::metrics
