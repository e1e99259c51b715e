#include "routing/split.hpp"

#include <set>

#include <gtest/gtest.h>

#include "routing/cohort.hpp"

namespace gp::routing {
namespace {

namespace http = boost::beast::http;
using config::Fallback;
using config::KeySource;
using config::Version;

config::Split header_split(std::uint32_t weight_bp = 1000) {
  config::Split s;
  s.weight_bp = weight_bp;
  s.hash_on = {KeySource::header, "x-user-id"};
  s.fallback = Fallback::client_ip;
  return s;
}

config::Split cookie_split() {
  config::Split s;
  s.hash_on = {KeySource::cookie, "uid"};
  s.fallback = Fallback::cookie;
  return s;
}

Version expected_version(std::string_view key, std::string_view salt, std::uint32_t w) {
  return is_canary(bucket(key, salt_seed(salt)), w) ? Version::canary : Version::stable;
}

struct SplitTest : ::testing::Test {
  Decision decide(const Splitter& s, std::uint32_t w, std::string_view ip = "10.0.0.1") {
    return s.decide(SplitInput{headers, ip}, w, new_cookie_id, rng);
  }
  http::fields headers;
  std::string new_cookie_id;
  RandomSource rng{42};
};

TEST_F(SplitTest, HeaderKeyHashesWithRouteNameAsSalt) {
  Splitter s(header_split(), "shop");
  headers.set("x-user-id", "alice");
  auto d = decide(s, 5000);
  EXPECT_EQ(d.origin, KeyOrigin::header);
  EXPECT_EQ(d.bucket, bucket("alice", salt_seed("shop")));
  EXPECT_EQ(d.version, expected_version("alice", "shop", 5000));
  EXPECT_TRUE(new_cookie_id.empty());
}

TEST_F(SplitTest, ExplicitSaltWins) {
  auto cfg = header_split();
  cfg.salt = "2024-q3";
  Splitter s(cfg, "shop");
  headers.set("x-user-id", "alice");
  EXPECT_EQ(decide(s, 5000).bucket, bucket("alice", salt_seed("2024-q3")));
  EXPECT_EQ(s.seed(), salt_seed("2024-q3"));
}

TEST_F(SplitTest, HeaderKeyIsTrimmedAndNameCaseInsensitive) {
  auto cfg = header_split();
  cfg.hash_on.name = "X-User-ID";  // the parser lower-cases; the splitter does not rely on it
  Splitter s(cfg, "shop");
  headers.set("X-USER-ID", " \talice \t");
  auto d = decide(s, 5000);
  EXPECT_EQ(d.origin, KeyOrigin::header);
  EXPECT_EQ(d.bucket, bucket("alice", salt_seed("shop")));
}

TEST_F(SplitTest, FirstHeaderValueIsTheKey) {
  Splitter s(header_split(), "shop");
  headers.insert("x-user-id", "alice");
  headers.insert("x-user-id", "bob");
  EXPECT_EQ(decide(s, 5000).bucket, bucket("alice", salt_seed("shop")));
}

TEST_F(SplitTest, EmptyHeaderCountsAsAbsent) {
  Splitter s(header_split(), "shop");
  headers.set("x-user-id", "   ");
  auto d = decide(s, 5000, "192.0.2.7");
  EXPECT_EQ(d.origin, KeyOrigin::client_ip);
  EXPECT_EQ(d.bucket, bucket("192.0.2.7", salt_seed("shop")));
}

TEST_F(SplitTest, WeightZeroNeverCanaryWeightFullAlwaysCanary) {
  Splitter s(header_split(), "shop");
  for (int i = 0; i < 2000; ++i) {
    headers.set("x-user-id", "user-" + std::to_string(i));
    EXPECT_EQ(decide(s, 0).version, Version::stable);
    EXPECT_EQ(decide(s, 10000).version, Version::canary);
  }
}

TEST_F(SplitTest, OverridesComeFirstInConfigOrder) {
  auto cfg = header_split();
  cfg.overrides = {{KeySource::header, "x-canary", "always", Version::canary},
                   {KeySource::header, "x-canary", "never", Version::stable},
                   {KeySource::cookie, "force", "stable", Version::stable},
                   {KeySource::cookie, "force", "canary", Version::canary}};
  Splitter s(cfg, "shop");
  headers.set("x-user-id", "alice");

  headers.set("x-canary", "always");
  auto d = decide(s, 0);
  EXPECT_EQ(d.version, Version::canary);
  EXPECT_EQ(d.origin, KeyOrigin::override_rule);
  EXPECT_EQ(d.bucket, kBuckets);

  headers.set("x-canary", " never ");  // trimmed
  EXPECT_EQ(decide(s, 10000).version, Version::stable);
  EXPECT_EQ(decide(s, 10000).origin, KeyOrigin::override_rule);

  headers.set("x-canary", "Always");  // exact match only: falls through to the key
  EXPECT_EQ(decide(s, 10000).origin, KeyOrigin::header);

  // The header override is listed first, so it beats a matching cookie override.
  headers.set("x-canary", "always");
  headers.set(http::field::cookie, "force=stable");
  EXPECT_EQ(decide(s, 0).version, Version::canary);

  headers.erase("x-canary");
  EXPECT_EQ(decide(s, 10000).version, Version::stable);
  headers.set(http::field::cookie, "a=1; force=\"canary\"");
  EXPECT_EQ(decide(s, 0).version, Version::canary);
  EXPECT_EQ(decide(s, 0).origin, KeyOrigin::override_rule);
}

TEST_F(SplitTest, FirstValueOfOverrideHeaderOnly) {
  auto cfg = header_split();
  cfg.overrides = {{KeySource::header, "x-canary", "always", Version::canary}};
  Splitter s(cfg, "shop");
  headers.insert("x-canary", "nope");
  headers.insert("x-canary", "always");
  EXPECT_NE(decide(s, 0).origin, KeyOrigin::override_rule);
}

TEST_F(SplitTest, CookieKeyAmongOthers) {
  Splitter s(cookie_split(), "shop");
  headers.set(http::field::cookie, "_ga=GA1.2.3; theme=dark; uid=u-123; lang=en; sid=xyz");
  auto d = decide(s, 5000);
  EXPECT_EQ(d.origin, KeyOrigin::cookie);
  EXPECT_EQ(d.bucket, bucket("u-123", salt_seed("shop")));
  EXPECT_TRUE(new_cookie_id.empty());
}

TEST_F(SplitTest, FallbackCookieIssuesFreshIdAndUsesIt) {
  Splitter s(cookie_split(), "shop");
  headers.set(http::field::cookie, "theme=dark; uid=");  // empty counts as absent
  auto d = decide(s, 5000);
  EXPECT_EQ(d.origin, KeyOrigin::fallback_cookie);
  ASSERT_EQ(new_cookie_id.size(), 32u);
  EXPECT_EQ(new_cookie_id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(d.bucket, bucket(new_cookie_id, salt_seed("shop")));

  // The next request carries the cookie: same cohort, no new cookie.
  const std::string id = new_cookie_id;
  const Decision first = d;
  headers.set(http::field::cookie, "theme=dark; uid=" + id);
  d = decide(s, 5000);
  EXPECT_EQ(d.origin, KeyOrigin::cookie);
  EXPECT_EQ(d.bucket, first.bucket);
  EXPECT_EQ(d.version, first.version);
  EXPECT_TRUE(new_cookie_id.empty());
}

TEST_F(SplitTest, FallbackCookieIdsAreDistinct) {
  Splitter s(cookie_split(), "shop");
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    (void)decide(s, 5000);
    ids.insert(new_cookie_id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST_F(SplitTest, HeaderKeyWithCookieFallbackStaysSticky) {
  auto cfg = header_split();
  cfg.fallback = Fallback::cookie;
  Splitter s(cfg, "shop");
  auto d = decide(s, 5000);
  EXPECT_EQ(d.origin, KeyOrigin::fallback_cookie);
  EXPECT_EQ(s.cookie_name(), "x-user-id");
  headers.set(http::field::cookie, "x-user-id=" + new_cookie_id);
  auto again = decide(s, 5000);
  EXPECT_EQ(again.origin, KeyOrigin::cookie);
  EXPECT_EQ(again.bucket, d.bucket);
  // A header still beats the cookie.
  headers.set("x-user-id", "alice");
  EXPECT_EQ(decide(s, 5000).origin, KeyOrigin::header);
}

TEST_F(SplitTest, ClientIpFallback) {
  Splitter s(header_split(), "shop");
  headers.set("x-forwarded-for", "203.0.113.9");  // not trusted: ignored
  auto d = decide(s, 5000, "198.51.100.4");
  EXPECT_EQ(d.origin, KeyOrigin::client_ip);
  EXPECT_EQ(d.bucket, bucket("198.51.100.4", salt_seed("shop")));
}

TEST_F(SplitTest, TrustedForwardedForUsesLastEntryOfLastField) {
  auto cfg = header_split();
  cfg.trust_forwarded_for = true;
  Splitter s(cfg, "shop");
  headers.insert("x-forwarded-for", "1.1.1.1, 2.2.2.2");
  headers.insert("X-Forwarded-For", "3.3.3.3 ,\t4.4.4.4 ");
  auto d = decide(s, 5000, "10.0.0.1");
  EXPECT_EQ(d.origin, KeyOrigin::forwarded_for);
  EXPECT_EQ(d.bucket, bucket("4.4.4.4", salt_seed("shop")));

  headers.erase("x-forwarded-for");
  headers.set("x-forwarded-for", "5.5.5.5");
  EXPECT_EQ(decide(s, 5000).bucket, bucket("5.5.5.5", salt_seed("shop")));

  // A trailing empty entry is no address: the peer address is used.
  headers.set("x-forwarded-for", "5.5.5.5, ");
  d = decide(s, 5000, "10.0.0.1");
  EXPECT_EQ(d.origin, KeyOrigin::client_ip);
  EXPECT_EQ(d.bucket, bucket("10.0.0.1", salt_seed("shop")));

  headers.erase("x-forwarded-for");
  EXPECT_EQ(decide(s, 5000, "10.0.0.1").origin, KeyOrigin::client_ip);
}

TEST_F(SplitTest, NoClientAddressFallsBackToRandom) {
  Splitter s(header_split(), "shop");
  EXPECT_EQ(decide(s, 5000, "").origin, KeyOrigin::random);
}

TEST_F(SplitTest, RandomFallback) {
  auto cfg = header_split();
  cfg.fallback = Fallback::random;
  Splitter s(cfg, "shop");
  int canary = 0;
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i) {
    auto d = decide(s, 2500);
    ASSERT_EQ(d.origin, KeyOrigin::random);
    ASSERT_LT(d.bucket, kBuckets);
    ASSERT_EQ(d.version == Version::canary, d.bucket < 2500);
    canary += d.version == Version::canary;
  }
  EXPECT_NEAR(100.0 * canary / kDraws, 25.0, 1.0);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(decide(s, 0).version, Version::stable);
    EXPECT_EQ(decide(s, 10000).version, Version::canary);
  }
  // A header key still wins over the random fallback.
  headers.set("x-user-id", "alice");
  EXPECT_EQ(decide(s, 2500).origin, KeyOrigin::header);
}

TEST_F(SplitTest, NewCookieIdIsClearedOnEntry) {
  Splitter s(header_split(), "shop");
  new_cookie_id = "stale";
  (void)decide(s, 5000);
  EXPECT_TRUE(new_cookie_id.empty());
}

TEST(Splitter, SetCookieValue) {
  Splitter s(cookie_split(), "shop");
  EXPECT_EQ(s.set_cookie_value("0123456789abcdef0123456789abcdef"),
            "uid=0123456789abcdef0123456789abcdef; Path=/; Max-Age=2592000; HttpOnly; "
            "SameSite=Lax");
  auto cfg = cookie_split();
  cfg.hash_on.name = "gp_cohort";
  cfg.cookie_ttl = std::chrono::seconds(90);
  EXPECT_EQ(Splitter(cfg, "shop").set_cookie_value("abc"),
            "gp_cohort=abc; Path=/; Max-Age=90; HttpOnly; SameSite=Lax");
}

TEST(Splitter, KeyOriginNames) {
  EXPECT_STREQ(to_string(KeyOrigin::override_rule), "override");
  EXPECT_STREQ(to_string(KeyOrigin::forwarded_for), "forwarded_for");
  EXPECT_STREQ(to_string(KeyOrigin::fallback_cookie), "fallback_cookie");
}

TEST(RandomSource, SeededIsDeterministicDefaultIsNot) {
  RandomSource a(7), b(7), c, d;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(c.next(), d.next());
}

}  // namespace
}  // namespace gp::routing
