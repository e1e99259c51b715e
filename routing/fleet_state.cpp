#include "routing/fleet_state.hpp"

namespace gp::routing {

SeedChoice choose_seed(const HeldState& own, const std::vector<HeldState>& members) noexcept {
  SeedChoice c{0, own.seq};
  for (std::size_t i = 0; i < members.size(); ++i)
    if (members[i].seq > c.seq) c = {i + 1, members[i].seq};
  c.seq += 1;
  return c;
}

RolloutStatus seed_status(const HeldState& from, TimePoint now) {
  RolloutStatus s;
  s.state = from.state;
  s.weight_bp = from.weight_bp;
  s.since = now;
  s.judge_from = now;
  s.reason = "fleet state restored from instance " + from.instance;
  return s;
}

}  // namespace gp::routing
