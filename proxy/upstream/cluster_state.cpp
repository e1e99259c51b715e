#include "proxy/upstream/cluster_state.hpp"

namespace gp::proxy {

using routing::OutlierClock;

routing::EndpointOutlier EndpointHealth::load() const {
  routing::EndpointOutlier e;
  e.consecutive_failures = failures_.load(std::memory_order_relaxed);
  e.times_ejected = times_ejected_.load(std::memory_order_relaxed);
  e.multiplier = multiplier_.load(std::memory_order_relaxed);
  e.ejected_until =
      OutlierClock::time_point(OutlierClock::duration(until_.load(std::memory_order_relaxed)));
  return e;
}

void EndpointHealth::store(const routing::EndpointOutlier& e) {
  failures_.store(e.consecutive_failures, std::memory_order_relaxed);
  times_ejected_.store(e.times_ejected, std::memory_order_relaxed);
  multiplier_.store(e.multiplier, std::memory_order_relaxed);
  until_.store(e.ejected_until.time_since_epoch().count(), std::memory_order_relaxed);
}

bool ClusterState::report(const routing::OutlierPolicy& p, const EndpointHealthList& endpoints,
                          std::size_t index, routing::AttemptResult r, unsigned status,
                          OutlierClock::time_point now) {
  EndpointHealth& h = *endpoints[index];
  const int verdict = routing::classify(p, r, status);
  if (verdict == 0) {
    // The common case: a store only when there is something to clear, so healthy traffic
    // does not bounce the cache line between workers.
    if (h.failures_.load(std::memory_order_relaxed) != 0)
      h.failures_.store(0, std::memory_order_relaxed);
    return false;
  }
  if (verdict < 0) return false;
  // Failures are rare; the lock makes the count, the cap and the ejection one decision.
  std::lock_guard lock(ejection_mutex_);
  routing::EndpointOutlier e = h.load();
  std::size_t ejected_others = 0;
  for (std::size_t i = 0; i < endpoints.size(); ++i)
    if (i != index && endpoints[i]->ejected(now)) ++ejected_others;
  const bool ejected = routing::record_failure(p, e, now, ejected_others, endpoints.size());
  h.store(e);
  if (ejected && h.stats_) {
    h.stats_->ejected_until_ns.store(
        std::chrono::duration_cast<std::chrono::nanoseconds>(e.ejected_until.time_since_epoch())
            .count(),
        std::memory_order_relaxed);
    h.stats_->ejections.fetch_add(1, std::memory_order_relaxed);
  }
  return ejected;
}

}  // namespace gp::proxy
