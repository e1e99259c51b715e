// Passive outlier detection, the decisions only (as Envoy's outlier_detection; README "What
// the proxy guarantees on the wire"): what counts as a failure, when an endpoint is ejected,
// for how long, and how many endpoints of a cluster may be out at once. Pure: the caller owns
// the state (proxy/upstream/cluster_state.hpp) and passes the clock in.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "config/config.hpp"

namespace gp::routing {

using OutlierClock = std::chrono::steady_clock;

struct OutlierPolicy {
  std::uint32_t consecutive_failures = 5;
  OutlierClock::duration ejection_time = std::chrono::seconds(30);
  OutlierClock::duration max_ejection_time = std::chrono::seconds(300);
  std::uint32_t max_ejection_percent = 50;
  // false: only connection failures count (no outlier_detection block: the old rule).
  bool count_responses = true;
};

// The cluster's policy; without an outlier_detection block, the rule grayproxy had before it:
// one refused or timed-out connection ejects the endpoint for 5 s, whatever the share.
OutlierPolicy outlier_policy(const config::Cluster& cluster);

// What an attempt on an endpoint ended with.
enum class AttemptResult : std::uint8_t {
  connect_failure,  // refused, unreachable, connect timeout
  reset,            // closed, reset or unparsable before the response head
  timeout,          // no response head within timeouts.upstream_response
  response,         // a response head arrived (its status decides)
};

// 1: a failure, 0: a success (resets the count), -1: neither (the attempt says nothing about
// the endpoint's health, e.g. a 500 the application chose under the old rule).
int classify(const OutlierPolicy& p, AttemptResult r, unsigned status = 0);

// One endpoint's state as the decisions see it.
struct EndpointOutlier {
  std::uint32_t consecutive_failures = 0;
  std::uint32_t times_ejected = 0;  // ever (for /status and metrics)
  std::uint32_t multiplier = 0;     // ejections in a row: the next lasts (multiplier+1) x base
  OutlierClock::time_point ejected_until{};  // epoch: never ejected
};

inline bool is_ejected(const EndpointOutlier& e, OutlierClock::time_point now) {
  return now < e.ejected_until;
}

// Whether one more endpoint may be ejected when `ejected` of `endpoints` already are: never
// more than max_ejection_percent, and (below 100%) never the last one.
bool ejection_allowed(std::uint32_t max_ejection_percent, std::size_t ejected,
                      std::size_t endpoints);

// How long the ejection with this multiplier (1 = first in a row) lasts: ejection_time x
// multiplier, capped at max_ejection_time (Envoy's rule).
OutlierClock::duration ejection_duration(const OutlierPolicy& p, std::uint32_t multiplier);

// Records a failure. When it reaches consecutive_failures and the cap allows, ejects the
// endpoint (counter reset, times_ejected and multiplier up, ejected_until set) and returns
// true. `ejected_others` counts the cluster's other endpoints ejected at `now`. An endpoint that
// stayed in for max_ejection_time since its last ejection starts again at multiplier 1.
bool record_failure(const OutlierPolicy& p, EndpointOutlier& e, OutlierClock::time_point now,
                    std::size_t ejected_others, std::size_t endpoints);

inline void record_success(EndpointOutlier& e) {
  e.consecutive_failures = 0;
}

}  // namespace gp::routing
