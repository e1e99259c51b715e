// Every class of invalid configuration, with its exact message.
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "tests/config/parse_error.hpp"

namespace gp::config {
namespace {

std::string error_of(const std::string& yaml) {
  return parse_error(yaml);
}

// Lines 1-8: one listener, clusters a and b. Tests append from line 9.
const std::string kHead =
    "listeners:\n"
    "  - name: public\n"
    "    address: 0.0.0.0:8080\n"
    "clusters:\n"
    "  - name: a\n"
    "    endpoints: [127.0.0.1:9001]\n"
    "  - name: b\n"
    "    endpoints: [127.0.0.1:9002]\n";

// Lines 9-15: a route with a canary and a split; tests append split keys from line 16.
const std::string kSplit = kHead +
                           "routes:\n"
                           "  - name: shop\n"
                           "    stable: a\n"
                           "    canary: b\n"
                           "    split:\n"
                           "      weight: 10\n"
                           "      hash_on: {cookie: uid}\n";

// Lines 9-13 + rollout: tests append rollout keys from line 17.
const std::string kRollout = kSplit + "    rollout:\n";

// Lines 9-11: a plain route; tests append top-level keys from line 12.
const std::string kValid = kHead +
                           "routes:\n"
                           "  - name: shop\n"
                           "    stable: a\n";

TEST(ParseErrors, BaseIsValid) {
  EXPECT_EQ(error_of(kValid), "no error");
  EXPECT_EQ(error_of(kSplit), "no error");
  EXPECT_EQ(error_of(kRollout + "      steps: [50, 100]\n"), "no error");
}

TEST(ParseErrors, WeightOutOfRangeWithLineAndColumn) {
  std::string yaml = kSplit;
  yaml.replace(yaml.find("weight: 10"), 10, "weight: 140");
  EXPECT_EQ(error_of(yaml),
            "t.yaml:14:15: routes[0].split.weight: must be between 0 and 100, got 140");
}

TEST(ParseErrors, UnknownKeys) {
  EXPECT_EQ(error_of(kValid + "timeouts:\n  idle: 5s\n  foo: 1s\n"),
            "t.yaml:14:3: timeouts.foo: unknown key (expected one of: request_header, idle, "
            "upstream_connect, upstream_response, drain)");
  EXPECT_EQ(error_of(kValid + "worker: 4\n"),
            "t.yaml:12:1: worker: unknown key (expected one of: workers, state_dir, admin, "
            "timeouts, limits, http, access_log, listeners, clusters, routes, fleet)");
  EXPECT_EQ(error_of(kSplit + "      wieght: 5\n"),
            "t.yaml:16:7: routes[0].split.wieght: unknown key (expected one of: weight, hash_on, "
            "salt, fallback, overrides, cookie_ttl, trust_forwarded_for, expose_version, "
            "canary_unavailable)");
  EXPECT_EQ(error_of(kValid + "    canery: b\n"),
            "t.yaml:12:5: routes[0].canery: unknown key (expected one of: name, match, stable, "
            "canary, split, rollout, retries)");
  EXPECT_EQ(error_of(kRollout + "      steps: [100]\n      max_p95_latency: 1s\n"),
            "t.yaml:18:7: routes[0].rollout.max_p95_latency: unknown key (expected one of: steps, "
            "step_weight, max_weight, start_delay, interval, min_requests, max_error_rate, "
            "max_error_rate_ratio, max_error_rate_increase, max_p99_latency, failure_limit, "
            "consecutive_successes, compare_to_stable, confidence, power, mode, max_latency_ratio, "
            "step_warmup)");
}

TEST(ParseErrors, DuplicateKey) {
  EXPECT_EQ(error_of(kValid + "    stable: b\n"),
            "t.yaml:12:5: routes[0].stable: duplicate key (first at line 11)");
}

TEST(ParseErrors, WrongTypes) {
  EXPECT_EQ(error_of(kValid + "admin: [127.0.0.1:9901]\n"),
            "t.yaml:12:8: admin: expected a map, got a sequence");
  EXPECT_EQ(error_of(kValid + "timeouts: 5s\n"),
            "t.yaml:12:11: timeouts: expected a map, got \"5s\"");
  EXPECT_EQ(error_of(kValid + "admin:\n"), "t.yaml:12:1: admin: expected a map, got null");
  EXPECT_EQ(error_of(kValid + "listeners: {}\n"),
            "t.yaml:12:1: listeners: duplicate key (first at line 1)");
  EXPECT_EQ(error_of("listeners: {name: x}\n"),
            "t.yaml:1:12: listeners: expected a list, got a map");
  EXPECT_EQ(error_of(kValid + "state_dir: [a, b]\n"),
            "t.yaml:12:12: state_dir: expected a string, got a sequence");
  EXPECT_EQ(error_of(kSplit + "      expose_version: yes please\n"),
            "t.yaml:16:23: routes[0].split.expose_version: expected a boolean, got \"yes please\"");
  EXPECT_EQ(error_of(kSplit + "      expose_version: yes\n"),
            "t.yaml:16:23: routes[0].split.expose_version: expected a boolean, got \"yes\"");
  EXPECT_EQ(error_of(kSplit + "      trust_forwarded_for: 1\n"),
            "t.yaml:16:28: routes[0].split.trust_forwarded_for: expected a boolean, got 1");
  EXPECT_EQ(error_of(kRollout + "      steps: [100]\n      min_requests: 1.5\n"),
            "t.yaml:18:21: routes[0].rollout.min_requests: expected an integer, got 1.5");
  EXPECT_EQ(error_of(kRollout + "      steps: [100]\n      max_error_rate: lots\n"),
            "t.yaml:18:23: routes[0].rollout.max_error_rate: expected a number, got \"lots\"");
  EXPECT_EQ(error_of("[1, 2]\n"), "t.yaml:1:1: expected a map, got a sequence");
  EXPECT_EQ(error_of("? [a]\n: 1\n"),
            "t.yaml:1:3: expected a map with string keys, got a sequence as a key");
}

TEST(ParseErrors, MissingRequired) {
  EXPECT_EQ(error_of(kHead), "t.yaml:1:1: routes: required key is missing");
  EXPECT_EQ(error_of("clusters: []\n"), "t.yaml:1:1: listeners: required key is missing");
  EXPECT_EQ(error_of(kHead + "routes:\n  - name: shop\n    canary: b\n"),
            "t.yaml:10:5: routes[0].stable: required key is missing");
  EXPECT_EQ(error_of(kHead + "routes:\n  - {stable: a}\n"),
            "t.yaml:10:5: routes[0].name: required key is missing");
  EXPECT_EQ(error_of(kHead + "routes:\n  - name: r\n    stable: a\n    canary: b\n    split: {}\n"),
            "t.yaml:13:12: routes[0].split.hash_on: required key is missing");
  EXPECT_EQ(error_of(kRollout + "      interval: 1m\n"),
            "t.yaml:17:7: routes[0].rollout.steps: required key is missing");
  EXPECT_EQ(error_of(kValid + "listeners:\n"),
            "t.yaml:12:1: listeners: duplicate key (first at line 1)");
  EXPECT_EQ(error_of(kValid + "access_log: {format: text}\n"),
            "t.yaml:12:13: access_log.path: required key is missing");
  EXPECT_EQ(
      error_of("listeners:\n  - name: x\n    address: 127.0.0.1:1\n    tls: {cert_file: c}\n"),
      "t.yaml:4:10: listeners[0].tls.key_file: required key is missing");
  EXPECT_EQ(error_of(kSplit + "      overrides: [{header: x, to: canary}]\n"),
            "t.yaml:16:19: routes[0].split.overrides[0].value: required key is missing");
}

TEST(ParseErrors, EmptyLists) {
  EXPECT_EQ(error_of("listeners: []\n"),
            "t.yaml:1:12: listeners: expected at least one listener, got an empty sequence");
  EXPECT_EQ(error_of(kHead + "routes: []\n"),
            "t.yaml:9:9: routes: expected at least one route, got an empty sequence");
  EXPECT_EQ(error_of("listeners: [{name: l, address: 127.0.0.1:1}]\nclusters: []\n"),
            "t.yaml:2:11: clusters: expected at least one cluster, got an empty sequence");
  EXPECT_EQ(error_of("listeners: [{name: l, address: 127.0.0.1:1}]\n"
                     "clusters: [{name: a, endpoints: []}]\n"),
            "t.yaml:2:33: clusters[0].endpoints: expected at least one endpoint, got an empty "
            "sequence");
  EXPECT_EQ(error_of(kRollout + "      steps: []\n"),
            "t.yaml:17:14: routes[0].rollout.steps: expected at least one step, got an empty "
            "sequence");
}

TEST(ParseErrors, DanglingClusterReferences) {
  EXPECT_EQ(
      error_of(
          kValid +
          "  - name: shop2\n    stable: a\n    canary: shop-v3\n    match: {host: a.example}\n"),
      "t.yaml:14:13: routes[1].canary: unknown cluster \"shop-v3\"");
  EXPECT_EQ(error_of(kHead + "routes:\n  - {name: r, stable: A}\n"),
            "t.yaml:10:23: routes[0].stable: unknown cluster \"A\"");
  EXPECT_EQ(error_of(kValid + "    canary: a\n"),
            "t.yaml:12:13: routes[0].canary: must differ from stable, got \"a\"");
  EXPECT_EQ(error_of(kValid + "    canary: \"\"\n"),
            "t.yaml:12:13: routes[0].canary: expected a non-empty string, got \"\"");
}

TEST(ParseErrors, DuplicateNames) {
  EXPECT_EQ(error_of(kHead + "  - name: a\n    endpoints: [127.0.0.1:9003]\nroutes: []\n"),
            "t.yaml:9:11: clusters[2].name: duplicate cluster name \"a\" (first at line 5)");
  EXPECT_EQ(error_of(kValid + "  - name: shop\n    stable: b\n"),
            "t.yaml:12:11: routes[1].name: duplicate route name \"shop\" (first at line 10)");
  EXPECT_EQ(error_of("listeners:\n  - {name: p, address: 127.0.0.1:80}\n"
                     "  - {name: p, address: 127.0.0.1:81}\n"),
            "t.yaml:3:12: listeners[1].name: duplicate listener name \"p\" (first at line 2)");
  EXPECT_EQ(error_of("listeners:\n  - {name: p, address: 127.0.0.1:80}\n"
                     "  - {name: q, address: 127.0.0.1:80}\n"),
            "t.yaml:3:24: listeners[1].address: duplicate listener address \"127.0.0.1:80\" "
            "(first at line 2)");
  EXPECT_EQ(error_of("listeners:\n  - {name: p, address: \"[::1]:80\"}\n"
                     "  - {name: q, address: \"[0::1]:80\"}\n"),
            "t.yaml:3:24: listeners[1].address: duplicate listener address \"[::1]:80\" "
            "(first at line 2)");
  EXPECT_EQ(error_of("listeners: [{name: p, address: 127.0.0.1:9901}]\n"),
            "t.yaml:1:32: listeners[0].address: must differ from admin.address (the default "
            "admin address), got \"127.0.0.1:9901\"");
  EXPECT_EQ(error_of("admin: {address: 127.0.0.1:80}\n"
                     "listeners: [{name: p, address: 127.0.0.1:80}]\n"),
            "t.yaml:2:32: listeners[0].address: must differ from admin.address (at line 1), got "
            "\"127.0.0.1:80\"");
  EXPECT_EQ(error_of("listeners: [{name: p, address: 127.0.0.1:80}]\n"
                     "clusters: [{name: a, endpoints: [127.0.0.1:1, 127.0.0.1:1]}]\n"),
            "t.yaml:2:47: clusters[0].endpoints[1]: duplicate endpoint \"127.0.0.1:1\"");
}

TEST(ParseErrors, DuplicateRouteMatch) {
  EXPECT_EQ(
      error_of(kHead + "routes:\n"
                       "  - {name: r1, stable: a, match: {host: Shop.Example, path_prefix: /}}\n"
                       "  - {name: r2, stable: b, match: {host: shop.example}}\n"),
      "t.yaml:11:34: routes[1].match: same host, path_prefix and header as route \"r1\" "
      "(line 10)");
  EXPECT_EQ(error_of(kHead + "routes:\n  - {name: r1, stable: a}\n  - {name: r2, stable: b}\n"),
            "t.yaml:11:5: routes[1].match: same host, path_prefix and header as route \"r1\" "
            "(line 10)");
  EXPECT_EQ(error_of(kHead + "routes:\n"
                             "  - {name: r1, stable: a, match: {header: {name: X-A, value: v}}}\n"
                             "  - {name: r2, stable: b, match: {header: {name: x-a, value: v}}}\n"),
            "t.yaml:11:34: routes[1].match: same host, path_prefix and header as route \"r1\" "
            "(line 10)");
}

TEST(ParseErrors, BadNamesAndMatch) {
  EXPECT_EQ(error_of(kHead + "routes:\n  - {name: \"my route\", stable: a}\n"),
            "t.yaml:10:12: routes[0].name: expected a name of letters, digits, '_', '.' and '-', "
            "got \"my route\"");
  EXPECT_EQ(error_of(kHead + "routes:\n  - {name: r, stable: a, match: {path_prefix: api}}\n"),
            "t.yaml:10:47: routes[0].match.path_prefix: must start with '/', got \"api\"");
  EXPECT_EQ(error_of(kHead + "routes:\n  - {name: r, stable: a, match: {path_prefix: \"/a?b\"}}\n"),
            "t.yaml:10:47: routes[0].match.path_prefix: expected a path without spaces, control "
            "characters, '?' or '#', got \"/a?b\"");
  EXPECT_EQ(error_of(kHead + "routes:\n  - {name: r, stable: a, match: {host: \"*\"}}\n"),
            "t.yaml:10:40: routes[0].match.host: expected a host name, *.suffix, or \"\" for any "
            "host, got \"*\"");
  EXPECT_EQ(error_of(kHead + "routes:\n  - {name: r, stable: a, match: {host: \"a.*.com\"}}\n"),
            "t.yaml:10:40: routes[0].match.host: expected a host name, *.suffix, or \"\" for any "
            "host, got \"a.*.com\"");
  EXPECT_EQ(error_of(kHead + "routes:\n  - {name: r, stable: a, match: {header: {name: \"x y\", "
                             "value: v}}}\n"),
            "t.yaml:10:49: routes[0].match.header.name: expected a header name (letters, digits "
            "and !#$%&'*+-.^_`|~), got \"x y\"");
}

TEST(ParseErrors, BadDurations) {
  EXPECT_EQ(error_of(kValid + "timeouts: {idle: 10}\n"),
            "t.yaml:12:18: timeouts.idle: expected a duration like 250ms, 30s, 5m, 1h or 7d (a "
            "unit is required), got 10");
  EXPECT_EQ(error_of(kValid + "timeouts: {idle: 1.5s}\n"),
            "t.yaml:12:18: timeouts.idle: expected a duration like 250ms, 30s, 5m, 1h or 7d (whole "
            "numbers only: write 1500ms, not 1.5s), got \"1.5s\"");
  EXPECT_EQ(error_of(kValid + "timeouts: {idle: -1s}\n"),
            "t.yaml:12:18: timeouts.idle: expected a duration like 250ms, 30s, 5m, 1h or 7d, got "
            "\"-1s\"");
  EXPECT_EQ(error_of(kValid + "timeouts: {drain: 0s}\n"),
            "t.yaml:12:19: timeouts.drain: must be greater than 0, got \"0s\"");
  EXPECT_EQ(error_of(kValid + "timeouts: {drain: 999999d}\n"),
            "t.yaml:12:19: timeouts.drain: duration too large (at most 106751d), got \"999999d\"");
  EXPECT_EQ(error_of(kSplit + "      cookie_ttl: \"\"\n"),
            "t.yaml:16:19: routes[0].split.cookie_ttl: expected a duration like 250ms, 30s, 5m, "
            "1h or 7d, got \"\"");
  EXPECT_EQ(error_of(kRollout + "      steps: [100]\n      interval: [30s]\n"),
            "t.yaml:18:17: routes[0].rollout.interval: expected a duration like 250ms, 30s, 5m, "
            "1h or 7d, got a sequence");
}

TEST(ParseErrors, BadAddresses) {
  EXPECT_EQ(error_of("listeners: [{name: p, address: localhost}]\n"),
            "t.yaml:1:32: listeners[0].address: expected host:port (the port is missing), got "
            "\"localhost\"");
  EXPECT_EQ(error_of("listeners: [{name: p, address: \"::1:80\"}]\n"),
            "t.yaml:1:32: listeners[0].address: expected an IPv6 address in brackets, like "
            "[::1]:8080, got \"::1:80\"");
  EXPECT_EQ(error_of("listeners: [{name: p, address: 127.0.0.1:0}]\n"),
            "t.yaml:1:32: listeners[0].address: expected host:port with a port between 1 and "
            "65535, got \"127.0.0.1:0\"");
  EXPECT_EQ(error_of("admin: {address: 127.0.0.1:99999}\n"),
            "t.yaml:1:18: admin.address: expected host:port with a port between 1 and 65535, got "
            "\"127.0.0.1:99999\"");
  EXPECT_EQ(error_of("listeners: [{name: l, address: 127.0.0.1:1}]\n"
                     "clusters: [{name: a, endpoints: [\"[::1]:80\", \"[::x]:80\"]}]\n"),
            "t.yaml:2:46: clusters[0].endpoints[1]: expected an IPv6 address in brackets, like "
            "[::1]:8080, got \"[::x]:80\"");
}

TEST(ParseErrors, BadPercents) {
  std::string yaml = kSplit;
  const auto at = yaml.find("weight: 10");
  EXPECT_EQ(error_of(std::string(yaml).replace(at, 10, "weight: 1.234")),
            "t.yaml:14:15: routes[0].split.weight: must have at most two decimals, got 1.234");
  EXPECT_EQ(error_of(std::string(yaml).replace(at, 10, "weight: -1")),
            "t.yaml:14:15: routes[0].split.weight: must be between 0 and 100, got -1");
  EXPECT_EQ(error_of(std::string(yaml).replace(at, 10, "weight: abc")),
            "t.yaml:14:15: routes[0].split.weight: expected a percentage between 0 and 100 like "
            "10 or 12.5, got \"abc\"");
  EXPECT_EQ(error_of(std::string(yaml).replace(at, 10, "weight: \"140\"")),
            "t.yaml:14:15: routes[0].split.weight: must be between 0 and 100, got \"140\"");
  EXPECT_EQ(error_of(kRollout + "      steps: [0, 100]\n"),
            "t.yaml:17:15: routes[0].rollout.steps[0]: must be greater than 0, got 0");
  EXPECT_EQ(error_of(kRollout + "      steps: [1, 10, 5, 100]\n"),
            "t.yaml:17:22: routes[0].rollout.steps[2]: must be greater than the previous step "
            "(10), got 5");
  EXPECT_EQ(error_of(kRollout + "      steps: [12.5, 12.5]\n"),
            "t.yaml:17:21: routes[0].rollout.steps[1]: must be greater than the previous step "
            "(12.5), got 12.5");
  EXPECT_EQ(error_of(kRollout + "      steps: [50, 101]\n"),
            "t.yaml:17:19: routes[0].rollout.steps[1]: must be between 0 and 100, got 101");
}

TEST(ParseErrors, SplitAndRolloutNeedCanary) {
  EXPECT_EQ(error_of(kValid + "    split: {hash_on: {cookie: uid}}\n"),
            "t.yaml:12:5: routes[0].split: needs a canary cluster (set routes[0].canary)");
  EXPECT_EQ(error_of(kValid + "    rollout: {steps: [100]}\n"),
            "t.yaml:12:5: routes[0].rollout: needs a canary cluster (set routes[0].canary)");
  EXPECT_EQ(error_of(kValid + "    canary: b\n    rollout: {steps: [100]}\n"),
            "t.yaml:13:5: routes[0].rollout: needs a split to move (set routes[0].split with "
            "hash_on)");
}

TEST(ParseErrors, SplitDetails) {
  std::string yaml = kSplit;
  const auto at = yaml.find("hash_on: {cookie: uid}");
  auto with_hash = [&](const std::string& hash_on) {
    return std::string(yaml).replace(at, 22, "hash_on: " + hash_on);
  };
  EXPECT_EQ(error_of(with_hash("{cookie: uid, header: x}")),
            "t.yaml:15:16: routes[0].split.hash_on: expected exactly one of header or cookie, got "
            "both");
  EXPECT_EQ(error_of(with_hash("{}")),
            "t.yaml:15:16: routes[0].split.hash_on: expected exactly one of header or cookie, got "
            "neither");
  EXPECT_EQ(error_of(with_hash("{query: x}")),
            "t.yaml:15:17: routes[0].split.hash_on.query: unknown key (expected one of: header, "
            "cookie)");
  EXPECT_EQ(error_of(with_hash("x-user-id")),
            "t.yaml:15:16: routes[0].split.hash_on: expected a map, got \"x-user-id\"");
  EXPECT_EQ(error_of(with_hash("{header: x-user}") + "      fallback: cookie\n"),
            "t.yaml:16:17: routes[0].split.fallback: must be client_ip or random when hash_on is a "
            "header, got \"cookie\"");
  EXPECT_EQ(error_of(kSplit + "      fallback: none\n"),
            "t.yaml:16:17: routes[0].split.fallback: expected cookie, client_ip or random, got "
            "\"none\"");
  EXPECT_EQ(error_of(kSplit + "      salt: \"\"\n"),
            "t.yaml:16:13: routes[0].split.salt: expected a non-empty string, got \"\"");
  EXPECT_EQ(error_of(kSplit + "      overrides: [{header: x, value: v, to: beta}]\n"),
            "t.yaml:16:45: routes[0].split.overrides[0].to: expected stable or canary, got "
            "\"beta\"");
  EXPECT_EQ(error_of(kSplit + "      overrides: [{value: v, to: canary}]\n"),
            "t.yaml:16:19: routes[0].split.overrides[0]: expected exactly one of header or "
            "cookie, got neither");
  EXPECT_EQ(error_of(kSplit + "      overrides:\n"
                              "        - {header: X-Canary, value: on, to: canary}\n"
                              "        - {header: x-canary, value: on, to: stable}\n"),
            "t.yaml:18:11: routes[0].split.overrides[1]: duplicate override for header x-canary = "
            "\"on\" (first at line 17)");
}

TEST(ParseErrors, NumbersOutOfRange) {
  EXPECT_EQ(error_of(kValid + "workers: 0\n"),
            "t.yaml:12:10: workers: must be between 1 and 1024, got 0");
  EXPECT_EQ(error_of(kValid + "workers: 2000\n"),
            "t.yaml:12:10: workers: must be between 1 and 1024, got 2000");
  EXPECT_EQ(error_of(kValid + "workers: many\n"),
            "t.yaml:12:10: workers: expected auto or an integer between 1 and 1024, got \"many\"");
  EXPECT_EQ(error_of(kValid + "workers: 2.5\n"),
            "t.yaml:12:10: workers: expected auto or an integer between 1 and 1024, got 2.5");
  EXPECT_EQ(error_of(kValid + "limits: {max_request_header_bytes: 512}\n"),
            "t.yaml:12:36: limits.max_request_header_bytes: must be between 1024 and 1048576, got "
            "512");
  EXPECT_EQ(error_of(kValid + "limits: {max_request_line_bytes: 100}\n"),
            "t.yaml:12:34: limits.max_request_line_bytes: must be between 256 and 1048576, got "
            "100");
  EXPECT_EQ(error_of(kValid + "limits: {max_connections: 0}\n"),
            "t.yaml:12:27: limits.max_connections: must be between 1 and 4294967295, got 0");
  EXPECT_EQ(error_of(kValid + "limits: {max_idle_upstream_per_endpoint: -1}\n"),
            "t.yaml:12:42: limits.max_idle_upstream_per_endpoint: must be between 0 and 100000, "
            "got -1");
  EXPECT_EQ(error_of(kValid + "limits: {max_request_body_bytes: 18446744073709551616}\n"),
            "t.yaml:12:34: limits.max_request_body_bytes: is too large, got 18446744073709551616");
  EXPECT_EQ(error_of(kValid + "access_log: {path: /x, format: xml}\n"),
            "t.yaml:12:32: access_log.format: expected json or text, got \"xml\"");
  const std::string r = kRollout + "      steps: [100]\n";
  EXPECT_EQ(error_of(r + "      max_error_rate: 1.5\n"),
            "t.yaml:18:23: routes[0].rollout.max_error_rate: must be between 0 and 1, got 1.5");
  EXPECT_EQ(error_of(r + "      confidence: 0.4\n"),
            "t.yaml:18:19: routes[0].rollout.confidence: must be between 0.5 and 0.9999, got 0.4");
  EXPECT_EQ(error_of(r + "      confidence: .nan\n"),
            "t.yaml:18:19: routes[0].rollout.confidence: expected a number, got \".nan\"");
  EXPECT_EQ(error_of(r + "      failure_limit: 0\n"),
            "t.yaml:18:22: routes[0].rollout.failure_limit: must be between 1 and 4294967295, got "
            "0");
  EXPECT_EQ(error_of(r + "      min_requests: -5\n"),
            "t.yaml:18:21: routes[0].rollout.min_requests: must be at least 0, got -5");
}

TEST(ParseErrors, TlsBlocks) {
  EXPECT_EQ(error_of("listeners: [{name: l, address: 127.0.0.1:1}]\n"
                     "clusters: [{name: a, endpoints: [127.0.0.1:2], tls: {verify: no}}]\n"),
            "t.yaml:2:62: clusters[0].tls.verify: expected a boolean, got \"no\"");
  EXPECT_EQ(error_of("listeners: [{name: l, address: 127.0.0.1:1}]\n"
                     "clusters: [{name: a, endpoints: [127.0.0.1:2], tls: {sni: \"a b\"}}]\n"),
            "t.yaml:2:59: clusters[0].tls.sni: expected a host name, or \"\" for the endpoint's "
            "host, got \"a b\"");
  EXPECT_EQ(error_of("listeners: [{name: l, address: 127.0.0.1:1, tls: {cert_file: \"\", "
                     "key_file: k}}]\n"),
            "t.yaml:1:62: listeners[0].tls.cert_file: expected a non-empty string, got \"\"");
}

TEST(ParseErrors, SyntaxErrors) {
  EXPECT_EQ(error_of("listeners: [\n  {name: a\n"),
            "t.yaml:3:1: invalid YAML: end of map flow not found");
  EXPECT_EQ(error_of("a: 1\n b: 2\n"), "t.yaml:2:3: invalid YAML: illegal map value");
  EXPECT_EQ(error_of("routes:\n\t- name: x\n"), "t.yaml:2:2: invalid YAML: illegal block entry");
}

TEST(ParseErrors, Documents) {
  EXPECT_EQ(error_of(""),
            "t.yaml:1:1: expected a map with listeners, clusters and routes, got an empty file");
  EXPECT_EQ(error_of("# nothing here\n"),
            "t.yaml:1:1: expected a map with listeners, clusters and routes, got an empty file");
  EXPECT_EQ(error_of("~\n"), "t.yaml:1:1: expected a map, got null");
  EXPECT_EQ(error_of(kValid + "---\n" + kValid),
            "t.yaml:12:1: expected a single YAML document, got 2");  // the "---" line
}

TEST(ParseErrors, LongValuesAreCutInMessages) {
  EXPECT_EQ(error_of(kValid + "access_log: {path: /x, format: " + std::string(100, 'z') + "}\n"),
            "t.yaml:12:32: access_log.format: expected json or text, got \"" +
                std::string(60, 'z') + "...\"");
  EXPECT_EQ(error_of(kValid + "access_log: {path: /x, format: \"a\\\"b\\n\"}\n"),
            "t.yaml:12:32: access_log.format: expected json or text, got \"a\\\"b\\n\"");
}

TEST(LoadFile, MissingAndUnreadable) {
  const std::string missing = std::string(GP_TEST_DATA) + "/config/does-not-exist.yaml";
  try {
    load_file(missing);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), missing + ": cannot read: No such file or directory");
  }
  const std::string dir = std::string(GP_TEST_DATA) + "/config";
  try {
    load_file(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + ": cannot read: Is a directory");
  }
}

