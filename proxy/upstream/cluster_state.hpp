// A cluster's state shared by all workers: outlier detection per endpoint and the circuit
// breaker counters. It outlives snapshots: a reload keeps it for a cluster of the same name
// (and, per endpoint, for an address that stays configured). Atomics only on the request
// path; a mutex per cluster is taken on failures, to decide an ejection against the cap.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "metrics/metrics.hpp"
#include "routing/outlier.hpp"

namespace gp::proxy {

class EndpointHealth {
 public:
  EndpointHealth(std::string address, metrics::EndpointStats* stats)
      : address_(std::move(address)), stats_(stats) {}
  EndpointHealth(const EndpointHealth&) = delete;
  EndpointHealth& operator=(const EndpointHealth&) = delete;

  const std::string& address() const { return address_; }
  bool ejected(routing::OutlierClock::time_point now) const {
    return now.time_since_epoch().count() < until_.load(std::memory_order_relaxed);
  }
  // A read of all fields for /status and the ejection decision (not one atomic snapshot).
  routing::EndpointOutlier load() const;

 private:
  friend class ClusterState;
  void store(const routing::EndpointOutlier& e);

  std::string address_;  // as configured: the key across reloads and the metric label
  metrics::EndpointStats* stats_;
  std::atomic<std::uint32_t> failures_{0};
  std::atomic<std::uint32_t> times_ejected_{0};
  std::atomic<std::uint32_t> multiplier_{0};
  std::atomic<std::int64_t> until_{0};  // steady_clock ticks since its epoch
};

using EndpointHealthList = std::vector<std::shared_ptr<EndpointHealth>>;

class BreakerSlot;

class ClusterState {
 public:
  // Outcome of one attempt on endpoints[index] (the cluster's endpoints in the caller's
  // snapshot). Returns true when it ejected the endpoint.
  bool report(const routing::OutlierPolicy& p, const EndpointHealthList& endpoints,
              std::size_t index, routing::AttemptResult r, unsigned status,
              routing::OutlierClock::time_point now);

  // Circuit breakers: whether a request may go on (the count was below the limit); when it
  // may, `slot` holds its place until released. With no limit (0) nothing is counted, so an
  // unlimited cluster costs no shared write per request.
  static bool take(std::atomic<std::uint32_t>& counter, std::uint32_t limit, BreakerSlot& slot);

  // Counted only while the cluster has the matching limit.
  std::atomic<std::uint32_t> active{0};   // requests in flight to the cluster
  std::atomic<std::uint32_t> pending{0};  // requests waiting for a new connection

 private:
  std::mutex ejection_mutex_;
};

// A taken circuit-breaker slot, released when it goes out of scope.
class BreakerSlot {
 public:
  BreakerSlot() = default;
  explicit BreakerSlot(std::atomic<std::uint32_t>& counter) : counter_(&counter) {}
  BreakerSlot(BreakerSlot&& o) noexcept : counter_(std::exchange(o.counter_, nullptr)) {}
  BreakerSlot& operator=(BreakerSlot&& o) noexcept {
    release();
    counter_ = std::exchange(o.counter_, nullptr);
    return *this;
  }
  ~BreakerSlot() { release(); }
  void release() {
    if (counter_) counter_->fetch_sub(1, std::memory_order_relaxed);
    counter_ = nullptr;
  }

 private:
  std::atomic<std::uint32_t>* counter_ = nullptr;
};

inline bool ClusterState::take(std::atomic<std::uint32_t>& counter, std::uint32_t limit,
                               BreakerSlot& slot) {
  if (limit == 0) return true;
  if (counter.fetch_add(1, std::memory_order_relaxed) < limit) {
    slot = BreakerSlot(counter);
    return true;
  }
  counter.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

}  // namespace gp::proxy
