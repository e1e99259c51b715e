// The fleet: section (README "Fleet mode"): defaults, every key, and the errors.
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "tests/config/parse_error.hpp"

namespace gp::config {
namespace {

using namespace std::chrono_literals;

// Lines 1-4; fleet keys go from line 5.
const std::string kBase =
    "listeners: [{name: l, address: 127.0.0.1:8080}]\n"
    "clusters: [{name: a, endpoints: [127.0.0.1:9001]}]\n"
    "routes: [{name: r, stable: a}]\n"
    "fleet:\n";

std::string error_of(const std::string& fleet) {
  return parse_error(kBase + fleet);
}

TEST(FleetConfig, AbsentMeansSingleInstance) {
  auto cfg = parse(
      "listeners: [{name: l, address: 127.0.0.1:8080}]\n"
      "clusters: [{name: a, endpoints: [127.0.0.1:9001]}]\n"
      "routes: [{name: r, stable: a}]\n",
      "t.yaml");
  EXPECT_FALSE(cfg.fleet);
}

TEST(FleetConfig, Defaults) {
  auto cfg =
      parse(kBase + "  etcd: {endpoints: [127.0.0.1:2379], prefix: /grayproxy/shop}\n", "t.yaml");
  ASSERT_TRUE(cfg.fleet);
  EXPECT_EQ(cfg.fleet->instance, "");
  ASSERT_EQ(cfg.fleet->etcd.endpoints.size(), 1u);
  EXPECT_EQ(cfg.fleet->etcd.endpoints[0].str(), "127.0.0.1:2379");
  EXPECT_EQ(cfg.fleet->etcd.prefix, "/grayproxy/shop");
  EXPECT_EQ(cfg.fleet->etcd.lease_ttl, 10s);
  EXPECT_FALSE(cfg.fleet->etcd.tls);
}

TEST(FleetConfig, EveryKey) {
  auto cfg = parse(kBase +
                       "  instance: edge-1\n"
                       "  etcd:\n"
                       "    endpoints: [10.0.0.1:2379, \"etcd.internal:2379\"]\n"
                       "    prefix: /gp/shop\n"
                       "    lease_ttl: 3s\n"
                       "    tls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem}\n",
                   "t.yaml");
  ASSERT_TRUE(cfg.fleet);
  EXPECT_EQ(cfg.fleet->instance, "edge-1");
  ASSERT_EQ(cfg.fleet->etcd.endpoints.size(), 2u);
  EXPECT_EQ(cfg.fleet->etcd.endpoints[1].host, "etcd.internal");
  EXPECT_EQ(cfg.fleet->etcd.lease_ttl, 3s);
  ASSERT_TRUE(cfg.fleet->etcd.tls);
  EXPECT_EQ(cfg.fleet->etcd.tls->ca_file, "ca.pem");
  EXPECT_EQ(cfg.fleet->etcd.tls->cert_file, "c.pem");
  EXPECT_EQ(cfg.fleet->etcd.tls->key_file, "k.pem");
}

TEST(FleetConfig, Errors) {
  EXPECT_EQ(error_of("  etcd: {prefix: /gp}\n"),
            "t.yaml:5:9: fleet.etcd.endpoints: required key is missing");
  EXPECT_EQ(error_of("  etcd: {endpoints: [], prefix: /gp}\n"),
            "t.yaml:5:21: fleet.etcd.endpoints: expected at least one etcd endpoint, got an "
            "empty sequence");
  EXPECT_EQ(error_of("  etcd: {endpoints: [127.0.0.1:2379], prefix: gp/}\n"),
            "t.yaml:5:47: fleet.etcd.prefix: expected a key prefix like /grayproxy/NAME "
            "(leading '/', none at the end), got \"gp/\"");
  EXPECT_EQ(error_of("  etcd: {endpoints: [127.0.0.1:2379], prefix: /gp, lease_ttl: 1500ms}\n"),
            "t.yaml:5:63: fleet.etcd.lease_ttl: expected whole seconds, at least 2s, got "
            "\"1500ms\"");
  EXPECT_EQ(error_of("  etcd: {endpoints: [127.0.0.1:2379], prefix: /gp, tls: {cert_file: c}}\n"),
            "t.yaml:5:69: fleet.etcd.tls.cert_file: needs key_file as well (client "
            "certificate), got \"c\"");
  EXPECT_EQ(error_of("  instance: \"a b\"\n  etcd: {endpoints: [127.0.0.1:2379], prefix: /gp}\n"),
            "t.yaml:5:13: fleet.instance: expected an instance name without spaces, control "
            "characters or '/', got \"a b\"");
  EXPECT_EQ(error_of("  etcd: {endpoints: [127.0.0.1:2379], prefix: /gp, ttl: 3s}\n"),
            "t.yaml:5:52: fleet.etcd.ttl: unknown key (expected one of: endpoints, prefix, "
            "lease_ttl, tls)");
}

}  // namespace
}  // namespace gp::config
