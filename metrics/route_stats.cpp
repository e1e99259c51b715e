#include "metrics/route_stats.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace gp::metrics {

RouteStats::RouteStats(std::string name, unsigned workers)
    : name_(std::move(name)), workers_(workers), shards_(std::make_unique<Shard[]>(workers)) {
  static_assert(sizeof(Shard) % 128 == 0 && alignof(Shard) == 128);
  if (workers == 0) throw std::invalid_argument("metrics: workers must be > 0");
}

VersionTotals RouteStats::sum(Version v) const noexcept {
  VersionTotals t;
  const auto load = [](const std::atomic<std::uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  for (unsigned w = 0; w < workers_; ++w) {
    const Counters& c = shards_[w].by_version[static_cast<std::size_t>(v)];
    for (std::size_t i = 0; i < kCodeClasses; ++i) t.code_class[i] += load(c.code_class[i]);
    for (std::size_t i = 0; i < kBuckets; ++i) t.buckets[i] += load(c.buckets[i]);
    t.sum_us += load(c.sum_us);
    for (std::size_t i = 0; i < kUpstreamErrors; ++i)
      t.upstream_errors[i] += load(c.upstream_errors[i]);
    t.retries += load(c.retries);
    t.half_requests += load(c.half_requests);
    t.half_5xx += load(c.half_5xx);
    for (std::size_t i = 0; i < kSketchBuckets; ++i) t.latency[i] += load(c.latency[i]);
  }
  return t;
}

Snapshot RouteStats::totals(Version v) const noexcept {
  const VersionTotals t = sum(v);
  Snapshot s;
  // requests from the buckets (not the code classes), so the quantile ranks and the request
  // count of a window always agree even while workers are recording.
  for (std::size_t i = 0; i < kBuckets; ++i) {
    s.bucket_counts[i] = t.buckets[i];
    s.requests += t.buckets[i];
  }
  // Clamped: relaxed loads give no cross-counter ordering guarantee in the C++ model.
  s.errors_5xx = std::min(t.code_class[code_class_index(500)], s.requests);
  s.sum_seconds = static_cast<double>(t.sum_us) / 1e6;
  s.half_requests = std::min(t.half_requests, s.requests);
  s.half_errors_5xx = std::min({t.half_5xx, s.errors_5xx, s.half_requests});
  s.latency = t.latency;
  return s;
}

}  // namespace gp::metrics
