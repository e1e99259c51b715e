#include <gtest/gtest.h>

#include "config/config.hpp"

namespace gp::config {
namespace {

using namespace std::chrono_literals;

const std::string kData = std::string(GP_TEST_DATA) + "/config/";

TEST(ParseValid, DesignExample) {
  const Config c = load_file(kData + "design_example.yaml");
  EXPECT_EQ(c.source, kData + "design_example.yaml");
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.state_dir, "/var/lib/grayproxy");
  EXPECT_EQ(c.admin.address, (Address{"127.0.0.1", 9901}));
  EXPECT_EQ(c.admin.token_file, "/etc/grayproxy/admin-token");

  EXPECT_EQ(c.timeouts.request_header, 10s);
  EXPECT_EQ(c.timeouts.idle, 60s);
  EXPECT_EQ(c.timeouts.upstream_connect, 2s);
  EXPECT_EQ(c.timeouts.upstream_response, 30s);
  EXPECT_EQ(c.timeouts.drain, 20s);

  EXPECT_EQ(c.limits.max_request_header_bytes, 61440u);
  EXPECT_EQ(c.limits.max_response_header_bytes, 61440u);  // default
  EXPECT_EQ(c.limits.max_connections, 10000u);
  EXPECT_EQ(c.limits.max_request_body_bytes, 0u);
  EXPECT_EQ(c.limits.max_idle_upstream_per_endpoint, 64u);
  EXPECT_EQ(c.limits.max_request_line_bytes, 8192u);  // default

  ASSERT_TRUE(c.access_log);
  EXPECT_EQ(c.access_log->path, "/var/log/grayproxy/access.log");
  EXPECT_EQ(c.access_log->format, "json");

  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0], (Listener{"public", Address{"0.0.0.0", 8080}, std::nullopt}));

  ASSERT_EQ(c.clusters.size(), 2u);
  EXPECT_EQ(c.clusters[0].name, "shop-v1");
  EXPECT_EQ(c.clusters[0].endpoints,
            (std::vector<Address>{{"127.0.0.1", 9001}, {"127.0.0.1", 9002}}));
  EXPECT_FALSE(c.clusters[0].tls);
  EXPECT_EQ(c.clusters[0].mark.line, 10);
  EXPECT_EQ(c.clusters[0].mark.column, 5);  // the '{' of the flow map
  EXPECT_EQ(c.clusters[1].name, "shop-v2");
  EXPECT_EQ(c.clusters[1].endpoints, (std::vector<Address>{{"127.0.0.1", 9101}}));
  EXPECT_FALSE(c.clusters[1].tls);
  EXPECT_EQ(c.clusters[1].mark.line, 11);
  EXPECT_EQ(c.find_cluster("shop-v2"), &c.clusters[1]);

  ASSERT_EQ(c.routes.size(), 1u);
  const Route& r = c.routes[0];
  EXPECT_EQ(r.name, "shop");
  EXPECT_EQ(r.mark.line, 13);
  EXPECT_EQ(r.mark.column, 5);
  EXPECT_EQ(r.match, (Match{"shop.example.com", "/", std::nullopt}));
  EXPECT_EQ(r.stable, "shop-v1");
  EXPECT_EQ(r.canary, "shop-v2");

  ASSERT_TRUE(r.split);
  const Split& s = *r.split;
  EXPECT_EQ(s.weight_bp, 1000u);
  EXPECT_EQ(s.hash_on, (HashOn{KeySource::cookie, "uid"}));
  EXPECT_EQ(s.salt, "shop");
  EXPECT_EQ(s.fallback, Fallback::cookie);
  ASSERT_EQ(s.overrides.size(), 2u);
  EXPECT_EQ(s.overrides[0], (Override{KeySource::header, "x-canary", "always", Version::canary}));
  EXPECT_EQ(s.overrides[1], (Override{KeySource::header, "x-canary", "never", Version::stable}));
  EXPECT_EQ(s.cookie_ttl, 30 * 24h);
  EXPECT_FALSE(s.trust_forwarded_for);
  EXPECT_FALSE(s.expose_version);

  ASSERT_TRUE(r.rollout);
  const Rollout& ro = *r.rollout;
  EXPECT_EQ(ro.steps_bp, (std::vector<std::uint32_t>{100, 500, 1000, 2500, 5000, 10000}));
  EXPECT_EQ(ro.interval, 30s);
  EXPECT_EQ(ro.min_requests, 50u);
  EXPECT_DOUBLE_EQ(ro.max_error_rate, 0.01);
  EXPECT_EQ(ro.max_p99_latency, 300ms);
  EXPECT_EQ(ro.failure_limit, 2u);
  EXPECT_EQ(ro.consecutive_successes, 1u);
  EXPECT_TRUE(ro.compare_to_stable);
  EXPECT_DOUBLE_EQ(ro.confidence, 0.995);
}

