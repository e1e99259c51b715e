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

TEST(RolloutStats, NormalCdfAndTail) {
  EXPECT_DOUBLE_EQ(normal_cdf(0), 0.5);
  EXPECT_NEAR(normal_cdf(1.959963984540054), 0.975, 1e-15);
  EXPECT_NEAR(normal_cdf(-1.6448536269514722), 0.05, 1e-15);
  EXPECT_NEAR(normal_sf(5) / 2.866515718791939e-7, 1, 1e-12);  // no cancellation in the tail
  EXPECT_NEAR(normal_sf(-2) + normal_cdf(-2), 1, 1e-15);
}

TEST(RolloutStats, NormalQuantile) {
  EXPECT_NEAR(normal_quantile(0.5), 0, 1e-15);
  EXPECT_NEAR(normal_quantile(0.95), 1.6448536269514722, 1e-13);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-13);
  EXPECT_NEAR(normal_quantile(0.99), 2.3263478740408408, 1e-13);
  EXPECT_NEAR(normal_quantile(0.9999), 3.7190164854556804, 1e-12);
  EXPECT_NEAR(normal_quantile(1e-10), -6.361340902404056, 1e-10);
  EXPECT_NEAR(normal_quantile(0.01), -normal_quantile(0.99), 1e-13);
  for (double p = 0.001; p < 1; p += 0.0137) EXPECT_NEAR(normal_cdf(normal_quantile(p)), p, 1e-14);
  EXPECT_EQ(normal_quantile(0), -INFINITY);
  EXPECT_EQ(normal_quantile(1), INFINITY);
  EXPECT_TRUE(std::isnan(normal_quantile(-0.1)));
  EXPECT_TRUE(std::isnan(normal_quantile(1.1)));
  EXPECT_TRUE(std::isnan(normal_quantile(NAN)));
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

TEST(RolloutStats, ExactBounds) {
  // 0 of n: upper = 1 - alpha^(1/n); n of n: lower = alpha^(1/n).
  EXPECT_NEAR(exact_bounds(0, 100, 0.95).upper, 1 - std::pow(0.05, 0.01), 1e-10);
  EXPECT_EQ(exact_bounds(0, 100, 0.95).lower, 0);
  EXPECT_NEAR(exact_bounds(20, 20, 0.99).lower, std::pow(0.01, 0.05), 1e-10);
  EXPECT_EQ(exact_bounds(20, 20, 0.99).upper, 1);
  // The defining property: at the lower bound the tail is exactly alpha.
  const Bounds b = exact_bounds(3, 100, 0.95);
  EXPECT_NEAR(binomial_tail(3, 100, b.lower), 0.05, 1e-9);
  EXPECT_NEAR(1 - binomial_tail(4, 100, b.upper), 0.05, 1e-9);
  EXPECT_NEAR(b.lower, 0.0082, 0.0001);
  // lower > p0 exactly when the tail p-value is below alpha.
  EXPECT_GT(exact_bounds(4, 100, 0.95).lower, 0.01);
  EXPECT_LT(binomial_tail(4, 100, 0.01), 0.05);
  EXPECT_LT(exact_bounds(3, 100, 0.95).lower, 0.01);
  EXPECT_GT(binomial_tail(3, 100, 0.01), 0.05);
  const Bounds none = exact_bounds(0, 0, 0.95);
  EXPECT_EQ(none.lower, 0);
  EXPECT_EQ(none.upper, 1);
}

TEST(RolloutStats, Wilson) {
  const double z = normal_quantile(0.95);
  // 0 errors: upper = z^2 / (n + z^2).
  EXPECT_NEAR(wilson(0, 100, z).upper, z * z / (100 + z * z), 1e-15);
  EXPECT_EQ(wilson(0, 100, z).lower, 0);
  EXPECT_EQ(wilson(100, 100, z).upper, 1);
  const Bounds w = wilson(30, 100, z);
  const Bounds mirror = wilson(70, 100, z);
  EXPECT_NEAR(w.lower, 1 - mirror.upper, 1e-15);
  EXPECT_NEAR(w.upper, 1 - mirror.lower, 1e-15);
  EXPECT_LT(w.lower, 0.3);
  EXPECT_GT(w.upper, 0.3);
  // Why the controller does not decide with it: at 3 in 100 its lower bound claims > 1%.
  EXPECT_NEAR(wilson(3, 100, z).lower, 0.0121, 0.0001);
  EXPECT_LT(exact_bounds(3, 100, 0.95).lower, wilson(3, 100, z).lower);
  EXPECT_EQ(wilson(0, 0, z).lower, 0);
  EXPECT_EQ(wilson(0, 0, z).upper, 1);
}

TEST(RolloutStats, TwoProportionTest) {
  // A handful of canary errors against a 0.5% stable: not significant at 95%, near the exact
  // binomial tail (0.09), unlike the pooled z-test.
  const double p = two_proportion_p_value(2, 100, 50, 9900, 0);
  EXPECT_GT(p, 0.05);
  EXPECT_LT(p, 0.1);
  const double pooled_rate = 52.0 / 10000;
  const double pooled_z =
      (0.02 - 50.0 / 9900) / std::sqrt(pooled_rate * (1 - pooled_rate) * (1.0 / 100 + 1.0 / 9900));
  EXPECT_NEAR(normal_sf(pooled_z), 0.02, 0.002);  // the number quoted in the header
  // Equal rates with plenty of traffic: about 0.5; clearly worse: tiny.
  EXPECT_NEAR(two_proportion_p_value(1000, 100000, 1000, 100000, 0), 0.5, 0.01);
  EXPECT_LT(two_proportion_p_value(50, 1000, 50, 10000, 0), 1e-6);
  // Monotonic: more canary errors, smaller p; a larger allowed increase, larger p.
  EXPECT_LT(two_proportion_p_value(6, 100, 50, 9900, 0),
            two_proportion_p_value(5, 100, 50, 9900, 0));
  EXPECT_GT(two_proportion_p_value(20, 1000, 5, 1000, 0.01),
            two_proportion_p_value(20, 1000, 5, 1000, 0));
  // No errors at all: no evidence of anything.
  EXPECT_GT(two_proportion_p_value(0, 100, 0, 10000, 0), 0.1);
  EXPECT_EQ(two_proportion_p_value(5, 0, 5, 100, 0), 1);
  EXPECT_EQ(two_proportion_p_value(5, 100, 5, 0, 0), 1);
}

}  // namespace
}  // namespace gp::routing::stats
