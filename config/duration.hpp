// Durations as written in grayproxy.yaml: "250ms", "30s", "5m", "1h", "7d", and
// Prometheus-style combinations in descending unit order ("1h30m", "1m30s500ms").
// Whole numbers only; no sign; a unit is required; at most 106751d (fits in nanoseconds).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace gp::config {

// The duration, or nullopt with `error` set to what was expected (no "got ..." suffix).
std::optional<Duration> parse_duration(std::string_view text, std::string& error);

}  // namespace gp::config
