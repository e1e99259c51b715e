// What the rollout controller reads of one version's metrics window: counts, the p99 for
// display, the A/A half and the requests slower than the policy's max_p99_latency. One place for
// the single-instance manager and the fleet's leader, so both judge the same numbers.
#pragma once

#include "config/config.hpp"
#include "metrics/window.hpp"
#include "routing/rollout.hpp"

namespace gp::proxy {

routing::VersionWindow to_version_window(const metrics::Window& w, const config::Rollout& policy);

}  // namespace gp::proxy
