#include "metrics/fleet_window.hpp"

namespace gp::metrics {

void add(Window& into, const Window& w) noexcept {
  into.requests += w.requests;
  into.errors_5xx += w.errors_5xx;
  for (std::size_t i = 0; i < kBuckets; ++i) into.bucket_counts[i] += w.bucket_counts[i];
  into.sum_seconds += w.sum_seconds;
  into.half_requests += w.half_requests;
  into.half_errors_5xx += w.half_errors_5xx;
  for (std::size_t i = 0; i < kSketchBuckets; ++i) into.latency[i] += w.latency[i];
}

std::optional<RouteWindows> FleetWindows::advance(std::string_view route,
                                                  const std::vector<MemberTotals>& reports) {
  auto it = prev_.find(route);
  const bool baseline = it == prev_.end();
  if (baseline) it = prev_.emplace(std::string(route), decltype(it->second){}).first;
  auto& prev = it->second;

  std::map<std::string, RouteTotals, std::less<>> next;
  RouteWindows sum{};
  for (const MemberTotals& m : reports) {
    auto r = m.routes.find(route);
    if (r == m.routes.end()) continue;  // that member does not serve the route (yet)
    const RouteTotals& now = r->second;
    if (auto p = prev.find(m.instance); p != prev.end())
      for (std::size_t v = 0; v < kVersions; ++v) add(sum[v], delta(now[v], p->second[v]));
    next[m.instance] = now;
  }
  prev = std::move(next);
  if (baseline) return std::nullopt;
  return sum;
}

}  // namespace gp::metrics
