#include "routing/random_source.hpp"

#include <random>

namespace gp::routing {

namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

// Full 256 bits of state from the device, so workers started together never share a stream.
RandomSource::RandomSource() {
  std::random_device rd;
  for (auto& word : s_) {
    std::uint64_t x = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    word = splitmix64(x);
  }
}

// splitmix64 never yields an all-zero xoshiro state, the one state xoshiro must avoid.
RandomSource::RandomSource(std::uint64_t seed) {
  for (auto& word : s_) word = splitmix64(seed);
}

}  // namespace gp::routing
