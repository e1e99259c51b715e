// routes[].retries, split.canary_unavailable, clusters[].outlier_detection and limits.
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "tests/config/parse_error.hpp"

namespace gp::config {
namespace {

using namespace std::chrono_literals;

std::string error_of(const std::string& yaml) {
  return parse_error(yaml);
}

// Lines 1-3; clusters from line 4: cluster a (lines 5-6), cluster b's extra keys from line 9.
const std::string kListeners =
    "listeners:\n"
    "  - name: public\n"
    "    address: 0.0.0.0:8080\n";

std::string with_cluster_b(const std::string& b_keys) {
  return kListeners +
         "clusters:\n"
         "  - name: a\n"
         "    endpoints: [127.0.0.1:9001, 127.0.0.1:9002]\n"
         "  - name: b\n"
         "    endpoints: [127.0.0.1:9003]\n" +
         b_keys +
         "routes:\n"
         "  - name: shop\n"
         "    stable: a\n";
}

// Route keys from line 13 (after the route's stable/canary).
std::string with_route(const std::string& route_keys) {
  return kListeners +
         "clusters:\n"
         "  - name: a\n"
         "    endpoints: [127.0.0.1:9001, 127.0.0.1:9002]\n"
         "  - name: b\n"
         "    endpoints: [127.0.0.1:9003]\n"
         "routes:\n"
         "  - name: shop\n"
         "    stable: a\n"
         "    canary: b\n" +
         route_keys;
}

TEST(ConfigUpstreamFaults, DefaultsWhenAbsent) {
  const Config c = parse(with_route(""), "t.yaml");
  EXPECT_FALSE(c.clusters[0].outlier_detection);
  EXPECT_EQ(c.clusters[0].limits, ClusterLimits{});
  EXPECT_EQ(c.clusters[0].limits.max_active_requests, 0u);
  EXPECT_EQ(c.clusters[0].limits.max_pending_requests, 0u);
  EXPECT_FALSE(c.routes[0].retries);
}

TEST(ConfigUpstreamFaults, Retries) {
  const Config c = parse(
      with_route("    retries: {attempts: 2, on: [connect-failure, reset, 503]}\n"), "t.yaml");
  ASSERT_TRUE(c.routes[0].retries);
  EXPECT_EQ(c.routes[0].retries->attempts, 2u);
  EXPECT_EQ(c.routes[0].retries->on, kRetryConnectFailure | kRetryReset | kRetry503);

  const Config all =
      parse(with_route("    retries:\n"
                       "      attempts: 10\n"
                       "      on: [timeout, 502, \"503\", 504, reset, connect-failure]\n"),
            "t.yaml");
  EXPECT_EQ(all.routes[0].retries->on,
            kRetryConnectFailure | kRetryReset | kRetryTimeout | kRetry502 | kRetry503 | kRetry504);

  // attempts defaults to 0, on to connect-failure and reset.
  const Config d = parse(with_route("    retries: {}\n"), "t.yaml");
  EXPECT_EQ(d.routes[0].retries->attempts, 0u);
  EXPECT_EQ(d.routes[0].retries->on, kRetryConnectFailure | kRetryReset);
}

TEST(ConfigUpstreamFaults, RetriesErrors) {
  EXPECT_EQ(error_of(with_route("    retries: {attempts: 11}\n")),
            "t.yaml:13:25: routes[0].retries.attempts: must be between 0 and 10, got 11");
  EXPECT_EQ(error_of(with_route("    retries: {attempts: -1}\n")),
            "t.yaml:13:25: routes[0].retries.attempts: must be between 0 and 10, got -1");
  EXPECT_EQ(error_of(with_route("    retries: {attempts: 1, on: [reset, 500]}\n")),
            "t.yaml:13:40: routes[0].retries.on[1]: expected connect-failure, reset, timeout, "
            "502, 503 or 504, got 500");
  EXPECT_EQ(error_of(with_route("    retries: {attempts: 1, on: [5xx]}\n")),
            "t.yaml:13:33: routes[0].retries.on[0]: expected connect-failure, reset, timeout, "
            "502, 503 or 504, got \"5xx\"");
  EXPECT_EQ(error_of(with_route("    retries: {attempts: 1, on: [reset, reset]}\n")),
            "t.yaml:13:40: routes[0].retries.on[1]: duplicate retry condition, got \"reset\"");
  EXPECT_EQ(error_of(with_route("    retries: {attempts: 1, on: []}\n")),
            "t.yaml:13:32: routes[0].retries.on: expected at least one retry condition, got an "
            "empty sequence");
  EXPECT_EQ(error_of(with_route("    retries: {attempts: 1, when: [reset]}\n")),
            "t.yaml:13:28: routes[0].retries.when: unknown key (expected one of: attempts, on)");
}

TEST(ConfigUpstreamFaults, CanaryUnavailable) {
  const std::string split = "    split:\n      hash_on: {header: x-user-id}\n";
  const Config d = parse(with_route(split), "t.yaml");
  EXPECT_FALSE(d.routes[0].split->fallback_to_stable);
  const Config f =
      parse(with_route(split + "      canary_unavailable: fallback_to_stable\n"), "t.yaml");
  EXPECT_TRUE(f.routes[0].split->fallback_to_stable);
  const Config e = parse(with_route(split + "      canary_unavailable: fail\n"), "t.yaml");
  EXPECT_FALSE(e.routes[0].split->fallback_to_stable);
  EXPECT_EQ(error_of(with_route(split + "      canary_unavailable: stable\n")),
            "t.yaml:15:27: routes[0].split.canary_unavailable: expected fail or "
            "fallback_to_stable, got \"stable\"");
}

TEST(ConfigUpstreamFaults, OutlierDetection) {
  const Config c = parse(with_cluster_b("    outlier_detection:\n"
                                        "      consecutive_failures: 3\n"
                                        "      ejection_time: 2s\n"
                                        "      max_ejection_percent: 100\n"),
                         "t.yaml");
  ASSERT_TRUE(c.clusters[1].outlier_detection);
  const OutlierDetection& o = *c.clusters[1].outlier_detection;
  EXPECT_EQ(o.consecutive_failures, 3u);
  EXPECT_EQ(o.ejection_time, 2s);
  EXPECT_EQ(o.max_ejection_time, 300s);  // Envoy's default
  EXPECT_EQ(o.max_ejection_percent, 100u);

  const Config d = parse(with_cluster_b("    outlier_detection: {}\n"), "t.yaml");
  EXPECT_EQ(*d.clusters[1].outlier_detection, OutlierDetection{});
  EXPECT_EQ(d.clusters[1].outlier_detection->consecutive_failures, 5u);
  EXPECT_EQ(d.clusters[1].outlier_detection->ejection_time, 30s);
  EXPECT_EQ(d.clusters[1].outlier_detection->max_ejection_percent, 50u);

  const Config big =
      parse(with_cluster_b("    outlier_detection: {ejection_time: 10m}\n"), "t.yaml");
  EXPECT_EQ(big.clusters[1].outlier_detection->max_ejection_time, 600s);  // max(300s, base)
  const Config capped =
      parse(with_cluster_b("    outlier_detection: {ejection_time: 1s, max_ejection_time: 4s}\n"),
            "t.yaml");
  EXPECT_EQ(capped.clusters[1].outlier_detection->max_ejection_time, 4s);
}

TEST(ConfigUpstreamFaults, OutlierDetectionErrors) {
  EXPECT_EQ(error_of(with_cluster_b("    outlier_detection: {consecutive_failures: 0}\n")),
            "t.yaml:9:47: clusters[1].outlier_detection.consecutive_failures: must be between 1 "
            "and 1000000, got 0");
  EXPECT_EQ(error_of(with_cluster_b("    outlier_detection: {ejection_time: 0s}\n")),
            "t.yaml:9:40: clusters[1].outlier_detection.ejection_time: must be greater than 0, "
            "got \"0s\"");
  EXPECT_EQ(error_of(with_cluster_b("    outlier_detection: {max_ejection_percent: 101}\n")),
            "t.yaml:9:47: clusters[1].outlier_detection.max_ejection_percent: must be between 0 "
            "and 100, got 101");
  EXPECT_EQ(error_of(with_cluster_b(
                "    outlier_detection: {ejection_time: 5s, max_ejection_time: 1s}\n")),
            "t.yaml:9:63: clusters[1].outlier_detection.max_ejection_time: must be at least "
            "ejection_time, got \"1s\"");
  EXPECT_EQ(error_of(with_cluster_b("    outlier_detection: {interval: 10s}\n")),
            "t.yaml:9:25: clusters[1].outlier_detection.interval: unknown key (expected one of: "
            "consecutive_failures, ejection_time, max_ejection_time, max_ejection_percent)");
}

TEST(ConfigUpstreamFaults, Limits) {
  const Config c =
      parse(with_cluster_b("    limits: {max_pending_requests: 10, max_active_requests: 100}\n"),
            "t.yaml");
  EXPECT_EQ(c.clusters[1].limits.max_pending_requests, 10u);
  EXPECT_EQ(c.clusters[1].limits.max_active_requests, 100u);
  EXPECT_EQ(error_of(with_cluster_b("    limits: {max_active_requests: 0}\n")),
            "t.yaml:9:35: clusters[1].limits.max_active_requests: must be between 1 and "
            "4294967295, got 0");
  EXPECT_EQ(error_of(with_cluster_b("    limits: {max_requests: 5}\n")),
            "t.yaml:9:14: clusters[1].limits.max_requests: unknown key (expected one of: "
            "max_pending_requests, max_active_requests)");
}

TEST(ConfigUpstreamFaults, ChangesMakeTheClusterAndRouteDiffer) {
  // Reload diffs compare Cluster and Route: the new fields must take part.
  const Config a = parse(with_route(""), "t.yaml");
  const Config b = parse(with_route("    retries: {attempts: 1}\n"), "t.yaml");
  EXPECT_FALSE(a.routes[0] == b.routes[0]);
  const Config c = parse(with_cluster_b(""), "t.yaml");
  const Config d = parse(with_cluster_b("    limits: {max_active_requests: 3}\n"), "t.yaml");
  EXPECT_FALSE(c.clusters[1] == d.clusters[1]);
}

}  // namespace
}  // namespace gp::config
