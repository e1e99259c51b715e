#include "routing/rollout_stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

namespace gp::routing::stats {
namespace {

// P(X >= k) by summing the pmf, for small n only.
double tail_by_sum(std::uint64_t k, std::uint64_t n, double p) {
  double pmf = std::pow(1 - p, static_cast<double>(n));  // P(X = 0)
  double below = 0;
  for (std::uint64_t i = 0; i < k; ++i) {
    below += pmf;
    pmf *= static_cast<double>(n - i) / static_cast<double>(i + 1) * p / (1 - p);
  }
  return 1 - below;
}

// The values of the hand-written continued fraction (Lentz, Lanczos log-gamma) that Boost.Math's
// incomplete beta replaced: unchanged to 1e-9, absolute and relative. (Past a million requests
// the old one drifted: at 1e8 it was 4e-7 off; Boost.Math agrees with summation there too.)
TEST(RolloutStats, BinomialTailAsBeforeBoostMath) {
  struct Case {
    std::uint64_t k;
    std::uint64_t n;
    double p;
    double before;
  };
  const Case cases[] = {
      {1, 1, 0.5, 0.49999999999999911},
      {3, 100, 0.01, 0.079373202252177241},
      {2, 100, 0.005, 0.089822308991312813},
      {5, 50, 0.01, 0.00014568926807182513},
      {12, 400, 0.01, 0.00084928469165019345},
      {40, 2000, 0.01, 4.8115317152288599e-05},
      {150, 10000, 0.01, 1.6570601962551911e-06},
      {10500, 1000000, 0.01, 3.1585658800164333e-07},
      {10000, 1000000, 0.01, 0.50134987293213473},
      {9800, 1000000, 0.01, 0.97831742224856899},
      {300, 1000, 0.2, 3.8110446874876913e-14},
      {1, 2000, 0.0001, 0.18127743473451527},
      {20, 20, 0.05, 9.5367431640625569e-27},
      {7, 3000, 0.001, 0.033432906518056929},
      {60, 100000, 0.0005, 0.092210758411866864},
      {1000, 5000, 0.25, 1},
      {3, 7, 0.9, 0.99982349999999998},
      {500000, 1000000, 0.5, 0.50039894206882507},
  };
  for (const Case& c : cases) {
    const double now = binomial_tail(c.k, c.n, c.p);
    EXPECT_NEAR(now, c.before, 1e-9) << c.k << " of " << c.n << " at " << c.p;
    EXPECT_NEAR(now, c.before, 1e-8 * c.before) << c.k << " of " << c.n << " at " << c.p;
  }
  // 20 of 20 at 5% is exactly 0.05^20.
  EXPECT_NEAR(binomial_tail(20, 20, 0.05), std::pow(0.05, 20), 1e-12 * std::pow(0.05, 20));
  EXPECT_EQ(binomial_tail(1, 10, std::nan("")), 0);  // no rate: nothing is above it
}

TEST(RolloutStats, BinomialTailMatchesSummation) {
  for (std::uint64_t n : {1u, 10u, 100u, 1000u})
    for (double p : {0.001, 0.005, 0.01, 0.05, 0.3})
      for (std::uint64_t k = 1; k <= std::min<std::uint64_t>(n, 12); ++k)
        EXPECT_NEAR(binomial_tail(k, n, p), tail_by_sum(k, n, p), 1e-12)
            << k << " of " << n << " at " << p;
  // The numbers quoted in the comments.
  EXPECT_NEAR(binomial_tail(3, 100, 0.01), 0.0793732, 1e-6);
  EXPECT_NEAR(binomial_tail(2, 100, 0.005), 0.0898, 1e-4);
  EXPECT_EQ(binomial_tail(0, 100, 0.01), 1);
  EXPECT_EQ(binomial_tail(101, 100, 0.01), 0);
  EXPECT_EQ(binomial_tail(1, 100, 0), 0);
  EXPECT_EQ(binomial_tail(1, 100, 1), 1);
  // Large counts stay accurate and fast: 10500 errors in 1e6 at 1% is about 5 sigma.
  EXPECT_NEAR(binomial_tail(10500, 1000000, 0.01), 2.9e-7, 0.3e-7);
  EXPECT_NEAR(binomial_tail(10000, 1000000, 0.01), 0.5, 0.01);
}

}  // namespace
}  // namespace gp::routing::stats
