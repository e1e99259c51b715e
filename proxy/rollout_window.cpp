#include "proxy/rollout_window.hpp"

#include <chrono>
#include <limits>

namespace gp::proxy {

routing::VersionWindow to_version_window(const metrics::Window& w, const config::Rollout& policy) {
  routing::VersionWindow v;
  v.requests = w.requests;
  v.errors = w.errors_5xx;
  v.p99_seconds =
      w.requests ? metrics::quantile(w, 0.99) : std::numeric_limits<double>::quiet_NaN();
  v.half_requests = w.half_requests;
  v.half_errors = w.half_errors_5xx;
  if (policy.max_p99_latency)
    v.slow =
        metrics::count_above(w, std::chrono::duration<double>(*policy.max_p99_latency).count());
  return v;
}

}  // namespace gp::proxy
