#include "routing/rollout_stats.hpp"

#include <algorithm>
#include <boost/math/policies/policy.hpp>
#include <boost/math/special_functions/beta.hpp>
#include <cmath>
#include <limits>

namespace gp::routing::stats {

namespace {
// Errors become NaN or a clamped value, never an exception or errno: the callers' arguments are
// checked, and a judgement must not throw.
namespace policies = boost::math::policies;
using NoThrow = policies::policy<policies::domain_error<policies::ignore_error>,
                                 policies::pole_error<policies::ignore_error>,
                                 policies::overflow_error<policies::ignore_error>,
                                 policies::evaluation_error<policies::ignore_error>>;
}  // namespace

double binomial_llr(double k, double n, double p0, double p1) noexcept {
  double llr = 0;
  if (k > 0) llr += k * std::log(p1 / p0);
  if (n > k) llr += (n - k) * std::log1p(-p1) - (n - k) * std::log1p(-p0);
  return llr;
}

double error_share(double w, double rho) noexcept {
  return rho * w / (rho * w + 1 - w);
}

std::optional<RankShift> rank_shift(const LatencyBins& canary, const LatencyBins& stable,
                                    double scale) noexcept {
  double n1 = 0;
  double n2 = 0;
  for (const LatencyBin& b : canary) n1 += static_cast<double>(b.count);
  for (const LatencyBin& b : stable) n2 += static_cast<double>(b.count);
  if (n1 == 0 || n2 == 0 || !(scale > 0)) return std::nullopt;
  // One pass over both ascending lists, a distinct value at a time: U counts, for every canary
  // latency, the stable ones below it and half the ones equal to it.
  constexpr double inf = std::numeric_limits<double>::infinity();
  std::size_t i = 0;
  std::size_t j = 0;
  double below = 0;
  double u = 0;
  double ties = 0;  // sum of t^3 - t over tied groups
  while (i < canary.size() || j < stable.size()) {
    const double x = std::min(i < canary.size() ? canary[i].seconds / scale : inf,
                              j < stable.size() ? stable[j].seconds : inf);
    const double edge = x + std::abs(x) * 1e-9;  // equal up to the division's rounding
    double a = 0;
    double b = 0;
    for (; i < canary.size() && canary[i].seconds / scale <= edge; ++i)
      a += static_cast<double>(canary[i].count);
    for (; j < stable.size() && stable[j].seconds <= edge; ++j)
      b += static_cast<double>(stable[j].count);
    u += a * (below + b / 2);
    below += b;
    const double t = a + b;
    ties += t * t * t - t;
  }
  const double n = n1 + n2;
  const double var_u = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)));
  if (!(var_u > 0)) return std::nullopt;
  const double pairs = n1 * n2;
  return RankShift{u / pairs - 0.5, var_u / (pairs * pairs)};
}

double binomial_tail(std::uint64_t k, std::uint64_t n, double p) noexcept {
  if (k == 0) return 1;
  if (k > n) return 0;
  if (!(p > 0)) return 0;
  if (p >= 1) return 1;
  // P(X >= k) = I_p(k, n - k + 1).
  return boost::math::ibeta(static_cast<double>(k), static_cast<double>(n - k) + 1, p, NoThrow());
}

}  // namespace gp::routing::stats
