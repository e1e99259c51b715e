#include "routing/outlier.hpp"

#include <algorithm>

namespace gp::routing {

OutlierPolicy outlier_policy(const config::Cluster& cluster) {
  OutlierPolicy p;
  if (!cluster.outlier_detection) {
    p.consecutive_failures = 1;
    p.ejection_time = p.max_ejection_time = std::chrono::seconds(5);
    p.max_ejection_percent = 100;
    p.count_responses = false;
    return p;
  }
  const config::OutlierDetection& o = *cluster.outlier_detection;
  p.consecutive_failures = o.consecutive_failures;
  p.ejection_time = o.ejection_time;
  p.max_ejection_time = std::max(o.max_ejection_time, o.ejection_time);
  p.max_ejection_percent = o.max_ejection_percent;
  return p;
}

int classify(const OutlierPolicy& p, AttemptResult r, unsigned status) {
  switch (r) {
    case AttemptResult::connect_failure:
      return 1;
    case AttemptResult::reset:
    case AttemptResult::timeout:
      return p.count_responses ? 1 : -1;
    case AttemptResult::response:
      // The gateway errors: the endpoint (or what is behind it) is unavailable. Other 5xx are
      // the application's answer to this request and neither count nor clear.
      if (status == 502 || status == 503 || status == 504) return p.count_responses ? 1 : -1;
      return status >= 500 ? -1 : 0;
  }
  return -1;
}

bool ejection_allowed(std::uint32_t max_ejection_percent, std::size_t ejected,
                      std::size_t endpoints) {
  if (endpoints == 0 || ejected >= endpoints) return false;
  if (max_ejection_percent < 100 && ejected + 1 >= endpoints) return false;
  return (ejected + 1) * 100 <= static_cast<std::size_t>(max_ejection_percent) * endpoints;
}

OutlierClock::duration ejection_duration(const OutlierPolicy& p, std::uint32_t multiplier) {
  const auto m = std::max<std::uint32_t>(multiplier, 1);
  // Compared before multiplying, so a large multiplier cannot overflow.
  if (p.ejection_time.count() > 0 && m > p.max_ejection_time / p.ejection_time)
    return p.max_ejection_time;
  return std::min(p.ejection_time * m, p.max_ejection_time);
}

bool record_failure(const OutlierPolicy& p, EndpointOutlier& e, OutlierClock::time_point now,
                    std::size_t ejected_others, std::size_t endpoints) {
  if (is_ejected(e, now)) return false;  // a late answer from before the ejection
  if (e.consecutive_failures < p.consecutive_failures) ++e.consecutive_failures;
  if (e.consecutive_failures < p.consecutive_failures) return false;
  // At the threshold but over the cap: the count stays there, so the next failure asks again
  // (another endpoint may have returned by then).
  if (!ejection_allowed(p.max_ejection_percent, ejected_others, endpoints)) return false;
  const bool long_back = e.times_ejected == 0 || now - e.ejected_until >= p.max_ejection_time;
  e.multiplier = long_back ? 1 : e.multiplier + 1;
  e.consecutive_failures = 0;
  ++e.times_ejected;
  e.ejected_until = now + ejection_duration(p, e.multiplier);
  return true;
}

}  // namespace gp::routing