TEST(ParseValid, EveryField) {
  const Config c = load_file(kData + "all_fields.yaml");
  EXPECT_EQ(c.workers, 8u);
  EXPECT_EQ(c.state_dir, "/tmp/grayproxy-state");
  EXPECT_EQ(c.admin, (Admin{Address{"::1", 9902}, "/etc/grayproxy/token"}));
  EXPECT_EQ(c.timeouts, (Timeouts{5s, 2min, 250ms, 1h, 90s}));
  EXPECT_EQ(c.limits, (Limits{32768, 1048576, 500, 10485760, 0}));
  EXPECT_EQ(c.access_log, (AccessLog{"-", "text"}));

  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0], (Listener{"public", Address{"0.0.0.0", 8080}, std::nullopt}));
  EXPECT_EQ(c.listeners[1], (Listener{"public-tls", Address{"::", 8443},
                                      ListenerTls{"/etc/grayproxy/tls.crt",
                                                  "/etc/grayproxy/tls.key",
                                                  {},
                                                  std::chrono::seconds(10)}}));

  ASSERT_EQ(c.clusters.size(), 3u);
  EXPECT_EQ(c.clusters[0].mark.line, 31);
  EXPECT_EQ(c.clusters[1].mark.line, 33);
  EXPECT_EQ(c.clusters[2].mark.line, 40);
  EXPECT_EQ(c.clusters[2].mark.column, 5);
  EXPECT_EQ(c.clusters[0], (Cluster{"api-v1",
                                    {{"10.0.0.1", 80}, {"backend.internal", 8080}},
                                    std::nullopt,
                                    Mark{31, 5},
                                    std::nullopt,
                                    {}}));
  EXPECT_EQ(c.clusters[1],
            (Cluster{"api-v2",
                     {{"2001:db8::1", 443}},
                     UpstreamTls{"/etc/ssl/internal-ca.pem", "api.internal", false, "", ""},
                     Mark{33, 5},
                     std::nullopt,
                     {}}));
  EXPECT_EQ(c.clusters[2], (Cluster{"static",
                                    {{"localhost", 9000}},
                                    UpstreamTls{"", "", true, "", ""},
                                    Mark{40, 5},
                                    std::nullopt,
                                    {}}));

  ASSERT_EQ(c.routes.size(), 2u);
  const Route& r = c.routes[0];
  EXPECT_EQ(r.name, "api");
  EXPECT_EQ(r.mark.line, 44);
  EXPECT_EQ(r.mark.column, 5);
  EXPECT_EQ(r.match, (Match{"*.example.com", "/api/", HeaderMatch{"x-beta", "yes"}}));
  EXPECT_EQ(r.stable, "api-v1");
  EXPECT_EQ(r.canary, "api-v2");
  Split split;
  split.weight_bp = 1234;
  split.hash_on = {KeySource::header, "x-user-id"};
  split.salt = "api-2024";
  split.fallback = Fallback::random;
  split.overrides = {{KeySource::header, "x-canary", "always", Version::canary},
                     {KeySource::cookie, "Force", "old", Version::stable}};
  split.cookie_ttl = 7 * 24h;
  split.trust_forwarded_for = true;
  split.expose_version = true;
  EXPECT_EQ(r.split, split);
  Rollout rollout;
  rollout.steps_bp = {50, 500, 1250, 10000};
  rollout.interval = 1min;
  rollout.min_requests = 0;
  rollout.max_error_rate = 0.05;
  rollout.max_p99_latency = 1s;
  rollout.failure_limit = 3;
  rollout.consecutive_successes = 2;
  rollout.compare_to_stable = true;
  rollout.compare_confidence = 0.999;
  rollout.confidence = 0.99;
  rollout.max_error_rate_ratio = 3;
  rollout.power = 0.9;
  EXPECT_EQ(r.rollout, rollout);

  const Route& plain = c.routes[1];
  EXPECT_EQ(plain.name, "static");
  EXPECT_EQ(plain.match, Match{});
  EXPECT_EQ(plain.stable, "static");
  EXPECT_EQ(plain.canary, "");
  EXPECT_FALSE(plain.split);
  EXPECT_FALSE(plain.rollout);
  EXPECT_EQ(plain.mark.line, 76);
}

constexpr const char* kMinimal = R"(
listeners: [{name: l, address: 127.0.0.1:8080}]
clusters: [{name: c, endpoints: [127.0.0.1:9000]}]
routes: [{name: r, stable: c}]
)";

TEST(ParseValid, DefaultsMatchConfigHpp) {
  const Config c = parse(kMinimal, "min.yaml");
  EXPECT_EQ(c.source, "min.yaml");
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.state_dir, "");
  EXPECT_EQ(c.admin, Admin{});
  EXPECT_EQ(c.admin.address.str(), "127.0.0.1:9901");
  EXPECT_EQ(c.timeouts, Timeouts{});
  EXPECT_EQ(c.limits, Limits{});
  EXPECT_FALSE(c.access_log);
  EXPECT_EQ(c.routes[0].match, Match{});
}

