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

TEST(RolloutStats, LogGammaMatchesLibm) {
  for (double x : {0.5, 1.0, 1.5, 2.0, 3.7, 10.0, 101.0, 12345.6, 1e6, 1e9})
    EXPECT_NEAR(log_gamma(x), std::lgamma(x), 1e-12 * std::max(1.0, std::abs(std::lgamma(x)))) << x;
}

TEST(RolloutStats, IncompleteBeta) {
  EXPECT_NEAR(beta_inc(1, 1, 0.3), 0.3, 1e-14);    // uniform
  EXPECT_NEAR(beta_inc(2, 1, 0.3), 0.09, 1e-14);   // x^2
  EXPECT_NEAR(beta_inc(1, 3, 0.2), 0.488, 1e-14);  // 1 - (1-x)^3
  EXPECT_NEAR(beta_inc(5, 7, 0.4) + beta_inc(7, 5, 0.6), 1, 1e-14);
  EXPECT_EQ(beta_inc(2, 3, 0), 0);
  EXPECT_EQ(beta_inc(2, 3, 1), 1);
  EXPECT_TRUE(std::isnan(beta_inc(0, 3, 0.5)));
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
