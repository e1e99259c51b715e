#include "routing/route_table.hpp"

#include <gtest/gtest.h>

namespace gp::routing {
namespace {

namespace http = boost::beast::http;

config::Route route(std::string host, std::string prefix,
                    std::optional<config::HeaderMatch> header = std::nullopt) {
  config::Route r;
  r.name = host + prefix;
  r.match.host = std::move(host);
  r.match.path_prefix = std::move(prefix);
  r.match.header = std::move(header);
  r.stable = "v1";
  return r;
}

const http::fields kNoHeaders;

TEST(RouteTable, EmptyTableMatchesNothing) {
  RouteTable t({});
  EXPECT_EQ(t.match("example.com", "/", kNoHeaders), -1);
}

TEST(RouteTable, ExactHostBeatsWildcardWhateverTheOrder) {
  RouteTable t({route("*.example.com", "/"), route("shop.example.com", "/")});
  EXPECT_EQ(t.match("shop.example.com", "/", kNoHeaders), 1);
  EXPECT_EQ(t.match("blog.example.com", "/", kNoHeaders), 0);
}

TEST(RouteTable, WildcardMatchesSubdomainsOnly) {
  RouteTable t({route("*.example.com", "/")});
  EXPECT_EQ(t.match("a.example.com", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("a.b.example.com", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("example.com", "/", kNoHeaders), -1);
  EXPECT_EQ(t.match(".example.com", "/", kNoHeaders), -1);
  EXPECT_EQ(t.match("badexample.com", "/", kNoHeaders), -1);
  EXPECT_EQ(t.match("example.com.evil.org", "/", kNoHeaders), -1);
}

TEST(RouteTable, LongerWildcardSuffixWins) {
  RouteTable t({route("*.example.com", "/"), route("*.eu.example.com", "/")});
  EXPECT_EQ(t.match("shop.eu.example.com", "/", kNoHeaders), 1);
  EXPECT_EQ(t.match("shop.us.example.com", "/", kNoHeaders), 0);
}

TEST(RouteTable, AnyHost) {
  RouteTable t({route("", "/"), route("*", "/x")});
  EXPECT_EQ(t.match("whatever.org", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("10.0.0.1:8080", "/x/y", kNoHeaders), 1);
}

TEST(RouteTable, HostIsCaseInsensitiveAndPortIsIgnored) {
  RouteTable t({route("Shop.Example.com", "/"), route("*.Example.COM", "/")});
  EXPECT_EQ(t.match("shop.example.com", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("SHOP.EXAMPLE.COM:8443", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("shop.example.com.", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("Api.Example.Com:80", "/", kNoHeaders), 1);
}

TEST(RouteTable, Ipv6Hosts) {
  RouteTable t({route("[::1]", "/"), route("2001:db8::5", "/")});
  EXPECT_EQ(t.match("[::1]:8080", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("[::1]", "/", kNoHeaders), 0);
  EXPECT_EQ(t.match("[2001:DB8::5]:443", "/", kNoHeaders), 1);
  EXPECT_EQ(t.match("[::2]:8080", "/", kNoHeaders), -1);
}

TEST(RouteTable, LongestPrefixWins) {
  RouteTable t({route("", "/"), route("", "/api/v2"), route("", "/api")});
  EXPECT_EQ(t.match("h", "/api/v2/users", kNoHeaders), 1);
  EXPECT_EQ(t.match("h", "/api/v1/users", kNoHeaders), 2);
  EXPECT_EQ(t.match("h", "/apix", kNoHeaders), 2);  // plain prefix, like Envoy's `prefix`
  EXPECT_EQ(t.match("h", "/web", kNoHeaders), 0);
}

TEST(RouteTable, QueryAndFragmentAreNotPath) {
  RouteTable t({route("", "/"), route("", "/admin")});
  EXPECT_EQ(t.match("h", "/?next=/admin", kNoHeaders), 0);
  EXPECT_EQ(t.match("h", "/login?r=/admin#/admin", kNoHeaders), 0);
  EXPECT_EQ(t.match("h", "/admin?x=1", kNoHeaders), 1);
  EXPECT_EQ(t.match("h", "/admin", kNoHeaders), 1);
}

TEST(RouteTable, NoPrefixMatch) {
  RouteTable t({route("", "/api")});
  EXPECT_EQ(t.match("h", "/", kNoHeaders), -1);
  EXPECT_EQ(t.match("h", "", kNoHeaders), -1);
}

TEST(RouteTable, HeaderMatchBeatsNoHeaderAtEqualPrefix) {
  RouteTable t({route("", "/api"), route("", "/api", config::HeaderMatch{"x-beta", "1"})});
  http::fields h;
  EXPECT_EQ(t.match("h", "/api", h), 0);
  h.set("X-Beta", "1");
  EXPECT_EQ(t.match("h", "/api", h), 1);
  h.set("x-beta", "2");
  EXPECT_EQ(t.match("h", "/api", h), 0);
  h.set("x-beta", "  1 ");  // OWS is not part of the value
  EXPECT_EQ(t.match("h", "/api", h), 1);
}

TEST(RouteTable, LongerPrefixBeatsHeaderMatch) {
  RouteTable t({route("", "/api", config::HeaderMatch{"x-beta", "1"}), route("", "/api/v2")});
  http::fields h;
  h.set("x-beta", "1");
  EXPECT_EQ(t.match("h", "/api/v2/x", h), 1);
  EXPECT_EQ(t.match("h", "/api/v1/x", h), 0);
}

TEST(RouteTable, HeaderOnlyRouteWithoutFallback) {
  RouteTable t({route("", "/", config::HeaderMatch{"x-beta", "1"})});
  EXPECT_EQ(t.match("h", "/", kNoHeaders), -1);
}

TEST(RouteTable, TiesGoToConfigOrder) {
  RouteTable t({route("a.com", "/"), route("a.com", "/"), route("A.COM", "/")});
  EXPECT_EQ(t.match("a.com", "/", kNoHeaders), 0);
}

TEST(RouteTable, MoreSpecificHostFallsThroughWhenPathMisses) {
  RouteTable t(
      {route("", "/"), route("*.example.com", "/static"), route("shop.example.com", "/api")});
  EXPECT_EQ(t.match("shop.example.com", "/api/cart", kNoHeaders), 2);
  EXPECT_EQ(t.match("shop.example.com", "/static/app.js", kNoHeaders), 1);
  EXPECT_EQ(t.match("shop.example.com", "/", kNoHeaders), 0);
  // Host class first: an exact host with a short prefix beats a wildcard with a long one.
  RouteTable u({route("*.example.com", "/api/v2"), route("shop.example.com", "/")});
  EXPECT_EQ(u.match("shop.example.com", "/api/v2", kNoHeaders), 1);
}

TEST(NormalizeHost, Forms) {
  EXPECT_EQ(normalize_host("example.com"), "example.com");
  EXPECT_EQ(normalize_host("example.com:8080"), "example.com");
  EXPECT_EQ(normalize_host(" Example.com. "), "Example.com");
  EXPECT_EQ(normalize_host("[::1]:80"), "::1");
  EXPECT_EQ(normalize_host("[fe80::1]"), "fe80::1");
  EXPECT_EQ(normalize_host("::1"), "::1");
  EXPECT_EQ(normalize_host("[::1"), "[::1");
  EXPECT_EQ(normalize_host(""), "");
}

}  // namespace
}  // namespace gp::routing
