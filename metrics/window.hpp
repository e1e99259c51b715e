// Windowed statistics for the rollout controller: the difference of two cumulative Snapshots,
// and PromQL-style reads of it. Pure functions, no state.
#pragma once

#include <array>
#include <cstdint>

#include "metrics/types.hpp"

namespace gp::metrics {

// What happened between two Snapshots of one route and version. Same layout as Snapshot;
// bucket_counts are non-cumulative, the last is the +Inf bucket.
struct Window {
  std::uint64_t requests = 0;
  std::uint64_t errors_5xx = 0;
  std::array<std::uint64_t, kBuckets> bucket_counts{};
  double sum_seconds = 0;
  std::uint64_t half_requests = 0;
  std::uint64_t half_errors_5xx = 0;
  SketchCounts latency{};
};

// now - before. If any count went down (a counter reset: `before` came from another Metrics
// object, or the snapshots were swapped) the window is `now` alone, as PromQL's rate() treats
// resets; that never happens with one Metrics object, whose counters are monotonic.
Window delta(const Snapshot& now, const Snapshot& before) noexcept;

// Like PromQL histogram_quantile(q, ...) over the window's buckets: finds the bucket holding
// rank q*requests and interpolates linearly inside it (the first bucket starts at 0). A rank in
// the +Inf bucket returns the highest finite bound (60 s). Returns NaN for an empty window or
// NaN q, -Inf for q < 0 and +Inf for q > 1, as PromQL does.
double quantile(const Window& w, double q) noexcept;

// errors_5xx / requests; NaN for an empty window (0/0), so callers must check `requests`
// (the controller's min_requests) before comparing against a threshold.
double error_rate(const Window& w) noexcept;

// sum_seconds / requests; NaN for an empty window.
double mean_seconds(const Window& w) noexcept;

}  // namespace gp::metrics
