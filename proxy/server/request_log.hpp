// The end of a request: its metrics and its access log line, from its RequestInfo.
#pragma once

#include <string_view>

#include "proxy/request_info.hpp"

namespace gp::proxy {

class Worker;

// The request's metrics and access log line (when the access log is on).
void record_request(Worker& w, const RequestInfo& info, unsigned status, std::string_view peer);

// The metrics only: a canary attempt that stable served still counts as a failed canary
// request for the rollout judge; the client's request is logged once, as stable's.
void record_metrics(Worker& w, const RequestInfo& info, unsigned status);

}  // namespace gp::proxy
