// The canary's evidence over a whole rollout as always-valid sequential tests (docs/analysis.md):
// fed one interval at a time and read after every interval without inflating either error rate.
//
//  - Relative (canary against stable; what hits both versions cancels): given the interval's
//    errors on both versions E and the canary's share of requests w, the canary's errors are
//    Binomial(E, theta(rho)), theta(rho) = rho w / (rho w + 1 - w), where rho is the canary's
//    error rate over stable's. Log-likelihood ratios of rho = ratio x 2^j (j = 0..7) against
//    rho = 1 add up over the rollout whatever the weight did (each interval is its own stratum).
//    Over the bar: the mixture (half the prior weight on `ratio`) reaches 1/alpha, which under
//    rho <= 1 happens with probability <= alpha over the whole rollout (Ville's inequality).
//    Fail: over the bar and this interval's own ratio points the same way, so a burst that
//    does not recur fails one interval at most. Pass at a weight: the likelihood ratio of
//    pass_ratio = ratio x 2^floor(log2(full_evidence_weight / weight)) against 1 falls to beta;
//    a canary at pass_ratio or worse gets there with probability <= beta. From
//    full_evidence_weight up that rules out `ratio`; below it, regressions that cost the
//    service (rho - 1) x weight extra errors about as much as `ratio` does there.
//  - Clustering: one user's errors come in bursts, so counts vary more than binomially. Each
//    version is also counted for the users in the lower half of the hash space (an A/A split:
//    the halves share everything but their users); the halves' error split given the errors is
//    binomial only without clustering, and its Pearson dispersion phi (>= 1) divides every
//    error log-likelihood ratio (quasi-likelihood). Bursts shared by all users cancel as they
//    do between the versions.
//  - Absolute (`max_error_rate`), per interval: the exact binomial tail of the interval's
//    dispersion-scaled counts against max_error_rate. Stable below hold_level: hold (what both
//    versions show is not the canary's). Canary below alpha while stable is not: the canary
//    alone breached. Per interval, because only a comparison within one interval tells a
//    canary's fault from a shared blip.
//  - Latency (`max_p99_latency`): the canary's requests slower than the limit against a share
//    of 1% (p99 at the limit), by the same mixture over 2% x 2^j, unscaled (phi is about
//    errors); it passes on the same pass_ratio rule, so a p99 over the limit is not promoted.
#pragma once

#include <array>
#include <cstdint>
#include <limits>

namespace gp::routing {

struct Counts {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
};

// One version in one interval. `half`: the requests (and their errors) of users whose hash falls
// in the lower half of the hash space; {0, 0} when not measured. `slow`: requests slower than
// max_p99_latency.
struct VersionCounts {
  Counts all;
  Counts half;
  std::uint64_t slow = 0;
};

struct EvidencePolicy {
  double max_error_rate_ratio = 2;  // rho the relative test must catch; > 1
  double max_error_rate = std::numeric_limits<double>::quiet_NaN();  // NaN: no absolute limit
  bool judge_latency = false;  // slow counts are against max_p99_latency
  double alpha = 0.005;        // false failures over the whole rollout, per test
  double beta = 0.05;          // misses at and above full_evidence_weight, per test
  double full_evidence_weight = 0.25;
  double hold_level = 0.001;    // stable "significantly above max_error_rate" below this p-value
  double dispersion_prior = 2;  // pseudo-variance units at phi = 1 before any data
};

// One sequential test's state after the latest interval.
struct TestReading {
  bool active = false;     // the test ran on some interval
  double fail_log_e = 0;   // log of the mixture e-value (over the bar at log(1/alpha))
  double pass_log_lr = 0;  // log LR of pass_ratio against 1, passes at <= pass_bound
  double pass_bound = 0;   // log(beta)
  double interval_llr =
      0;  // this interval's log LR of `ratio` against 1: > 0 points to a regression
  // The alternative a pass excludes at this weight: ratio x 2^floor(log2(full_evidence_weight /
  // weight)), at most 2^7 x ratio. A regression costs the service (rho - 1) x weight x stable's
  // rate in extra errors: a step may pass while it rules out one that costs at most about as
  // much as `ratio` at full_evidence_weight.
  double pass_ratio = 0;
  bool over = false;  // fail_log_e over the bar
  // over, and this interval points the same way: a burst that does not recur (one user's
  // failing session) fails at most one interval, and failure_limit needs them in a row.
  bool fail = false;
  bool pass = false;  // pass_log_lr <= pass_bound and not over
};

struct EvidenceReading {
  double dispersion = 1;  // phi, >= 1
  TestReading relative;   // canary vs stable
  TestReading latency;    // slow share vs 1%
  // This interval against max_error_rate (NaN: not judged): the tails of the dispersion-scaled
  // counts, "the rate is above the limit".
  double canary_breach_p = std::numeric_limits<double>::quiet_NaN();
  double stable_breach_p = std::numeric_limits<double>::quiet_NaN();
  bool canary_breach = false;     // canary_breach_p < alpha and no stable breach
  bool stable_breach = false;     // stable_breach_p < hold_level
  double fail_log_threshold = 0;  // log(1/alpha)
  // Canary requests the relative test still needs to pass at the current weight, at this
  // interval's traffic and error rates, if the canary is as good as stable (NaN: cannot tell).
  double requests_to_pass = std::numeric_limits<double>::quiet_NaN();
};

class CanaryEvidence {
 public:
  static constexpr int kComponents = 8;

  explicit CanaryEvidence(EvidencePolicy p);

  // Adds one interval at `weight` (the step's share of traffic, in (0, 1]) and reads every test.
  EvidenceReading add(const VersionCounts& canary, const VersionCounts& stable, double weight);

  const EvidencePolicy& policy() const { return p_; }
  double dispersion() const;

 private:
  TestReading read(const std::array<double, kComponents>& llr,
                   const std::array<double, kComponents>& log_weights, double interval_llr,
                   bool active, double phi, std::size_t pass_component) const;

  EvidencePolicy p_;
  // Raw (phi = 1) log-likelihood ratio sums per mixture component.
  std::array<double, kComponents> relative_{};
  std::array<double, kComponents> latency_{};
  bool relative_active_ = false;
  bool latency_active_ = false;
  // Pearson dispersion of the A/A halves: sum of squared deviations and of expected variances.
  double dispersion_num_ = 0;
  double dispersion_den_ = 0;
};

namespace stats {
// log P(k | n, p1) - log P(k | n, p0) for a binomial count: k ln(p1/p0) + (n-k) ln((1-p1)/(1-p0)).
double binomial_llr(double k, double n, double p0, double p1) noexcept;
// theta(rho) = rho w / (rho w + 1 - w): the canary's share of errors when its rate is rho times
// stable's and its share of requests is w.
double error_share(double w, double rho) noexcept;
}  // namespace stats

}  // namespace gp::routing