TEST(LoadFile, MessagesNameTheFile) {
  const std::string path = std::string(GP_TEST_DATA) + "/config/invalid_weight.yaml";
  try {
    load_file(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              path + ":18:15: routes[0].split.weight: must be between 0 and 100, got 140");
  }
}

}  // namespace
}  // namespace gp::config

TEST(ConfigReservedNames, RouteNamedNoneIsRejected) {
  const std::string yaml =
      "listeners: [{name: public, address: 127.0.0.1:8080}]\n"
      "clusters: [{name: a, endpoints: [127.0.0.1:9000]}]\n"
      "routes:\n"
      "  - name: none\n"
      "    stable: a\n";
  try {
    gp::config::parse(yaml, "t.yaml");
    FAIL() << "expected an error";
  } catch (const gp::config::Error& e) {
    EXPECT_STREQ(
        e.what(),
        "t.yaml:4:11: routes[0].name: \"none\" is reserved for requests that match no route");
  }
}

// yaml-cpp 0.7's LoadAll never returns on this input (yaml-cpp#1040); found by config_fuzz.
TEST(ParseErrors, FlowJunkDoesNotHang) {
  try {
    gp::config::parse(",]\n", "t.yaml");
    FAIL() << "expected an error";
  } catch (const gp::config::Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml:"), std::string::npos) << e.what();
  }
}
