// Percentages as written in grayproxy.yaml (split weight, rollout steps): 0..100 with at
// most two decimals, stored exactly as basis points (percent * 100): "12.34" -> 1234.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gp::config {

// The value in basis points [0, 10000], or nullopt with `error` set to what was expected
// (no "got ..." suffix). Parsed from the text, never through a double, so it is exact.
// Accepts "10", "12.5", "0.01", "100", "100.00"; rejects "140", "-1", "1.234", ".5", "1e2".
std::optional<std::uint32_t> parse_percent_bp(std::string_view text, std::string& error);

// Basis points back to the shortest percent text: 1000 -> "10", 1250 -> "12.5", 1 -> "0.01".
std::string format_percent_bp(std::uint32_t bp);

}  // namespace gp::config
