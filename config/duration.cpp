#include "config/duration.hpp"

#include <array>
#include <cstdint>

namespace gp::config {

namespace {

struct Unit {
  std::string_view suffix;
  std::int64_t ms;
};

// Longest suffix first where one is a prefix of another ("ms" before "m").
// Order in the array is also the required order in the text (largest unit first).
constexpr std::array<Unit, 5> kUnits{{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

constexpr std::int64_t kMaxMs =
    std::chrono::duration_cast<Duration>(std::chrono::nanoseconds::max()).count();

constexpr const char* kExpected = "expected a duration like 250ms, 30s, 5m, 1h or 7d";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text, std::string& error) {
  std::int64_t total = 0;
  std::size_t next_unit = 0;  // units must appear in kUnits order, each at most once
  std::size_t i = 0;
  if (text.empty()) {
    error = kExpected;
    return std::nullopt;
  }
  while (i < text.size()) {
    if (!is_digit(text[i])) {
      error = kExpected;
      return std::nullopt;
    }
    std::int64_t value = 0;
    bool too_large = false;
    for (; i < text.size() && is_digit(text[i]); ++i) {
      if (value > (kMaxMs - (text[i] - '0')) / 10) too_large = true;
      if (!too_large) value = value * 10 + (text[i] - '0');
    }
    if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
      error = std::string(kExpected) + " (whole numbers only: write 1500ms, not 1.5s)";
      return std::nullopt;
    }
    // Match the unit: "ms" must win over "m".
    std::size_t unit = kUnits.size();
    if (text.substr(i).starts_with("ms")) {
      unit = 4;
    } else if (i < text.size()) {
      for (std::size_t u = 0; u < 4; ++u)
        if (text[i] == kUnits[u].suffix[0]) unit = u;
    }
    if (unit == kUnits.size()) {
      error = std::string(kExpected) + (i == text.size() ? " (a unit is required)" : "");
      return std::nullopt;
    }
    if (unit < next_unit) {
      error = std::string(kExpected) + " (combine units largest first, each once, like 1h30m)";
      return std::nullopt;
    }
    next_unit = unit + 1;
    i += kUnits[unit].suffix.size();
    if (too_large || value > (kMaxMs - total) / kUnits[unit].ms) {
      error = "duration too large (at most 106751d)";
      return std::nullopt;
    }
    total += value * kUnits[unit].ms;
  }
  return Duration(total);
}

}  // namespace gp::config
