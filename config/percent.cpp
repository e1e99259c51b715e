#include "config/percent.hpp"

namespace gp::config {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

constexpr const char* kRange = "must be between 0 and 100";

}  // namespace

std::optional<std::uint32_t> parse_percent_bp(std::string_view text, std::string& error) {
  std::size_t i = 0;
  bool negative = false;
  if (i < text.size() && text[i] == '-') {
    negative = true;
    ++i;
  }
  std::uint64_t whole = 0;
  std::size_t int_digits = 0;
  for (; i < text.size() && is_digit(text[i]); ++i, ++int_digits)
    if (whole <= 100) whole = whole * 10 + static_cast<std::uint64_t>(text[i] - '0');
  std::uint32_t frac = 0;  // hundredths
  std::size_t frac_digits = 0;
  bool extra_precision = false;  // a non-zero digit past the second decimal
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && is_digit(text[i]); ++i, ++frac_digits) {
      if (frac_digits < 2)
        frac = frac * 10 + static_cast<std::uint32_t>(text[i] - '0');
      else if (text[i] != '0')
        extra_precision = true;
    }
    if (frac_digits == 0) int_digits = 0;  // "5." is not a number we accept
  }
  if (int_digits == 0 || i != text.size()) {
    error = "expected a percentage between 0 and 100 like 10 or 12.5";
    return std::nullopt;
  }
  if (frac_digits == 1) frac *= 10;
  if (negative && (whole != 0 || frac != 0 || extra_precision)) {
    error = kRange;
    return std::nullopt;
  }
  if (whole > 100 || (whole == 100 && (frac != 0 || extra_precision))) {
    error = kRange;
    return std::nullopt;
  }
  if (extra_precision) {
    error = "must have at most two decimals";
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(whole * 100 + frac);
}

std::string format_percent_bp(std::uint32_t bp) {
  std::string out = std::to_string(bp / 100);
  const std::uint32_t frac = bp % 100;
  if (frac != 0) {
    out += '.';
    out += static_cast<char>('0' + frac / 10);
    if (frac % 10 != 0) out += static_cast<char>('0' + frac % 10);
  }
  return out;
}

}  // namespace gp::config
