#include "metrics/window.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gp::metrics {

namespace {

Window as_window(const Snapshot& s) noexcept {
  Window w;
  w.requests = s.requests;
  w.errors_5xx = s.errors_5xx;
  w.bucket_counts = s.bucket_counts;
  w.sum_seconds = s.sum_seconds;
  w.half_requests = std::min(s.half_requests, s.requests);
  w.half_errors_5xx = std::min({s.half_errors_5xx, s.errors_5xx, w.half_requests});
  w.latency = s.latency;
  return w;
}

}  // namespace

Window delta(const Snapshot& now, const Snapshot& before) noexcept {
  bool reset = now.requests < before.requests || now.errors_5xx < before.errors_5xx ||
               now.half_requests < before.half_requests ||
               now.half_errors_5xx < before.half_errors_5xx;
  for (std::size_t i = 0; i < kBuckets && !reset; ++i)
    reset = now.bucket_counts[i] < before.bucket_counts[i];
  for (std::size_t i = 0; i < kSketchBuckets && !reset; ++i)
    reset = now.latency[i] < before.latency[i];
  if (reset) return as_window(now);

  Window w;
  w.requests = now.requests - before.requests;
  w.errors_5xx = std::min(now.errors_5xx - before.errors_5xx, w.requests);
  for (std::size_t i = 0; i < kBuckets; ++i)
    w.bucket_counts[i] = now.bucket_counts[i] - before.bucket_counts[i];
  for (std::size_t i = 0; i < kSketchBuckets; ++i)
    w.latency[i] = now.latency[i] - before.latency[i];
  // Sums are exact integers of microseconds underneath; clamp only guards rounding.
  w.sum_seconds = std::max(0.0, now.sum_seconds - before.sum_seconds);
  // Clamped like errors_5xx: counters of different kinds are read a few records apart.
  w.half_requests = std::min(now.half_requests - before.half_requests, w.requests);
  w.half_errors_5xx =
      std::min({now.half_errors_5xx - before.half_errors_5xx, w.errors_5xx, w.half_requests});
  return w;
}

double quantile(const Window& w, double q) noexcept {
  constexpr double inf = std::numeric_limits<double>::infinity();
  if (std::isnan(q)) return std::numeric_limits<double>::quiet_NaN();
  if (q < 0) return -inf;
  if (q > 1) return inf;

  // Total from the buckets themselves, so the rank is consistent with what is searched.
  std::uint64_t total = 0;
  for (std::uint64_t c : w.bucket_counts) total += c;
  if (total == 0) return std::numeric_limits<double>::quiet_NaN();

  const double rank = q * static_cast<double>(total);
  // First finite bucket whose cumulative count reaches the rank (PromQL's sort.Search over
  // all but the +Inf bucket).
  std::uint64_t below = 0;  // cumulative count of the buckets before b
  std::size_t b = 0;
  for (; b + 1 < kBuckets; ++b) {
    if (static_cast<double>(below + w.bucket_counts[b]) >= rank) break;
    below += w.bucket_counts[b];
  }
  if (b + 1 == kBuckets) return bucket_upper_bound_seconds(kBuckets - 2);

  const double start = b == 0 ? 0.0 : bucket_upper_bound_seconds(b - 1);
  const double end = bucket_upper_bound_seconds(b);
  const std::uint64_t in_bucket = w.bucket_counts[b];
  // Only q == 0 with an empty first bucket gets here with in_bucket == 0 (PromQL yields 0/0
  // there); the lower edge is the sensible answer.
  if (in_bucket == 0) return start;
  return start +
         (end - start) * ((rank - static_cast<double>(below)) / static_cast<double>(in_bucket));
}

double error_rate(const Window& w) noexcept {
  if (w.requests == 0) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(w.errors_5xx) / static_cast<double>(w.requests);
}

double mean_seconds(const Window& w) noexcept {
  if (w.requests == 0) return std::numeric_limits<double>::quiet_NaN();
  return w.sum_seconds / static_cast<double>(w.requests);
}

}  // namespace gp::metrics
