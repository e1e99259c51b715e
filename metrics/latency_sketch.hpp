// The rollout analysis's latency record: log-linear buckets (HdrHistogram's layout) over whole
// microseconds, 32 linear sub-buckets per power of two. A bucket from 32 us up is at most 1/32
// of its lower bound wide, so its midpoint is within 1/64 (1.6%) of every latency it counts;
// below 32 us buckets are 1 us wide (within 0.5 us). Counts of the same layout add exactly, so
// workers, windows and fleet members merge without error. Separate from the Prometheus histogram,
// whose few round bounds are for dashboards, not for judging a canary (docs/analysis.md).
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace gp::metrics {

inline constexpr unsigned kSketchSubBits = 5;
inline constexpr std::uint64_t kSketchSub = std::uint64_t{1} << kSketchSubBits;  // 32
// Finite buckets up to 2^27 us (134 s); the last bucket counts everything above.
inline constexpr unsigned kSketchTopBit = 27;
inline constexpr std::size_t kSketchFinite =
    kSketchSub + (kSketchTopBit - kSketchSubBits) * kSketchSub;
inline constexpr std::size_t kSketchBuckets = kSketchFinite + 1;

using SketchCounts = std::array<std::uint64_t, kSketchBuckets>;

// The bucket counting `latency` (negative counts as 0). Branch-light: a bit_width and shifts.
constexpr std::size_t sketch_index(std::chrono::nanoseconds latency) noexcept {
  const std::uint64_t us =
      latency.count() < 0 ? 0 : static_cast<std::uint64_t>(latency.count()) / 1000;
  if (us < kSketchSub) return static_cast<std::size_t>(us);
  const unsigned top = static_cast<unsigned>(std::bit_width(us)) - 1;  // >= kSketchSubBits
  if (top >= kSketchTopBit) return kSketchFinite;
  const unsigned shift = top - kSketchSubBits;
  return static_cast<std::size_t>(kSketchSub + shift * kSketchSub + ((us >> shift) - kSketchSub));
}

// Bucket i counts latencies in [lower, upper) microseconds; the overflow bucket's upper is
// infinite.
double sketch_lower_us(std::size_t i) noexcept;
double sketch_upper_us(std::size_t i) noexcept;
// The value a bucket stands for: its midpoint, in seconds (the overflow bucket: its lower bound).
double sketch_value_seconds(std::size_t i) noexcept;

std::uint64_t total(const SketchCounts& c) noexcept;

// The latency at quantile q (nearest rank, the bucket's midpoint), in seconds; NaN when empty or
// q is not in [0, 1].
double sketch_quantile(const SketchCounts& c, double q) noexcept;

// Latencies above `seconds`: the buckets above it, and the bucket holding it in proportion to the
// part of its range above, rounded. NaN or negative `seconds` count everything.
std::uint64_t sketch_count_above(const SketchCounts& c, double seconds) noexcept;

}  // namespace gp::metrics
