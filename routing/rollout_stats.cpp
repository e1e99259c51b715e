#include "routing/rollout_stats.hpp"

#include <cmath>
#include <limits>

namespace gp::routing::stats {

namespace {
constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double kSqrt2Pi = 2.50662827463100050242;
}  // namespace

double normal_cdf(double z) noexcept {
  return 0.5 * std::erfc(-z / kSqrt2);
}

double normal_sf(double z) noexcept {
  return 0.5 * std::erfc(z / kSqrt2);
}

double normal_quantile(double p) noexcept {
  if (std::isnan(p) || p < 0 || p > 1) return std::numeric_limits<double>::quiet_NaN();
  if (p == 0) return -std::numeric_limits<double>::infinity();
  if (p == 1) return std::numeric_limits<double>::infinity();
  // Acklam (2003): relative error below 1.15e-9 before refinement.
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                 -2.759285104469687e+02, 1.383577518672690e+02,
                                 -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                 -1.556989798598866e+02, 6.680131188771972e+01,
                                 -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                 -2.400758277161838e+00, -2.549732539343734e+00,
                                 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                                 2.445134137142996e+00, 3.754408661907416e+00};
  constexpr double p_low = 0.02425;
  double x;
  if (p < p_low) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - p_low) {
    const double q = p - 0.5;
    const double r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  // One Halley step against the erfc-based CDF brings it to full double precision.
  const double e = normal_cdf(x) - p;
  const double u = e * kSqrt2Pi * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

Bounds wilson(std::uint64_t errors, std::uint64_t n, double z) noexcept {
  if (n == 0) return {0, 1};
  const double nn = static_cast<double>(n);
  const double p = static_cast<double>(errors) / nn;
  const double z2 = z * z;
  const double denom = 1 + z2 / nn;
  const double center = (p + z2 / (2 * nn)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
  Bounds b{center - half, center + half};
  // Exact at the edges (rounding would otherwise leave e.g. 1e-18 for 0 errors).
  if (errors == 0 || b.lower < 0) b.lower = 0;
  if (errors >= n || b.upper > 1) b.upper = 1;
  return b;
}

double rate_above_p_value(std::uint64_t errors, std::uint64_t n, double p0) noexcept {
  if (n == 0) return 1;
  if (p0 <= 0) return errors > 0 ? 0 : 1;
  if (p0 >= 1) return 1;
  const double nn = static_cast<double>(n);
  const double p = static_cast<double>(errors) / nn;
  return normal_sf((p - p0) / std::sqrt(p0 * (1 - p0) / nn));
}

double two_proportion_p_value(std::uint64_t errors1, std::uint64_t n1, std::uint64_t errors2,
                              std::uint64_t n2, double delta) noexcept {
  if (n1 == 0 || n2 == 0) return 1;
  const double m1 = static_cast<double>(n1) + 2;
  const double m2 = static_cast<double>(n2) + 2;
  const double p1 = (static_cast<double>(errors1) + 1) / m1;
  const double p2 = (static_cast<double>(errors2) + 1) / m2;
  const double se = std::sqrt(p1 * (1 - p1) / m1 + p2 * (1 - p2) / m2);
  return normal_sf((p1 - p2 - delta) / se);
}

}  // namespace gp::routing::stats
