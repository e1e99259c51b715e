// Which rollout state a fleet instance may take, and which one a leader seeds etcd with. Every
// write of a route's state in etcd carries seq = previous seq + 1, and writes are
// compare-and-swap on the key's revision, so seq orders a route's states without gaps. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "routing/rollout.hpp"

namespace gp::routing {

// An instance takes a received state only when it is newer than the one it holds: a watch
// event replayed after a reconnect, a range read that raced a newer event, or another
// member's stale cache never move a weight backwards.
constexpr bool should_apply(std::uint64_t held_seq, std::uint64_t incoming_seq) noexcept {
  return incoming_seq > held_seq;
}

// What an instance holds for a route (its own cache, or what a member reported).
struct HeldState {
  std::string instance;
  std::uint64_t seq = 0;
  RolloutState state = RolloutState::idle;
  std::uint32_t weight_bp = 0;
};

// When a route has no state in etcd (a new fleet, or etcd lost its data), the leader seeds it
// from the most advanced state the fleet holds: the highest seq wins (ties: `own`, so the
// leader's full status with its evidence is kept), so no weight goes back to an older one. The
// seed is written with seq = that seq + 1. Returns `own`'s index (0) or 1 + the member's index.
struct SeedChoice {
  std::size_t index = 0;  // 0 = own, i + 1 = members[i]
  std::uint64_t seq = 1;  // to write
};
SeedChoice choose_seed(const HeldState& own, const std::vector<HeldState>& members) noexcept;

// The status a seed taken from another member starts with: its state and weight, fresh
// evidence (the member reported no judgements), `reason` saying where it came from. The
// caller passes it through RolloutController(policy, status) to place the step.
RolloutStatus seed_status(const HeldState& from, TimePoint now);

}  // namespace gp::routing
