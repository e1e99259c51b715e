// The two versions a route serves. One enum for the whole program: configuration (overrides),
// routing decisions, requests and metrics all speak it. The values index per-version arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gp::config {

enum class Version : std::uint8_t { stable = 0, canary = 1 };
inline constexpr std::size_t kVersions = 2;

// Also the x-gray-version header value and the `version` metric label.
constexpr std::string_view to_string(Version v) noexcept {
  return v == Version::canary ? "canary" : "stable";
}

}  // namespace gp::config
