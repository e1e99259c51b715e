#include "routing/cohort.hpp"

#include <xxhash.h>

namespace gp::routing {

namespace {
// An empty string_view may carry a null data(); XXH3 never reads it for length 0, but a
// non-null pointer keeps sanitizers and XXH_ASSERT builds quiet.
const void* bytes(std::string_view s) {
  return s.data() != nullptr ? s.data() : "";
}
}  // namespace

std::uint64_t salt_seed(std::string_view salt) {
  return XXH3_64bits(bytes(salt), salt.size());
}

std::uint32_t bucket(std::string_view key, std::uint64_t seed) {
  return static_cast<std::uint32_t>(XXH3_64bits_withSeed(bytes(key), key.size(), seed) % kBuckets);
}

}  // namespace gp::routing
