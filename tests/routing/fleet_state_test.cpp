// Which fleet state an instance may take, and where a leader seeds a missing one from.
#include "routing/fleet_state.hpp"

#include <gtest/gtest.h>

namespace gp::routing {
namespace {

const TimePoint kT0 = TimePoint{} + std::chrono::hours(24 * 365 * 55);

TEST(FleetState, OnlyNewerStatesAreApplied) {
  EXPECT_TRUE(should_apply(0, 1));
  EXPECT_TRUE(should_apply(41, 42));
  EXPECT_FALSE(should_apply(42, 42));  // the same state again (watch replay)
  EXPECT_FALSE(should_apply(42, 41));  // an older one (a range that raced an event)
}

TEST(FleetState, SeedKeepsTheOwnStateOnTies) {
  HeldState own{"a", 7, RolloutState::progressing, 2500};
  auto c = choose_seed(own, {HeldState{"b", 7, RolloutState::progressing, 2500},
                             HeldState{"c", 3, RolloutState::progressing, 500}});
  EXPECT_EQ(c.index, 0u);
  EXPECT_EQ(c.seq, 8u);
}

TEST(FleetState, SeedTakesTheMostAdvancedMember) {
  // A leader restarted without its cache (seq 0, YAML weight) must not take the fleet back.
  HeldState own{"a", 0, RolloutState::progressing, 100};
  std::vector<HeldState> members{HeldState{"b", 12, RolloutState::progressing, 5000},
                                 HeldState{"c", 11, RolloutState::progressing, 2500}};
  auto c = choose_seed(own, members);
  EXPECT_EQ(c.index, 1u);
  EXPECT_EQ(c.seq, 13u);
  auto s = seed_status(members[c.index - 1], kT0);
  EXPECT_EQ(s.state, RolloutState::progressing);
  EXPECT_EQ(s.weight_bp, 5000u);
  EXPECT_EQ(s.since, kT0);
  EXPECT_NE(s.reason.find("instance b"), std::string::npos);
}

TEST(FleetState, SeedWithoutMembers) {
  auto c = choose_seed(HeldState{"a", 0, RolloutState::idle, 1000}, {});
  EXPECT_EQ(c.index, 0u);
  EXPECT_EQ(c.seq, 1u);
}

TEST(FleetState, SeededStatusPlacesTheStepThroughTheController) {
  config::Rollout p;
  p.steps_bp = {1000, 5000, 10000};
  auto s = seed_status(HeldState{"b", 4, RolloutState::progressing, 5000}, kT0);
  RolloutController ctl(p, s);
  EXPECT_EQ(ctl.status().step_index, 1);
  EXPECT_EQ(ctl.weight_bp(), 5000u);
  EXPECT_EQ(ctl.state(), RolloutState::progressing);
  // A promoted member's seed stays promoted at 100%.
  RolloutController done(p, seed_status(HeldState{"b", 9, RolloutState::promoted, 10000}, kT0));
  EXPECT_EQ(done.state(), RolloutState::promoted);
  EXPECT_EQ(done.weight_bp(), 10000u);
}

}  // namespace
}  // namespace gp::routing
