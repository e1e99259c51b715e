#include "routing/canary_evidence.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "routing/rollout_stats.hpp"

namespace gp::routing {

namespace stats {

double binomial_llr(double k, double n, double p0, double p1) noexcept {
  double llr = 0;
  if (k > 0) llr += k * std::log(p1 / p0);
  if (n > k) llr += (n - k) * std::log1p(-p1) - (n - k) * std::log1p(-p0);
  return llr;
}

double error_share(double w, double rho) noexcept {
  return rho * w / (rho * w + 1 - w);
}

}  // namespace stats

namespace {

using Components = std::array<double, CanaryEvidence::kComponents>;

// Half the prior weight on the alternative the operator named, the rest spread evenly over the
// larger ones: moderate regressions lose little power, gross ones fail within an interval.
Components first_heavy_log_weights() {
  Components w{};
  w[0] = std::log(0.5);
  for (std::size_t j = 1; j < w.size(); ++j) w[j] = std::log(0.5 / (w.size() - 1));
  return w;
}

// Rates above p0 for a binomial mixture: 2 p0, 4 p0, ... kept below 1.
double alternative_rate(double p0, std::size_t j) {
  const double scale = std::ldexp(1.0, static_cast<int>(j) + 1);
  return std::min(p0 * scale, 1 - (1 - p0) / scale);
}

double log_sum_exp(const Components& x) {
  const double top = *std::max_element(x.begin(), x.end());
  if (!std::isfinite(top)) return top;
  double sum = 0;
  for (const double v : x) sum += std::exp(v - top);
  return top + std::log(sum);
}

// Pearson terms of one version's A/A split: the half's errors against their expectation given
// the version's errors, and that expectation's binomial variance.
std::pair<double, double> split_terms(const VersionCounts& v) {
  const Counts& all = v.all;
  const Counts& half = v.half;
  if (all.errors == 0 || half.requests == 0 || half.requests >= all.requests ||
      half.errors > all.errors)
    return {0, 0};
  const double h = static_cast<double>(half.requests) / static_cast<double>(all.requests);
  const auto e = static_cast<double>(all.errors);
  const double dev = static_cast<double>(half.errors) - e * h;
  return {dev * dev, e * h * (1 - h)};
}

}  // namespace

CanaryEvidence::CanaryEvidence(EvidencePolicy p) : p_(p) {
  p_.max_error_rate_ratio = std::max(p_.max_error_rate_ratio, 1.01);
  p_.alpha = std::clamp(p_.alpha, 1e-9, 0.5);
  p_.beta = std::clamp(p_.beta, 1e-9, 0.5);
  if (!(p_.full_evidence_weight > 0)) p_.full_evidence_weight = 1;
  if (!(p_.max_error_rate > 0 && p_.max_error_rate < 1))
    p_.max_error_rate = std::numeric_limits<double>::quiet_NaN();
  p_.dispersion_prior = std::max(p_.dispersion_prior, 1e-9);
}

double CanaryEvidence::dispersion() const {
  return std::max(
      1.0, (dispersion_num_ + p_.dispersion_prior) / (dispersion_den_ + p_.dispersion_prior));
}

TestReading CanaryEvidence::read(const Components& llr, const Components& log_weights,
                                 double interval_llr, bool active, double phi,
                                 std::size_t pass_component) const {
  TestReading r;
  r.active = active;
  Components terms{};
  for (std::size_t j = 0; j < terms.size(); ++j) terms[j] = log_weights[j] + llr[j] / phi;
  r.fail_log_e = log_sum_exp(terms);
  r.pass_log_lr = llr[pass_component] / phi;
  r.pass_bound = std::log(p_.beta);
  r.interval_llr = interval_llr / phi;
  r.over = active && r.fail_log_e >= std::log(1 / p_.alpha);
  r.fail = r.over && r.interval_llr > 0;
  r.pass = active && !r.over && r.pass_log_lr <= r.pass_bound;
  return r;
}

EvidenceReading CanaryEvidence::add(const VersionCounts& canary, const VersionCounts& stable,
                                    double weight) {
  EvidenceReading out;
  for (const VersionCounts* v : {&canary, &stable}) {
    const auto [num, den] = split_terms(*v);
    dispersion_num_ += num;
    dispersion_den_ += den;
  }
  const double phi = dispersion();
  out.dispersion = phi;
  out.fail_log_threshold = std::log(1 / p_.alpha);
  // The pass alternative for this weight: ratio x 2^floor(log2(full_evidence_weight / weight)).
  const std::size_t pass_component = [&]() -> std::size_t {
    if (!(weight > 0) || weight >= p_.full_evidence_weight) return 0;
    const double j = std::floor(std::log2(p_.full_evidence_weight / weight));
    return static_cast<std::size_t>(std::min<double>(j, kComponents - 1));
  }();

  const auto n = static_cast<double>(canary.all.requests);
  const auto m = static_cast<double>(stable.all.requests);
  const auto e = static_cast<double>(std::min(canary.all.errors, canary.all.requests));
  const auto es = static_cast<double>(std::min(stable.all.errors, stable.all.requests));

  // Relative: the canary's share of this interval's errors.
  const Components heavy = first_heavy_log_weights();
  double relative_step = 0;
  if (n > 0 && m > 0) {
    relative_active_ = true;
    const double w = n / (n + m);
    for (std::size_t j = 0; j < relative_.size(); ++j) {
      const double theta = stats::error_share(w, std::ldexp(p_.max_error_rate_ratio, int(j)));
      const double llr = stats::binomial_llr(e, e + es, w, theta);
      relative_[j] += llr;
      if (j == 0) relative_step = llr;
    }
  }
  out.relative = read(relative_, heavy, relative_step, relative_active_, phi, pass_component);
  out.relative.pass_ratio = std::ldexp(p_.max_error_rate_ratio, static_cast<int>(pass_component));
  if (relative_active_ && !out.relative.pass && !out.relative.fail && m > 0 && es > 0) {
    // Under rho = 1 each error moves the pass statistic down by KL(w || theta) on average.
    const double w = n / (n + m);
    const double theta = stats::error_share(w, out.relative.pass_ratio);
    const double kl = w * std::log(w / theta) + (1 - w) * std::log((1 - w) / (1 - theta));
    const double errors_per_request = es / m;  // stable's rate, for both under rho = 1
    const double drift_per_canary_request = errors_per_request * (n + m) / n * kl / phi;
    if (drift_per_canary_request > 0)
      out.requests_to_pass =
          (out.relative.pass_log_lr - out.relative.pass_bound) / drift_per_canary_request;
  }

  // This interval against the absolute limit: stable above it holds, the canary alone fails.
  const double max_rate = p_.max_error_rate;
  auto breach_p = [&](double errors, double requests) {
    const auto k = static_cast<std::uint64_t>(errors / phi);
    const auto trials = std::max(static_cast<std::uint64_t>(requests / phi), k);
    return stats::binomial_tail(k, trials, max_rate);
  };
  if (!std::isnan(max_rate) && m > 0) {
    out.stable_breach_p = breach_p(es, m);
    out.stable_breach = out.stable_breach_p < p_.hold_level;
  }
  if (!std::isnan(max_rate) && n > 0) {
    out.canary_breach_p = breach_p(e, n);
    out.canary_breach = out.canary_breach_p < p_.alpha && !out.stable_breach;
  }

  double latency_step = 0;
  if (p_.judge_latency && n > 0) {
    latency_active_ = true;
    constexpr double kP99Share = 0.01;  // at most 1% slower than the limit: p99 within it
    const auto slow = static_cast<double>(std::min(canary.slow, canary.all.requests));
    for (std::size_t j = 0; j < latency_.size(); ++j) {
      const double llr = stats::binomial_llr(slow, n, kP99Share, alternative_rate(kP99Share, j));
      latency_[j] += llr;
      if (j == 0) latency_step = llr;
    }
  }
  // Slowness is not dispersion-scaled: phi measures how errors cluster by user.
  out.latency = read(latency_, heavy, latency_step, latency_active_, 1, pass_component);
  out.latency.pass_ratio = alternative_rate(0.01, pass_component) / 0.01;
  return out;
}

}  // namespace gp::routing
