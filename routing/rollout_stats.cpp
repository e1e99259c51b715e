#include "routing/rollout_stats.hpp"

#include <cmath>
#include <limits>

namespace gp::routing::stats {

namespace {
constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double kSqrt2Pi = 2.50662827463100050242;
constexpr double kPi = 3.14159265358979323846;
}  // namespace

double log_gamma(double x) noexcept {
  // Lanczos (g = 7, n = 9), valid for x > 0. Our own because std::lgamma writes the global
  // `signgam` and is not thread-safe in glibc.
  static constexpr double c[] = {
      0.99999999999980993,  676.5203681218851,     -1259.1392167224028,
      771.32342877765313,   -176.61502916214059,   12.507343278686905,
      -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};
  if (x < 0.5) return std::log(kPi / std::abs(std::sin(kPi * x))) - log_gamma(1 - x);
  x -= 1;
  double a = c[0];
  const double t = x + 7.5;
  for (int i = 1; i < 9; ++i) a += c[i] / (x + i);
  return 0.5 * std::log(2 * kPi) + (x + 0.5) * std::log(t) - t + std::log(a);
}

namespace {

// Continued fraction for the incomplete beta (modified Lentz), converging for x < (a+1)/(a+b+2).
double beta_cf(double a, double b, double x) noexcept {
  constexpr double kTiny = 1e-300;
  constexpr double kEps = 1e-15;
  const double qab = a + b;
  const double qap = a + 1;
  const double qam = a - 1;
  double c = 1;
  double d = 1 - qab * x / qap;
  if (std::abs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  // Needs about sqrt(max(a, b)) terms; the cap covers counts into the billions.
  for (int m = 1; m <= 1000000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::abs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::abs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::abs(del - 1) < kEps) break;
  }
  return h;
}

}  // namespace

double beta_inc(double a, double b, double x) noexcept {
  if (std::isnan(x) || std::isnan(a) || std::isnan(b) || a <= 0 || b <= 0)
    return std::numeric_limits<double>::quiet_NaN();
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double log_front =
      log_gamma(a + b) - log_gamma(a) - log_gamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return std::exp(log_front) * beta_cf(a, b, x) / a;
  return 1 - std::exp(log_front) * beta_cf(b, a, 1 - x) / b;
}

double binomial_tail(std::uint64_t k, std::uint64_t n, double p) noexcept {
  if (k == 0) return 1;
  if (k > n) return 0;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  return beta_inc(static_cast<double>(k), static_cast<double>(n - k) + 1, p);
}

Bounds exact_bounds(std::uint64_t errors, std::uint64_t n, double confidence) noexcept {
  if (n == 0) return {0, 1};
  const double alpha = 1 - confidence;
  Bounds b;
  // Bisection: the tails are monotonic in p; stop at 12 significant digits.
  auto solve = [](auto tail_minus_target, double lo, double hi) {
    for (int i = 0; i < 100 && hi - lo > 1e-12 * hi; ++i) {
      const double mid = (lo + hi) / 2;
      (tail_minus_target(mid) < 0 ? lo : hi) = mid;
    }
    return (lo + hi) / 2;
  };
  const double p_hat = static_cast<double>(errors) / static_cast<double>(n);
  // lower: P(X >= errors | p) = alpha, increasing in p.
  b.lower = errors == 0
                ? 0
                : solve([&](double p) { return binomial_tail(errors, n, p) - alpha; }, 0, p_hat);
  // upper: P(X <= errors | p) = alpha, decreasing in p.
  b.upper = errors >= n
                ? 1
                : solve([&](double p) { return alpha - (1 - binomial_tail(errors + 1, n, p)); },
                        p_hat, 1);
  return b;
}

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
