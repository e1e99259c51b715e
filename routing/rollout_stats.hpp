// Small-sample statistics for the canary analysis: the exact binomial tail of one error rate
// (the per-window test against max_error_rate). Pure functions, no external libraries.
#pragma once

#include <cstdint>

namespace gp::routing::stats {

// log(Gamma(x)) for x > 0 (Lanczos). Ours because std::lgamma writes the global `signgam`
// and is not thread-safe in glibc.
double log_gamma(double x) noexcept;

// Regularized incomplete beta I_x(a, b) for a, b > 0 (continued fraction); NaN otherwise.
double beta_inc(double a, double b, double x) noexcept;

// P(X >= k) for X ~ Binomial(n, p): the exact one-sided p-value of k errors in n requests
// against "the error rate is at most p".
double binomial_tail(std::uint64_t k, std::uint64_t n, double p) noexcept;

}  // namespace gp::routing::stats
