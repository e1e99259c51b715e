// The process's metrics: per-route request stats sharded per worker (summed at scrape time),
// plus low-rate gauges and counters kept in a prometheus-cpp Registry. One object per process,
// created before the workers and outliving them; it is the prometheus::Collectable for
// /metrics.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/route_stats.hpp"
#include "metrics/types.hpp"

namespace gp::metrics {

// The rollout states (docs/design.md "Rollout"), in grayproxy_rollout_state order.
inline constexpr std::array<std::string_view, 5> kRolloutStates = {"idle", "progressing", "paused",
                                                                   "promoted", "rolled_back"};

// Outlier detection of one upstream endpoint as scrapes see it: written by any worker when
// it ejects the endpoint (rare), read by Collect().
struct EndpointStats {
  std::atomic<std::uint64_t> ejections{0};
  std::atomic<std::int64_t> ejected_until_ns{0};  // steady_clock since its epoch; 0 = never
};

class Metrics final : public prometheus::Collectable {
 public:
  // Route label of requests that matched no route.
  static constexpr std::string_view kUnmatchedRoute = "none";

  // workers > 0 (std::invalid_argument otherwise); worker ids passed below are in
  // [0, workers). version_string is the grayproxy_build_info{version} label.
  Metrics(unsigned workers, std::string version_string);
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  unsigned workers() const noexcept { return workers_; }

  // The stats of a route, created on first use; the same object for the same name for the
  // life of this Metrics, so counters stay monotonic across config reloads. Takes a mutex:
  // call it when building a routing snapshot, never per request. Route "none" always exists.
  RouteStats& route(std::string_view name);

  // The stats of an upstream endpoint (cluster name, configured address), created on first
  // use and kept for the life of this Metrics, like route(). Takes the mutex: call it when
  // building a snapshot.
  EndpointStats& endpoint(std::string_view cluster, std::string_view address);

  // Cumulative totals of a route and version (all zero for an unknown route).
  Snapshot totals(std::string_view route, Version v) const;

  // Low-rate updates (admin API, rollout controller, reload): any thread.
  void set_canary_weight(std::string_view route, double percent);
  // `state` must be one of kRolloutStates (std::invalid_argument otherwise): the series of
  // the route's current state is 1, the other four 0, switched atomically for scrapes.
  void set_rollout_state(std::string_view route, std::string_view state);
  // grayproxy_rollout_transitions_total{route,to}++; `to` as for set_rollout_state.
  void rollout_transition(std::string_view route, std::string_view to);
  // grayproxy_config_reloads_total{result}++; on success also sets the last-success
  // timestamp to now. Call it for the initial load too, so the timestamp is never 0 in
  // production.
  void config_reload(bool success);

  // From worker thread w only, like RouteStats::record (same single-writer shards).
  void connection_opened(unsigned w) noexcept { add_connections(w, 1); }
  void connection_closed(unsigned w) noexcept { add_connections(w, -1); }
  // grayproxy_connections_refused_total{reason="max_connections"}++: a connection accepted
  // over limits.max_connections and closed at once. Any thread (rare by nature).
  void connection_refused_max_connections() { refused_max_connections_->Increment(); }
  // grayproxy_downstream_rejected_total{reason}++: a request the proxy answered 4xx/5xx itself
  // because of what the client sent. Any thread; a shared atomic add, off the normal path.
  void request_rejected(RejectReason r) { rejected_[static_cast<std::size_t>(r)]->Increment(); }
  // grayproxy_upstream_connections_closed_total{reason}++: an upstream connection closed
  // instead of reused. Any thread; a shared atomic add, once per connection at most.
  void upstream_connection_closed(UpstreamClose c) {
    upstream_closed_[static_cast<std::size_t>(c)]->Increment();
  }

  // All families: the registry's plus the summed shards. Any thread.
  std::vector<prometheus::MetricFamily> Collect() const override;
  // Prometheus text exposition format 0.0.4 of Collect().
  std::string serialize() const;

  // For adding more low-rate metrics; they appear in Collect() and serialize().
  prometheus::Registry& registry() noexcept { return *registry_; }

 private:
  struct alignas(128) ConnectionShard {  // 128: see RouteStats::Shard
    std::atomic<std::int64_t> active{0};
  };

  void add_connections(unsigned w, std::int64_t n) noexcept {
    assert(w < workers_);
    std::atomic<std::int64_t>& a = connections_[w].active;
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  unsigned workers_;
  std::unique_ptr<ConnectionShard[]> connections_;
  std::shared_ptr<prometheus::Registry> registry_;

  prometheus::Family<prometheus::Gauge>& canary_weight_;
  prometheus::Family<prometheus::Counter>& transitions_;
  prometheus::Counter& reloads_success_;
  prometheus::Counter& reloads_failure_;
  prometheus::Gauge& last_reload_success_;
  prometheus::Counter* refused_max_connections_ = nullptr;
  std::array<prometheus::Counter*, kRejectReasons> rejected_{};
  std::array<prometheus::Counter*, kUpstreamCloses> upstream_closed_{};

  mutable std::mutex mutex_;  // guards the two maps below, not the stats they point to
  std::map<std::string, std::unique_ptr<RouteStats>, std::less<>> routes_;
  std::map<std::string, std::size_t, std::less<>> rollout_state_;  // index into kRolloutStates
  // (cluster, endpoint) -> stats; guarded by mutex_ like routes_.
  std::map<std::pair<std::string, std::string>, std::unique_ptr<EndpointStats>> endpoints_;
};

}  // namespace gp::metrics
