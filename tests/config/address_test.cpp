#include "config/address.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gp::config {
namespace {

Address addr(std::string_view text) {
  std::string error;
  auto a = parse_address(text, error);
  EXPECT_TRUE(a.has_value()) << text << ": " << error;
  return a.value_or(Address{});
}

std::string error_of(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parse_address(text, error).has_value()) << text;
  return error;
}

TEST(Address, Ipv4) {
  EXPECT_EQ(addr("127.0.0.1:80"), (Address{"127.0.0.1", 80}));
  EXPECT_EQ(addr("0.0.0.0:8080"), (Address{"0.0.0.0", 8080}));
  EXPECT_EQ(addr("255.255.255.255:65535"), (Address{"255.255.255.255", 65535}));
  EXPECT_EQ(addr("10.0.0.1:1").str(), "10.0.0.1:1");
}

TEST(Address, HostNames) {
  EXPECT_EQ(addr("localhost:80"), (Address{"localhost", 80}));
  EXPECT_EQ(addr("Backend-1.Example.COM:443"), (Address{"backend-1.example.com", 443}));
  EXPECT_EQ(addr("my_service.internal:9000").host, "my_service.internal");
  EXPECT_EQ(addr("1a.example:8").host, "1a.example");
}

TEST(Address, Ipv6InBrackets) {
  EXPECT_EQ(addr("[::1]:8080"), (Address{"::1", 8080}));
  EXPECT_EQ(addr("[::]:80"), (Address{"::", 80}));
  EXPECT_EQ(addr("[::1]:8080").str(), "[::1]:8080");
  // Stored canonical, so equal addresses compare equal.
  EXPECT_EQ(addr("[2001:DB8:0:0::1]:443"), (Address{"2001:db8::1", 443}));
  EXPECT_EQ(addr("[0:0:0:0:0:0:0:1]:1"), addr("[::1]:1"));
  EXPECT_EQ(addr("[::ffff:10.0.0.1]:80").host, "::ffff:10.0.0.1");
}

TEST(Address, RejectsMissingOrBadPort) {
  const std::string port = "expected host:port with a port between 1 and 65535";
  EXPECT_EQ(error_of("localhost"), "expected host:port (the port is missing)");
  EXPECT_EQ(error_of("127.0.0.1"), "expected host:port (the port is missing)");
  EXPECT_EQ(error_of(""), "expected host:port (the port is missing)");
  EXPECT_EQ(error_of("[::1]"), "expected host:port (the port is missing), like [::1]:8080");
  EXPECT_EQ(error_of("[::1]8080"), "expected host:port (the port is missing), like [::1]:8080");
  EXPECT_EQ(error_of("localhost:"), port);
  EXPECT_EQ(error_of("localhost:0"), port);
  EXPECT_EQ(error_of("localhost:65536"), port);
  EXPECT_EQ(error_of("localhost:123456"), port);
  EXPECT_EQ(error_of("localhost:-1"), port);
  EXPECT_EQ(error_of("localhost:+80"), port);
  EXPECT_EQ(error_of("localhost:http"), port);
  EXPECT_EQ(error_of("localhost:80 "), port);
  EXPECT_EQ(error_of("[::1]:0"), port);
}

TEST(Address, RejectsBadHost) {
  EXPECT_EQ(error_of(":80"),
            "expected host:port (the host is missing; use 0.0.0.0 for all interfaces)");
  const std::string v4 = "expected host:port with a valid IPv4 address";
  EXPECT_EQ(error_of("256.0.0.1:80"), v4);
  EXPECT_EQ(error_of("1.2.3:80"), v4);
  EXPECT_EQ(error_of("01.2.3.4:80"), v4);
  const std::string name = "expected host:port with a valid host name or IP address";
  EXPECT_EQ(error_of("-bad.example:80"), name);
  EXPECT_EQ(error_of("bad..example:80"), name);
  EXPECT_EQ(error_of("bad example:80"), name);
  EXPECT_EQ(error_of(std::string(64, 'a') + ":80"), name);
}

TEST(Address, RejectsScheme) {
  const std::string scheme = "expected host:port without a scheme (no http:// or https://)";
  EXPECT_EQ(error_of("http://x:80"), scheme);
  EXPECT_EQ(error_of("https://[::1]:80"), scheme);
  EXPECT_EQ(error_of("http://x"), scheme);
}

TEST(Address, RejectsBadIpv6) {
  const std::string v6 = "expected an IPv6 address in brackets, like [::1]:8080";
  EXPECT_EQ(error_of("::1:8080"), v6);  // ambiguous without brackets
  EXPECT_EQ(error_of("[]:80"), v6);
  EXPECT_EQ(error_of("[::g]:80"), v6);
  EXPECT_EQ(error_of("[1:2:3:4:5:6:7:8:9]:80"), v6);
  EXPECT_EQ(error_of("[fe80::1%eth0]:80"), v6);
  EXPECT_EQ(error_of("[localhost]:80"), v6);
  EXPECT_EQ(error_of("[::1:80"),
            "expected an IPv6 address in brackets and a port, like [::1]:8080");
}

TEST(Address, HostNameCheck) {
  EXPECT_TRUE(is_host_name("a"));
  EXPECT_TRUE(is_host_name("shop.example.com"));
  EXPECT_TRUE(is_host_name(std::string(63, 'a') + ".com"));
  EXPECT_FALSE(is_host_name(""));
  EXPECT_FALSE(is_host_name("example.com."));
  EXPECT_FALSE(is_host_name("a-.example"));
  EXPECT_FALSE(is_host_name("*.example.com"));
}

}  // namespace
}  // namespace gp::config
