// Cohort hashing, as pinned by docs/design.md "Cohort hashing": every instance with the
// same config must put a key in the same bucket, so these formulas never change.
#pragma once

#include <cstdint>
#include <string_view>

namespace gp::routing {

// Buckets are basis points, so a weight in percent with two decimals maps 1:1 onto them.
inline constexpr std::uint32_t kBuckets = 10000;

// seed = XXH3_64bits(salt); computed once per route per snapshot.
std::uint64_t salt_seed(std::string_view salt);

// bucket = XXH3_64bits_withSeed(key, seed) % 10000, in [0, 10000).
std::uint32_t bucket(std::string_view key, std::uint64_t seed);

// Strict '<' makes cohorts monotonic: canary at weight w implies canary at every w' > w.
inline bool is_canary(std::uint32_t bucket, std::uint32_t weight_bp) {
  return bucket < weight_bp;
}

}  // namespace gp::routing
