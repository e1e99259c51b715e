#include "routing/canary_evidence.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "routing/rollout_stats.hpp"

namespace gp::routing {

namespace {

using Components = EvidenceSums;

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

// log Phi(x), the standard normal's CDF.
double log_normal_cdf(double x) {
  return std::log(0.5 * std::erfc(-x / std::sqrt(2.0)));
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

CanaryEvidence::CanaryEvidence(EvidencePolicy p, EvidenceState s) : p_(p), s_(s) {
  p_.max_error_rate_ratio = std::max(p_.max_error_rate_ratio, 1.01);
  p_.alpha = std::clamp(p_.alpha, 1e-9, 0.5);
  if (std::isnan(p_.relative_alpha)) p_.relative_alpha = p_.alpha;
  p_.relative_alpha = std::clamp(p_.relative_alpha, 1e-9, 0.5);
  p_.beta = std::clamp(p_.beta, 1e-9, 0.5);
  if (!(p_.full_evidence_weight > 0)) p_.full_evidence_weight = 1;
  if (!(p_.max_error_rate > 0 && p_.max_error_rate < 1))
    p_.max_error_rate = std::numeric_limits<double>::quiet_NaN();
  p_.dispersion_prior = std::max(p_.dispersion_prior, 1e-9);
  if (!(p_.max_latency_ratio > 1)) p_.max_latency_ratio = std::numeric_limits<double>::quiet_NaN();
  if (!(p_.rank_prior_sd > 0)) p_.rank_prior_sd = 0.1;
}

double CanaryEvidence::dispersion() const {
  return std::max(
      1.0, (s_.dispersion_num + p_.dispersion_prior) / (s_.dispersion_den + p_.dispersion_prior));
}

TestReading CanaryEvidence::read(const Components& llr, const Components& log_weights,
                                 const Components& accept, double interval_llr, bool active,
                                 double phi, std::size_t pass_component, double alpha) const {
  TestReading r;
  r.active = active;
  Components terms{};
  for (std::size_t j = 0; j < terms.size(); ++j) terms[j] = log_weights[j] + llr[j] / phi;
  r.fail_log_e = log_sum_exp(terms);
  r.pass_log_lr = accept[pass_component] / phi;
  r.pass_bound = std::log(p_.beta);
  r.interval_llr = interval_llr / phi;
  r.bar = std::log(1 / alpha);
  r.over = active && r.fail_log_e >= r.bar;
  r.fail = r.over && r.interval_llr > 0;
  r.pass = active && !r.over && r.pass_log_lr <= r.pass_bound;
  return r;
}

TestReading CanaryEvidence::read_rank(double interval_shift) const {
  // Mixture over delta ~ N(0, tau^2) restricted to one side (a half-normal prior):
  // E[exp(delta S - delta^2 I / 2)] = 2 (1 + tau^2 I)^-1/2 exp(m^2 / 2v) Phi(+-m / sqrt(v)), with
  // v = tau^2 / (1 + tau^2 I) and m = v S: each side is an e-value under the other.
  TestReading r;
  r.active = s_.rank_active;
  const double t2 = p_.rank_prior_sd * p_.rank_prior_sd;
  const double info = s_.rank_information;
  const double score = s_.rank_score;
  const double spread = 1 + t2 * info;
  const double common = std::log(2.0) - 0.5 * std::log(spread) + t2 * score * score / (2 * spread);
  const double z = p_.rank_prior_sd * score / std::sqrt(spread);
  r.fail_log_e = common + log_normal_cdf(z);
  r.pass_log_lr = -(common + log_normal_cdf(-z));
  r.bar = std::log(1 / p_.alpha);
  r.pass_bound = std::log(p_.beta);
  r.interval_llr = interval_shift;
  r.pass_factor = p_.max_latency_ratio;
  r.over = r.active && r.fail_log_e >= r.bar;
  r.fail = r.over && interval_shift > 0;
  r.pass = r.active && !r.over && r.pass_log_lr <= r.pass_bound;
  return r;
}

EvidenceReading CanaryEvidence::add(const VersionCounts& canary, const VersionCounts& stable,
                                    double weight, bool warmup) {
  EvidenceReading out;
  for (const VersionCounts* v : {&canary, &stable}) {
    if (warmup) break;
    const auto [num, den] = split_terms(*v);
    s_.dispersion_num += num;
    s_.dispersion_den += den;
  }
  const double phi = dispersion();
  out.dispersion = phi;
  // The pass alternative for this weight: 2^floor(log2(full_evidence_weight / weight)) times
  // the one named at full weight.
  const std::size_t pass_component = [&]() -> std::size_t {
    if (!(weight > 0) || weight >= p_.full_evidence_weight) return 0;
    const double j = std::floor(std::log2(p_.full_evidence_weight / weight));
    return static_cast<std::size_t>(std::min<double>(j, kEvidenceComponents - 1));
  }();
  const double pass_scale = std::ldexp(1.0, static_cast<int>(pass_component));

  const auto n = static_cast<double>(canary.all.requests);
  const auto m = static_cast<double>(stable.all.requests);
  const auto e = static_cast<double>(std::min(canary.all.errors, canary.all.requests));
  const auto es = static_cast<double>(std::min(stable.all.errors, stable.all.requests));
  const Components heavy = first_heavy_log_weights();
  const Components even = [] {
    Components w{};
    w.fill(std::log(1.0 / static_cast<double>(w.size())));
    return w;
  }();

  // Relative: the canary's share of this interval's errors.
  double relative_step = 0;
  if (p_.relative && n > 0 && m > 0 && !warmup) {
    s_.relative_active = true;
    const double w = n / (n + m);
    for (std::size_t j = 0; j < kEvidenceComponents; ++j) {
      const double theta =
          stats::error_share(w, std::ldexp(p_.max_error_rate_ratio, static_cast<int>(j)));
      const double llr = stats::binomial_llr(e, e + es, w, theta);
      s_.relative[j] += llr;
      if (j == 0) relative_step = llr;
    }
  }
  out.relative = read(s_.relative, heavy, s_.relative, relative_step, s_.relative_active, phi,
                      pass_component, p_.relative_alpha);
  out.relative.pass_factor = p_.max_error_rate_ratio * pass_scale;
  if (s_.relative_active && !out.relative.pass && !out.relative.over && m > 0 && es > 0 && n > 0) {
    // Under rho = 1 each error moves the pass statistic down by KL(w || theta) on average.
    const double w = n / (n + m);
    const double theta = stats::error_share(w, out.relative.pass_factor);
    const double kl = w * std::log(w / theta) + (1 - w) * std::log((1 - w) / (1 - theta));
    const double errors_per_canary_request = es / m * (n + m) / n;
    const double drift = errors_per_canary_request * kl / phi;
    if (drift > 0)
      out.requests_to_pass = (out.relative.pass_log_lr - out.relative.pass_bound) / drift;
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

  // Absolute, accumulated over the intervals that are not held.
  double absolute_step = 0;
  // Without stable (at 100%) an interval that breaches is judged by itself, as a failure, and
  // kept out of the evidence: a blip on everything would otherwise block the pass for long.
  if (!std::isnan(max_rate) && n > 0 && !out.stable_breach && (m > 0 || !out.canary_breach) &&
      !warmup) {
    const double ok_rate = max_rate / p_.max_error_rate_ratio;
    for (std::size_t j = 0; j < kEvidenceComponents; ++j)
      s_.absolute_accept[j] +=
          stats::binomial_llr(e, n, ok_rate, std::min(max_rate * std::ldexp(1.0, int(j)), 0.999));
    // Over the bar only with stable to compare: at 100% a blip on everything is no evidence.
    if (m > 0) {
      s_.absolute_active = true;
      for (std::size_t j = 0; j < kEvidenceComponents; ++j) {
        const double llr = stats::binomial_llr(e, n, max_rate, alternative_rate(max_rate, j));
        s_.absolute[j] += llr;
        if (j == 0) absolute_step = llr;
      }
    }
  }
  if (!std::isnan(max_rate)) {
    out.absolute = read(s_.absolute, even, s_.absolute_accept, absolute_step, s_.absolute_active,
                        phi, pass_component, p_.alpha);
    // The pass side runs at 100% too.
    const bool accepting = s_.absolute_active || (n > 0 && !out.stable_breach && !warmup);
    out.absolute.pass =
        accepting && !out.absolute.over && out.absolute.pass_log_lr <= out.absolute.pass_bound;
    out.absolute.active = out.absolute.active || accepting;
    out.absolute.pass_factor =
        std::min(max_rate * pass_scale, 0.999) / (max_rate / p_.max_error_rate_ratio);
  }

  // Latency: requests over max_p99_latency against a 1% share (a p99 at the limit).
  double latency_step = 0;
  constexpr double kP99Share = 0.01;
  if (p_.judge_latency && n > 0 && !warmup) {
    s_.latency_active = true;
    const auto slow = static_cast<double>(std::min(canary.slow, canary.all.requests));
    for (std::size_t j = 0; j < kEvidenceComponents; ++j) {
      const double llr = stats::binomial_llr(slow, n, kP99Share, alternative_rate(kP99Share, j));
      s_.latency[j] += llr;
      if (j == 0) latency_step = llr;
    }
  }
  // Not dispersion-scaled: phi measures how errors cluster by user.
  out.latency = read(s_.latency, heavy, s_.latency, latency_step, s_.latency_active, 1,
                     pass_component, p_.alpha);
  out.latency.pass_factor = alternative_rate(kP99Share, pass_component) / kP99Share;

  // Latency against stable: the rank test.
  double rank_step = 0;
  if (!std::isnan(p_.max_latency_ratio) && !warmup) {
    if (const auto r = stats::rank_shift(canary.latency, stable.latency, p_.max_latency_ratio)) {
      s_.rank_active = true;
      s_.rank_score += r->shift / r->variance;
      s_.rank_information += 1 / r->variance;
      rank_step = r->shift;
      out.rank_probability = r->shift + 0.5;
    }
  }
  if (!std::isnan(p_.max_latency_ratio)) out.latency_ratio = read_rank(rank_step);
  return out;
}

}  // namespace gp::routing
