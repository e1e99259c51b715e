#include "config/percent.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gp::config {
namespace {

std::uint32_t bp(std::string_view text) {
  std::string error;
  auto p = parse_percent_bp(text, error);
  EXPECT_TRUE(p.has_value()) << text << ": " << error;
  return p.value_or(99999);
}

std::string error_of(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parse_percent_bp(text, error).has_value()) << text;
  return error;
}

TEST(Percent, ExactBasisPoints) {
  EXPECT_EQ(bp("0"), 0u);
  EXPECT_EQ(bp("10"), 1000u);
  EXPECT_EQ(bp("12.5"), 1250u);
  EXPECT_EQ(bp("12.34"), 1234u);
  EXPECT_EQ(bp("0.01"), 1u);
  EXPECT_EQ(bp("0.1"), 10u);
  EXPECT_EQ(bp("99.99"), 9999u);
  EXPECT_EQ(bp("100"), 10000u);
  EXPECT_EQ(bp("100.00"), 10000u);
  EXPECT_EQ(bp("0.29"), 29u);  // 0.29 * 100 is 28.999999999999996 as a double
}

TEST(Percent, TrailingZerosAreNotPrecision) {
  EXPECT_EQ(bp("12.500"), 1250u);
  EXPECT_EQ(bp("007"), 700u);
  EXPECT_EQ(bp("-0"), 0u);
}

TEST(Percent, Rejects) {
  const std::string range = "must be between 0 and 100";
  const std::string format = "expected a percentage between 0 and 100 like 10 or 12.5";
  EXPECT_EQ(error_of("140"), range);
  EXPECT_EQ(error_of("100.01"), range);
  EXPECT_EQ(error_of("100.001"), range);
  EXPECT_EQ(error_of("-1"), range);
  EXPECT_EQ(error_of("-0.01"), range);
  EXPECT_EQ(error_of("99999999999999999999999"), range);
  EXPECT_EQ(error_of("1.234"), "must have at most two decimals");
  EXPECT_EQ(error_of("1.005"), "must have at most two decimals");
  EXPECT_EQ(error_of("0.001"), "must have at most two decimals");
  EXPECT_EQ(error_of("abc"), format);
  EXPECT_EQ(error_of(""), format);
  EXPECT_EQ(error_of(".5"), format);
  EXPECT_EQ(error_of("5."), format);
  EXPECT_EQ(error_of("1e2"), format);
  EXPECT_EQ(error_of("+5"), format);
  EXPECT_EQ(error_of("10%"), format);
  EXPECT_EQ(error_of(" 10"), format);
  EXPECT_EQ(error_of("1,5"), format);
}

TEST(Percent, Format) {
  EXPECT_EQ(format_percent_bp(0), "0");
  EXPECT_EQ(format_percent_bp(1), "0.01");
  EXPECT_EQ(format_percent_bp(10), "0.1");
  EXPECT_EQ(format_percent_bp(1000), "10");
  EXPECT_EQ(format_percent_bp(1250), "12.5");
  EXPECT_EQ(format_percent_bp(1234), "12.34");
  EXPECT_EQ(format_percent_bp(10000), "100");
  for (std::uint32_t v = 0; v <= 10000; ++v) {
    std::string error;
    EXPECT_EQ(parse_percent_bp(format_percent_bp(v), error), v);
  }
}

}  // namespace
}  // namespace gp::config
