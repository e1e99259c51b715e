// The admin status page (GET /): one self-contained HTML document (inline CSS, JS and SVG, no
// external assets) that polls GET /status and GET /history and draws, per route, the weight as
// a progress bar across the rollout steps, the rollout state, the last judgements and charts
// of the per-version request rate, error ratio and p99 latency.
#pragma once

#include <string_view>

namespace gp::proxy {

std::string_view status_page_html();

// The Content-Security-Policy the page is served with: nothing is loaded from anywhere but
// this origin's /status and /history.
std::string_view status_page_csp();

}  // namespace gp::proxy
