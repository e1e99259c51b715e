#include "config/duration.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gp::config {
namespace {

using namespace std::chrono_literals;

std::optional<Duration> dur(std::string_view text) {
  std::string error;
  auto d = parse_duration(text, error);
  EXPECT_EQ(d.has_value(), error.empty()) << text;
  return d;
}

std::string error_of(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parse_duration(text, error).has_value()) << text;
  return error;
}

TEST(Duration, SingleUnits) {
  EXPECT_EQ(dur("250ms"), 250ms);
  EXPECT_EQ(dur("30s"), 30s);
  EXPECT_EQ(dur("5m"), 5min);
  EXPECT_EQ(dur("1h"), 1h);
  EXPECT_EQ(dur("7d"), 7 * 24h);
  EXPECT_EQ(dur("0s"), 0ms);
  EXPECT_EQ(dur("0ms"), 0ms);
  EXPECT_EQ(dur("007s"), 7s);
}

TEST(Duration, CombinedLargestUnitFirst) {
  EXPECT_EQ(dur("1h30m"), 90min);
  EXPECT_EQ(dur("1m30s500ms"), 90500ms);
  EXPECT_EQ(dur("1d2h3m4s5ms"), 24h + 2h + 3min + 4s + 5ms);
  EXPECT_EQ(dur("90s"), 90s);  // a unit need not be "normalised"
}

TEST(Duration, RejectsMalformed) {
  const std::string expected = "expected a duration like 250ms, 30s, 5m, 1h or 7d";
  EXPECT_EQ(error_of(""), expected);
  EXPECT_EQ(error_of("10"), expected + " (a unit is required)");
  EXPECT_EQ(error_of("1h30"), expected + " (a unit is required)");
  EXPECT_EQ(error_of("-1s"), expected);
  EXPECT_EQ(error_of("+1s"), expected);
  EXPECT_EQ(error_of("s"), expected);
  EXPECT_EQ(error_of("10 s"), expected);
  EXPECT_EQ(error_of(" 10s"), expected);
  EXPECT_EQ(error_of("10s "), expected);
  EXPECT_EQ(error_of("10S"), expected);
  EXPECT_EQ(error_of("10sec"), expected);
  EXPECT_EQ(error_of("10us"), expected);
  EXPECT_EQ(error_of("1w"), expected);
  EXPECT_EQ(error_of("1.5s"), expected + " (whole numbers only: write 1500ms, not 1.5s)");
  EXPECT_EQ(error_of("30m1h"), expected + " (combine units largest first, each once, like 1h30m)");
  EXPECT_EQ(error_of("1s1s"), expected + " (combine units largest first, each once, like 1h30m)");
}

TEST(Duration, Overflow) {
  // The limit is what fits in std::chrono::nanoseconds: 9223372036854 ms.
  EXPECT_EQ(dur("9223372036854ms"), Duration(9223372036854));
  EXPECT_EQ(dur("106751d"), 106751 * 24h);
  EXPECT_EQ(error_of("9223372036855ms"), "duration too large (at most 106751d)");
  EXPECT_EQ(error_of("106752d"), "duration too large (at most 106751d)");
  EXPECT_EQ(error_of("106751d23h59m59s999ms"), "duration too large (at most 106751d)");
  EXPECT_EQ(error_of("99999999999999999999999999s"), "duration too large (at most 106751d)");
  EXPECT_EQ(error_of("18446744073709551616ms"), "duration too large (at most 106751d)");
}

}  // namespace
}  // namespace gp::config
