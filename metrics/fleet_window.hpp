// The fleet leader's view of the traffic: every member publishes its cumulative per-route,
// per-version totals (requests, 5xx, latency buckets) and the leader sums what each counted
// since its previous look into one window per route and version. Cumulative totals, as
// Prometheus counters, so a report the leader missed or read twice neither loses nor doubles a
// request. Pure: no clock, no I/O.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/types.hpp"
#include "metrics/window.hpp"

namespace gp::metrics {

using RouteTotals = std::array<Snapshot, kVersions>;  // indexed by Version
using RouteWindows = std::array<Window, kVersions>;

// One member's report: its cumulative totals per route.
struct MemberTotals {
  std::string instance;
  std::map<std::string, RouteTotals, std::less<>> routes;
};

// into += w (counts, buckets and sums).
void add(Window& into, const Window& w) noexcept;

class FleetWindows {
 public:
  // The fleet's window of `route` since the previous call for it. The first call for a route
  // (and the first after reset()) only takes baselines and returns nullopt: totals from before
  // are history of unknown age. A member seen for the first time contributes from its next
  // report on; a member absent from `reports` (its lease expired) is forgotten; a member whose
  // counters went down (it restarted) contributes its new totals, as delta() treats resets.
  std::optional<RouteWindows> advance(std::string_view route,
                                      const std::vector<MemberTotals>& reports);
  // A new leadership term, or etcd came back: the next advance() takes baselines only.
  void reset() { prev_.clear(); }

 private:
  // route -> member -> totals at the previous call
  std::map<std::string, std::map<std::string, RouteTotals, std::less<>>, std::less<>> prev_;
};

}  // namespace gp::metrics
