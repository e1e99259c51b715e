// A small in-process history for the status page: per route and version, one point per
// sampling period (10 s, or the route's rollout interval when that is shorter, at least 1 s)
// with the request rate, the 5xx ratio and the p99 latency of the period, read from the
// cumulative metrics (metrics::delta / quantile / error_rate). At most kMaxPoints points per
// series (an hour at 10 s). Not thread-safe: the admin thread samples and serves it.
#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "metrics/types.hpp"

namespace gp::proxy {

struct Snapshot;

struct HistoryPoint {
  std::int64_t time_ms = 0;    // wall clock (unix ms) at the end of the period
  std::uint64_t requests = 0;  // in the period
  double rate = 0;             // requests per second over the period
  double error_ratio = 0;      // 5xx / requests; NaN when requests == 0
  double p99_seconds = 0;      // NaN when requests == 0
};

class History {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxPoints = 360;
  static constexpr std::chrono::seconds kDefaultPeriod{10};
  static constexpr std::chrono::seconds kMinPeriod{1};

  explicit History(std::size_t max_points = kMaxPoints) : max_points_(max_points) {}

  // The sampling period of a route: kDefaultPeriod, or its rollout interval when shorter,
  // never below kMinPeriod.
  static Clock::duration period_for(const config::Route& route);

  // Records one sample of a series' cumulative totals taken at `now` (`unix_ms` stamps the
  // point). The first sample of a series only sets its baseline; a sample no later than the
  // previous one is ignored.
  void add(std::string_view route, metrics::Version v, const metrics::Snapshot& totals,
           Clock::time_point now, std::int64_t unix_ms);

  // Samples every route of `snap` whose period is due (stable always, canary when the route
  // has one) from `m`, and forgets routes that are no longer configured. Call it about once
  // a second; the first call sets the baselines.
  void tick(const Snapshot& snap, const metrics::Metrics& m, Clock::time_point now,
            std::int64_t unix_ms);

  // Forgets the routes not named in `keep`.
  void retain(const std::vector<std::string>& keep);

  // nullptr when the series was never sampled.
  const std::deque<HistoryPoint>* series(std::string_view route, metrics::Version v) const;

  // GET /history: {"max_points", "now_ms", "routes": [{"name", "period_seconds",
  // "versions": {"stable": {"time_ms": [...], "rate": [...], "error_ratio": [...],
  // "p99_seconds": [...], "requests": [...]}, "canary": {...}}}]}, oldest point first,
  // NaN as null.
  boost::json::object to_json(std::int64_t now_ms) const;

 private:
  struct Series {
    std::optional<metrics::Snapshot> prev;
    Clock::time_point prev_time{};
    std::deque<HistoryPoint> points;
  };
  struct RouteHistory {
    Clock::duration period = kDefaultPeriod;
    std::optional<Clock::time_point> next_due;
    Series versions[metrics::kVersions];
  };

  std::size_t max_points_;
  std::map<std::string, RouteHistory, std::less<>> routes_;
};

}  // namespace gp::proxy
