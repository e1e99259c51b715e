#include "routing/cookie.hpp"

#include <gtest/gtest.h>

namespace gp::routing {
namespace {

namespace http = boost::beast::http;

TEST(Cookie, FindsNamedCookie) {
  EXPECT_EQ(find_cookie("a=1; b=2; c=3", "a"), "1");
  EXPECT_EQ(find_cookie("a=1; b=2; c=3", "b"), "2");
  EXPECT_EQ(find_cookie("a=1; b=2; c=3", "c"), "3");
  EXPECT_EQ(find_cookie("uid=42", "uid"), "42");
}

TEST(Cookie, AbsentCookie) {
  EXPECT_EQ(find_cookie("a=1; b=2", "c"), std::nullopt);
  EXPECT_EQ(find_cookie("", "a"), std::nullopt);
  EXPECT_EQ(find_cookie(";;;", "a"), std::nullopt);
  EXPECT_EQ(find_cookie("a=1", ""), std::nullopt);
}

TEST(Cookie, StripsDoubleQuotes) {
  EXPECT_EQ(find_cookie("a=1; b=\"x y\"; c=3", "b"), "x y");
  EXPECT_EQ(find_cookie("b=\"\"", "b"), "");
  // A lone quote is not a quoted value: kept as is.
  EXPECT_EQ(find_cookie("b=\"", "b"), "\"");
  EXPECT_EQ(find_cookie("b=\"abc", "b"), "\"abc");
  // Only one pair of quotes is removed.
  EXPECT_EQ(find_cookie("b=\"\"x\"\"", "b"), "\"x\"");
}

TEST(Cookie, ToleratesMissingOrExtraWhitespace) {
  EXPECT_EQ(find_cookie("a=1;b=2;c=3", "b"), "2");
  EXPECT_EQ(find_cookie("a=1;  b=2 ;\tc=3", "b"), "2");
  EXPECT_EQ(find_cookie("  a = 1 ", "a"), "1");
  EXPECT_EQ(find_cookie("a=1;", "a"), "1");
}

TEST(Cookie, FirstOccurrenceWins) {
  EXPECT_EQ(find_cookie("a=1; a=2", "a"), "1");
  EXPECT_EQ(find_cookie("x=0; a=; a=2", "a"), "");  // present but empty still wins
}

TEST(Cookie, NamesMatchWholeAndCaseSensitively) {
  EXPECT_EQ(find_cookie("ab=1; b=2", "b"), "2");
  EXPECT_EQ(find_cookie("xb=1", "b"), std::nullopt);
  EXPECT_EQ(find_cookie("b=1", "ab"), std::nullopt);
  EXPECT_EQ(find_cookie("UID=1; uid=2", "uid"), "2");
  EXPECT_EQ(find_cookie("a=1", "a="), std::nullopt);
}

TEST(Cookie, PairsWithoutEqualsAreSkipped) {
  EXPECT_EQ(find_cookie("flag; a=1", "a"), "1");
  EXPECT_EQ(find_cookie("a; a=1", "a"), "1");
  EXPECT_EQ(find_cookie("a", "a"), std::nullopt);
}

TEST(Cookie, ValueMayContainEquals) {
  EXPECT_EQ(find_cookie("t=x=y==; u=1", "t"), "x=y==");
}

TEST(Cookie, ReturnsViewIntoHeader) {
  const std::string header = "a=1; uid=\"abc\"";
  auto v = find_cookie(header, "uid");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->data(), header.data() + 10);
  EXPECT_EQ(*v, "abc");
}

TEST(Cookie, SearchesEveryCookieField) {
  http::fields h;
  h.insert(http::field::cookie, "a=1; b=2");
  h.insert(http::field::user_agent, "test");
  h.insert(http::field::cookie, "c=3; a=9");
  EXPECT_EQ(find_cookie(h, "b"), "2");
  EXPECT_EQ(find_cookie(h, "c"), "3");
  EXPECT_EQ(find_cookie(h, "a"), "1");  // first field first
  EXPECT_EQ(find_cookie(h, "d"), std::nullopt);
}

TEST(Cookie, NoCookieField) {
  http::fields h;
  h.insert(http::field::host, "example.com");
  EXPECT_EQ(find_cookie(h, "a"), std::nullopt);
}

TEST(Cookie, CookieFieldNameIsCaseInsensitive) {
  http::fields h;
  h.insert("COOKIE", "uid=7");
  EXPECT_EQ(find_cookie(h, "uid"), "7");
}

}  // namespace
}  // namespace gp::routing
