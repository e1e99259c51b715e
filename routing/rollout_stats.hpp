// Small-sample statistics for the rollout controller: the normal distribution, the exact
// binomial tail and bounds for one error rate, Wilson score bounds, and a one-sided test that
// one error rate exceeds another. Pure functions, no external libraries.
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

// log(Gamma(x)) for x > 0 (Lanczos). Ours because std::lgamma writes the global `signgam`
// and is not thread-safe in glibc.
double log_gamma(double x) noexcept;

// Regularized incomplete beta I_x(a, b) for a, b > 0 (continued fraction); NaN otherwise.
double beta_inc(double a, double b, double x) noexcept;

// P(X >= k) for X ~ Binomial(n, p): the exact one-sided p-value of k errors in n requests
// against "the error rate is at most p".
double binomial_tail(std::uint64_t k, std::uint64_t n, double p) noexcept;

struct Bounds {
  double lower = 0;
  double upper = 1;
};

// Clopper-Pearson ("exact") bounds for errors/n, each one-sided at `confidence`: `lower` is the
// rate at which P(X >= errors) = 1 - confidence, so lower > p0 exactly when
// binomial_tail(errors, n, p0) < 1 - confidence. Conservative; n == 0 gives {0, 1}.
Bounds exact_bounds(std::uint64_t errors, std::uint64_t n, double confidence) noexcept;

// Wilson score bounds for errors/n, each one-sided at Phi(z) (z = normal_quantile(0.95): the
// rate is above `lower` with about 95% confidence). Better than the normal ("Wald") interval
// (stays in [0, 1], sane at 0 errors), but its lower bound is too eager at a handful of errors:
// 3 in 100 gives 1.21% at 95% (exact: 0.82%) although 3 errors in 100 happen 8% of the time at
// a true 1%. So the controller decides with the exact tail; this is for cheap displays.
// n == 0 gives {0, 1}.
Bounds wilson(std::uint64_t errors, std::uint64_t n, double z) noexcept;

// One-sided two-proportion z-test p-value for H0: p1 - p2 <= delta against H1: p1 - p2 > delta
// (group 1 = canary, group 2 = stable, delta >= 0), with the Agresti-Caffo adjustment (one
// error and one success added to each group, unpooled variance). The plain pooled test is far
// too eager at a handful of errors (2 in 100 against stable's 50 in 9900 gives p = 0.02 where
// the exact binomial tail is 0.09); the adjusted one stays near or above the exact value and
// needs no special case for zero errors or a nonzero delta. 1 when either n is 0.
double two_proportion_p_value(std::uint64_t errors1, std::uint64_t n1, std::uint64_t errors2,
                              std::uint64_t n2, double delta) noexcept;

}  // namespace gp::routing::stats
