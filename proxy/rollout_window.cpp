#include "proxy/rollout_window.hpp"

#include <chrono>
#include <limits>

#include "metrics/latency_sketch.hpp"

namespace gp::proxy {

routing::VersionWindow to_version_window(const metrics::Window& w, const config::Rollout& policy) {
  routing::VersionWindow v;
  v.requests = w.requests;
  v.errors = w.errors_5xx;
  // From the sketch (within 1.6%), not the Prometheus buckets (interpolated over up to x1.5).
  v.p99_seconds = w.requests ? metrics::sketch_quantile(w.latency, 0.99)
                             : std::numeric_limits<double>::quiet_NaN();
  v.half_requests = w.half_requests;
  v.half_errors = w.half_errors_5xx;
  if (policy.max_p99_latency)
    v.slow = metrics::sketch_count_above(
        w.latency, std::chrono::duration<double>(*policy.max_p99_latency).count());
  if (policy.max_latency_ratio)
    for (std::size_t i = 0; i < w.latency.size(); ++i)
      if (w.latency[i] != 0) v.latency.push_back({metrics::sketch_value_seconds(i), w.latency[i]});
  return v;
}

}  // namespace gp::proxy
