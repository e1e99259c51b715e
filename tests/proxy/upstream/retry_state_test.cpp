#include "proxy/upstream/retry_state.hpp"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace gp::proxy {
namespace {

// pick_endpoint with a set of ejected indices and a list of tried ones.
std::optional<std::size_t> pick(std::size_t n, std::uint32_t start, std::set<std::size_t> ejected,
                                std::vector<std::size_t> tried = {}) {
  return pick_endpoint(
      n, start, [&](std::size_t i) { return ejected.count(i) > 0; },
      std::span<const std::size_t>(tried));
}

TEST(PickEndpoint, RoundRobinFromStart) {
  EXPECT_EQ(pick(3, 0, {}), 0u);
  EXPECT_EQ(pick(3, 1, {}), 1u);
  EXPECT_EQ(pick(3, 2, {}), 2u);
  // start is a running counter: taken modulo n.
  EXPECT_EQ(pick(3, 7, {}), 1u);
}

TEST(PickEndpoint, SkipsEjectedAndWrapsAround) {
  EXPECT_EQ(pick(3, 1, {1}), 2u);
  EXPECT_EQ(pick(3, 2, {2}), 0u);     // past the end: back to the first
  EXPECT_EQ(pick(4, 3, {3, 0}), 1u);  // two skipped across the wrap
}

TEST(PickEndpoint, PrefersUntried) {
  EXPECT_EQ(pick(3, 0, {}, {0}), 1u);
  EXPECT_EQ(pick(3, 0, {}, {0, 1}), 2u);
  EXPECT_EQ(pick(3, 2, {}, {2, 0}), 1u);  // wraps to find the untried one
  EXPECT_EQ(pick(3, 0, {1}, {0}), 2u);    // untried and not ejected
}

TEST(PickEndpoint, FallsBackToTriedWhenEveryUntriedIsEjected) {
  // 1 and 2 untried but ejected: the first non-ejected from start, tried or not.
  EXPECT_EQ(pick(3, 0, {1, 2}, {0}), 0u);
  EXPECT_EQ(pick(3, 1, {1}, {0, 2}), 2u);
  // Everything tried, nothing ejected: plain round robin again.
  EXPECT_EQ(pick(3, 1, {}, {0, 1, 2}), 1u);
}

TEST(PickEndpoint, NoneWhenAllEjectedOrEmpty) {
  EXPECT_EQ(pick(3, 0, {0, 1, 2}), std::nullopt);
  EXPECT_EQ(pick(3, 0, {0, 1, 2}, {0}), std::nullopt);
  EXPECT_EQ(pick(0, 0, {}), std::nullopt);
}

TEST(RetryState, MayRetryOnlyForPolicyConditions) {
  const config::Retries policy{2, config::kRetryConnectFailure | config::kRetry503};
  RetryState rs(policy, true);
  EXPECT_TRUE(rs.may_retry(config::kRetryConnectFailure, false));
  EXPECT_TRUE(rs.may_retry(config::kRetry503, true));
  EXPECT_FALSE(rs.may_retry(config::kRetryReset, false));
  EXPECT_FALSE(rs.may_retry(config::kRetryTimeout, false));
  EXPECT_FALSE(rs.may_retry(config::kRetry502, true));
  EXPECT_FALSE(rs.may_retry(config::kRetry504, true));
}

TEST(RetryState, AttemptsAreCounted) {
  RetryState rs(config::Retries{2, config::kRetryConnectFailure}, true);
  EXPECT_TRUE(rs.may_retry(config::kRetryConnectFailure, false));
  rs.use_retry();
  EXPECT_TRUE(rs.may_retry(config::kRetryConnectFailure, false));
  rs.use_retry();
  EXPECT_FALSE(rs.may_retry(config::kRetryConnectFailure, false));

  RetryState none(config::Retries{0, config::kRetryConnectFailure}, true);
  EXPECT_FALSE(none.may_retry(config::kRetryConnectFailure, false));
}

// A request whose bytes went out may only go again when sending it twice is harmless.
TEST(RetryState, SentRequestsRetryOnlyWhenResendable) {
  const config::Retries policy{3, config::kRetryReset | config::kRetry502};
  RetryState once(policy, false);
  EXPECT_FALSE(once.may_retry(config::kRetryReset, true));
  EXPECT_FALSE(once.may_retry(config::kRetry502, true));
  EXPECT_TRUE(once.may_retry(config::kRetryReset, false));  // nothing sent: safe

  RetryState twice(policy, true);
  EXPECT_TRUE(twice.may_retry(config::kRetryReset, true));
}

TEST(RetryState, StaleRetryOnceAndOnlyWhenResendable) {
  RetryState rs(config::Retries{1, config::kRetryReset}, true);
  EXPECT_TRUE(rs.may_retry_stale());
  EXPECT_FALSE(rs.stale_used());
  rs.use_stale_retry();
  EXPECT_FALSE(rs.may_retry_stale());
  EXPECT_TRUE(rs.stale_used());
  // Not a retry of the policy: its attempt is still there.
  EXPECT_TRUE(rs.may_retry(config::kRetryReset, false));

  RetryState post(config::Retries{1, config::kRetryReset}, false);
  EXPECT_FALSE(post.may_retry_stale());
}

TEST(RetryState, RemembersTriedEndpoints) {
  RetryState rs(config::Retries{}, true);
  EXPECT_TRUE(rs.tried().empty());
  rs.tried(2);
  rs.tried(0);
  ASSERT_EQ(rs.tried().size(), 2u);
  EXPECT_EQ(rs.tried()[0], 2u);
  EXPECT_EQ(rs.tried()[1], 0u);
  // What pick_endpoint gets: the next untried one after them.
  EXPECT_EQ(pick_endpoint(
                3, 2, [](std::size_t) { return false; }, rs.tried()),
            1u);
}

TEST(EffectiveRetries, RoutePolicyWins) {
  config::Route route;
  route.retries = config::Retries{5, config::kRetry503 | config::kRetryTimeout};
  EXPECT_EQ(effective_retries(route, 3), *route.retries);
  route.retries = config::Retries{0, config::kRetryConnectFailure};
  EXPECT_EQ(effective_retries(route, 3).attempts, 0u);  // an explicit "no retries" is kept
}

// Without a policy: a failed connect moves on to each other endpoint once, nothing else.
TEST(EffectiveRetries, DefaultIsOneConnectRetryPerOtherEndpoint) {
  const config::Route route;
  ASSERT_FALSE(route.retries);
  const config::Retries three = effective_retries(route, 3);
  EXPECT_EQ(three.attempts, 2u);
  EXPECT_EQ(three.on, config::kRetryConnectFailure);
  EXPECT_EQ(effective_retries(route, 1).attempts, 0u);
  EXPECT_EQ(effective_retries(route, 0).attempts, 0u);
}

}  // namespace
}  // namespace gp::proxy
