// The JSON documents fleet mode keeps in etcd: a member's report (PREFIX/members/ID) and a
// route's state (PREFIX/state/ROUTE). The route state reuses the state file's rollout status,
// so etcd, /status and the local cache hold the same document.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "metrics/fleet_window.hpp"
#include "routing/fleet_state.hpp"
#include "routing/rollout.hpp"

namespace gp::proxy {

struct MemberReport {
  std::string instance;
  std::string admin;         // the member's admin address, for operators
  std::int64_t time_ms = 0;  // wall clock when it was published
  metrics::MemberTotals totals;
  std::map<std::string, routing::HeldState> held;  // per route: the state it applied
};

struct RouteDoc {
  std::uint64_t seq = 0;     // previous seq + 1 (compare-and-swap keeps it gap-free)
  std::string writer;        // the instance that wrote it
  std::string cause;         // judgement | admin | reload | seed
  std::int64_t time_ms = 0;  // wall clock of the write
  std::uint32_t weight_bp = 0;
  std::optional<routing::RolloutStatus> rollout;  // routes with a rollout policy
};

std::string to_text(const MemberReport& r);
std::string to_text(const RouteDoc& d);
// Throw std::exception on a document that is not one.
MemberReport report_from_text(std::string_view text);
RouteDoc route_doc_from_text(std::string_view text);

}  // namespace gp::proxy