TEST(ParseValid, SplitDefaults) {
  const std::string base = R"(
listeners: [{name: l, address: 127.0.0.1:8080}]
clusters: [{name: a, endpoints: [127.0.0.1:9000]}, {name: b, endpoints: [127.0.0.1:9001]}]
routes:
  - name: r
    stable: a
    canary: b
)";
  {
    const Config c = parse(base + "    split: {hash_on: {header: X-User}}\n", "t.yaml");
    const Split& s = *c.routes[0].split;
    EXPECT_EQ(s.weight_bp, 0u);
    EXPECT_EQ(s.hash_on, (HashOn{KeySource::header, "x-user"}));
    EXPECT_EQ(s.salt, "r");
    EXPECT_EQ(s.fallback, Fallback::client_ip);  // header key
    EXPECT_TRUE(s.overrides.empty());
    EXPECT_FALSE(c.routes[0].rollout);
  }
  {
    const Config c = parse(base + "    split: {hash_on: {cookie: UID}}\n", "t.yaml");
    const Split& s = *c.routes[0].split;
    EXPECT_EQ(s.hash_on, (HashOn{KeySource::cookie, "UID"}));  // cookie names keep case
    EXPECT_EQ(s.fallback, Fallback::cookie);                   // cookie key
  }
  {
    const Config c =
        parse(base + "    split: {hash_on: {cookie: u}}\n    rollout: {steps: [100]}\n", "t.yaml");
    Rollout expected;
    expected.steps_bp = {10000};
    EXPECT_EQ(c.routes[0].rollout, expected);
    EXPECT_FALSE(c.routes[0].rollout->max_p99_latency);
  }
  {  // canary without a split: a declared but unused canary is fine
    const Config c = parse(base, "t.yaml");
    EXPECT_EQ(c.routes[0].canary, "b");
    EXPECT_FALSE(c.routes[0].split);
  }
}

TEST(ParseValid, ScalarSpellings) {
  const std::string base = R"(
listeners: [{name: l, address: 127.0.0.1:8080}]
clusters: [{name: a, endpoints: [127.0.0.1:9000]}, {name: b, endpoints: [127.0.0.1:9001]}]
routes:
  - name: r
    stable: a
    canary: b
)";
  // Quoted and plain numbers read the same; YAML 1.2 boolean spellings.
  const Config c = parse(base + R"(    split:
      weight: "12.5"
      hash_on: {header: x}
      trust_forwarded_for: True
      expose_version: FALSE
    rollout: {steps: ["1", 2.5, 100], min_requests: "7", max_error_rate: 1e-3, confidence: 0.9999}
)",
                         "t.yaml");
  EXPECT_EQ(c.routes[0].split->weight_bp, 1250u);
  EXPECT_TRUE(c.routes[0].split->trust_forwarded_for);
  EXPECT_FALSE(c.routes[0].split->expose_version);
  EXPECT_EQ(c.routes[0].rollout->steps_bp, (std::vector<std::uint32_t>{100, 250, 10000}));
  EXPECT_EQ(c.routes[0].rollout->min_requests, 7u);
  EXPECT_DOUBLE_EQ(c.routes[0].rollout->max_error_rate, 0.001);
  EXPECT_DOUBLE_EQ(c.routes[0].rollout->confidence, 0.9999);
}

TEST(ParseValid, RouteMatchesThatDifferOnlyByHeaderOrHostAreDistinct) {
  const Config c = parse(R"(
listeners: [{name: l, address: 127.0.0.1:8080}]
clusters: [{name: a, endpoints: [127.0.0.1:9000]}]
routes:
  - {name: r1, stable: a}
  - {name: r2, stable: a, match: {header: {name: x-beta, value: "1"}}}
  - {name: r3, stable: a, match: {host: a.example}}
  - {name: r4, stable: a, match: {host: "*.a.example", path_prefix: /api}}
  - {name: r5, stable: a, match: {host: "", path_prefix: /api}}
)",
                         "t.yaml");
  EXPECT_EQ(c.routes.size(), 5u);
  EXPECT_EQ(c.routes[4].match.host, "");
}

TEST(ParseValid, WorkersAndLimitsBounds) {
  auto with = [](const std::string& extra) {
    return parse(std::string(kMinimal) + extra, "t.yaml");
  };
  EXPECT_EQ(with("workers: 1").workers, 1u);
  EXPECT_EQ(with("workers: 1024").workers, 1024u);
  EXPECT_EQ(with("limits: {max_request_header_bytes: 1024}").limits.max_request_header_bytes,
            1024u);
  EXPECT_EQ(
      with("limits: {max_request_body_bytes: 18446744073709551615}").limits.max_request_body_bytes,
      18446744073709551615u);
  EXPECT_EQ(with("limits: {max_idle_upstream_per_endpoint: 100000}")
                .limits.max_idle_upstream_per_endpoint,
            100000u);
  EXPECT_EQ(with("limits: {max_request_line_bytes: 256}").limits.max_request_line_bytes, 256u);
  EXPECT_EQ(with("limits: {max_request_line_bytes: 1048576}").limits.max_request_line_bytes,
            1048576u);
}

TEST(ParseValid, DocumentMarkerAndComments) {
  const Config c = parse(std::string("# grayproxy\n---\n") + kMinimal, "t.yaml");
  EXPECT_EQ(c.routes[0].name, "r");
}

}  // namespace
}  // namespace gp::config
