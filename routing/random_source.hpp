// Fast non-cryptographic PRNG for per-request randomness (random fallback, fallback cookie ids).
// One instance per worker thread: it is not thread-safe, which is what keeps it lock-free.
#pragma once

#include <cstdint>

namespace gp::routing {

// xoshiro256** (Blackman & Vigna), state expanded from a 64-bit seed with splitmix64.
// Predictable outputs are acceptable: a cohort id is not a secret, and a client can pick its
// cohort anyway by sending any cookie value it likes.
class RandomSource {
 public:
  RandomSource();  // seeded from std::random_device
  explicit RandomSource(std::uint64_t seed);

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace gp::routing
