#include "metrics/latency_sketch.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gp::metrics {

double sketch_lower_us(std::size_t i) noexcept {
  if (i < kSketchSub) return static_cast<double>(i);
  if (i >= kSketchFinite) return std::ldexp(1.0, kSketchTopBit);
  const std::size_t shift = (i - kSketchSub) / kSketchSub;
  const std::size_t sub = (i - kSketchSub) % kSketchSub;
  return std::ldexp(static_cast<double>(kSketchSub + sub), static_cast<int>(shift));
}

double sketch_upper_us(std::size_t i) noexcept {
  if (i >= kSketchFinite) return std::numeric_limits<double>::infinity();
  if (i < kSketchSub) return static_cast<double>(i + 1);
  const std::size_t shift = (i - kSketchSub) / kSketchSub;
  return sketch_lower_us(i) + std::ldexp(1.0, static_cast<int>(shift));
}

double sketch_value_seconds(std::size_t i) noexcept {
  if (i >= kSketchFinite) return sketch_lower_us(i) / 1e6;
  return (sketch_lower_us(i) + sketch_upper_us(i)) / 2 / 1e6;
}

std::uint64_t total(const SketchCounts& c) noexcept {
  std::uint64_t n = 0;
  for (const std::uint64_t x : c) n += x;
  return n;
}

double sketch_quantile(const SketchCounts& c, double q) noexcept {
  const std::uint64_t n = total(c);
  if (n == 0 || !(q >= 0 && q <= 1)) return std::numeric_limits<double>::quiet_NaN();
  // Nearest rank: the smallest value with at least q*n values at or below it.
  const auto rank =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    seen += c[i];
    if (seen >= rank) return sketch_value_seconds(i);
  }
  return sketch_value_seconds(c.size() - 1);
}

std::uint64_t sketch_count_above(const SketchCounts& c, double seconds) noexcept {
  const double us = seconds * 1e6;
  double above = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (c[i] == 0) continue;
    const double lower = sketch_lower_us(i);
    const double upper = sketch_upper_us(i);
    const auto n = static_cast<double>(c[i]);
    if (!(us >= lower))  // NaN counts everything
      above += n;
    else if (us < upper)
      above += std::isfinite(upper) ? n * (upper - us) / (upper - lower) : n;
  }
  return static_cast<std::uint64_t>(std::llround(above));
}

}  // namespace gp::metrics
