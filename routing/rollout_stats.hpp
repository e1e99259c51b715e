// Small-sample statistics for the rollout controller: normal distribution, Wilson score bounds
// for one error rate, and a one-sided test that one error rate exceeds another. Pure functions,
// no external libraries (std::erfc only).
#pragma once

#include <cstdint>

namespace gp::routing::stats {

// Standard normal CDF, Phi(z).
double normal_cdf(double z) noexcept;

// 1 - Phi(z), computed directly so that tiny upper-tail p-values keep their precision.
double normal_sf(double z) noexcept;

// Phi^-1(p): -Inf at 0, +Inf at 1, NaN outside [0, 1]. Acklam's rational approximation
// refined by one Halley step, accurate to about 1e-15.
double normal_quantile(double p) noexcept;

struct Bounds {
  double lower = 0;
  double upper = 1;
};

// Wilson score bounds for errors/n. Each bound is one-sided at Phi(z): with z =
// normal_quantile(0.95) the true rate is above `lower` with 95% confidence. Chosen over the
// normal ("Wald") interval because it stays inside [0, 1] and behaves at 0 errors and small n,
// which is exactly the low-traffic canary case. n == 0 gives {0, 1} (no information).
Bounds wilson(std::uint64_t errors, std::uint64_t n, double z) noexcept;

// One-sided score-test p-value for H0: rate <= p0 against H1: rate > p0; the test that is dual
// to the Wilson bound (p < 1 - c exactly when wilson(...).lower > p0 at z = Phi^-1(c)).
// 1 for n == 0; for p0 == 0 it is 0 with any error, 1 without.
double rate_above_p_value(std::uint64_t errors, std::uint64_t n, double p0) noexcept;

// One-sided two-proportion z-test p-value for H0: p1 - p2 <= delta against H1: p1 - p2 > delta
// (group 1 = canary, group 2 = stable, delta >= 0). Uses the Agresti-Caffo adjustment (one
// error and one success added to each group, unpooled variance): the plain pooled test is far
// too eager at a handful of errors (2 errors in 100 against a 0.5% stable gives p = 0.02 where
// the exact binomial tail is 0.09), while the adjusted one stays near or above the exact value
// and needs no special case for zero errors or a nonzero delta. 1 when either n is 0.
double two_proportion_p_value(std::uint64_t errors1, std::uint64_t n1, std::uint64_t errors2,
                              std::uint64_t n2, double delta) noexcept;

}  // namespace gp::routing::stats
