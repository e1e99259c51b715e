#include "proxy/history.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "metrics/window.hpp"
#include "proxy/rollout_json.hpp"
#include "proxy/snapshot.hpp"

namespace gp::proxy {

namespace json = boost::json;

History::Clock::duration History::period_for(const config::Route& route) {
  Clock::duration p = kDefaultPeriod;
  if (route.rollout) {
    auto interval = std::chrono::duration_cast<Clock::duration>(route.rollout->interval);
    p = std::min<Clock::duration>(p, interval);
  }
  return std::max<Clock::duration>(p, kMinPeriod);
}

void History::add(std::string_view route, metrics::Version v, const metrics::Snapshot& totals,
                  Clock::time_point now, std::int64_t unix_ms) {
  auto it = routes_.find(route);
  if (it == routes_.end()) it = routes_.emplace(std::string(route), RouteHistory{}).first;
  Series& s = it->second.versions[static_cast<std::size_t>(v)];
  if (!s.prev) {
    s.prev = totals;
    s.prev_time = now;
    return;
  }
  if (now <= s.prev_time) return;
  const metrics::Window w = metrics::delta(totals, *s.prev);
  const double seconds = std::chrono::duration<double>(now - s.prev_time).count();
  HistoryPoint p;
  p.time_ms = unix_ms;
  p.requests = w.requests;
  p.rate = static_cast<double>(w.requests) / seconds;
  if (w.requests > 0) {
    p.error_ratio = metrics::error_rate(w);
    p.p99_seconds = metrics::quantile(w, 0.99);
  } else {
    p.error_ratio = std::numeric_limits<double>::quiet_NaN();
    p.p99_seconds = std::numeric_limits<double>::quiet_NaN();
  }
  s.points.push_back(p);
  while (s.points.size() > max_points_) s.points.pop_front();
  s.prev = totals;
  s.prev_time = now;
}

void History::tick(const Snapshot& snap, const metrics::Metrics& m, Clock::time_point now,
                   std::int64_t unix_ms) {
  std::vector<std::string> names;
  names.reserve(snap.routes.size());
  for (auto const& r : snap.routes) {
    const std::string& name = r.config->name;
    names.push_back(name);
    auto it = routes_.find(name);
    if (it == routes_.end()) it = routes_.emplace(name, RouteHistory{}).first;
    RouteHistory& h = it->second;
    h.period = period_for(*r.config);
    if (h.next_due && now < *h.next_due) continue;
    // The next point one period on; after a stall (or a shorter new period) from now.
    h.next_due =
        (h.next_due && *h.next_due + h.period > now) ? *h.next_due + h.period : now + h.period;
    add(name, metrics::Version::stable, m.totals(name, metrics::Version::stable), now, unix_ms);
    if (r.canary >= 0)
      add(name, metrics::Version::canary, m.totals(name, metrics::Version::canary), now, unix_ms);
  }
  retain(names);
}

void History::retain(const std::vector<std::string>& keep) {
  std::erase_if(routes_, [&](auto const& kv) {
    return std::find(keep.begin(), keep.end(), kv.first) == keep.end();
  });
}

const std::deque<HistoryPoint>* History::series(std::string_view route, metrics::Version v) const {
  auto it = routes_.find(route);
  if (it == routes_.end()) return nullptr;
  const Series& s = it->second.versions[static_cast<std::size_t>(v)];
  return s.prev ? &s.points : nullptr;
}

json::object History::to_json(std::int64_t now_ms) const {
  json::array routes;
  for (auto const& [name, h] : routes_) {
    json::object versions;
    for (std::size_t v = 0; v < metrics::kVersions; ++v) {
      const Series& s = h.versions[v];
      if (!s.prev) continue;
      json::array t, rate, err, p99, req;
      for (auto const& p : s.points) {
        t.push_back(p.time_ms);
        rate.push_back(json_number(std::round(p.rate * 1000) / 1000));
        err.push_back(json_number(p.error_ratio));
        p99.push_back(json_number(p.p99_seconds));
        req.push_back(p.requests);
      }
      versions[metrics::to_string(static_cast<metrics::Version>(v))] =
          json::object{{"time_ms", std::move(t)},
                       {"rate", std::move(rate)},
                       {"error_ratio", std::move(err)},
                       {"p99_seconds", std::move(p99)},
                       {"requests", std::move(req)}};
    }
    routes.push_back(json::object{
        {"name", name},
        {"period_seconds", json_number(std::chrono::duration<double>(h.period).count())},
        {"versions", std::move(versions)}});
  }
  return json::object{
      {"max_points", max_points_}, {"now_ms", now_ms}, {"routes", std::move(routes)}};
}

}  // namespace gp::proxy
