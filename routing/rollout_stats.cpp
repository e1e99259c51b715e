#include "routing/rollout_stats.hpp"

#include <cmath>
#include <limits>

namespace gp::routing::stats {

namespace {
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

}  // namespace gp::routing::stats
