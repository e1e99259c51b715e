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
//    pass factor = ratio x 2^floor(log2(full_evidence_weight / weight)) against 1 falls to beta;
//    a canary at that factor or worse gets there with probability <= beta. From
//    full_evidence_weight up that rules out `ratio`; below it, regressions that cost the
//    service (rho - 1) x weight extra errors about as much as `ratio` does there.
//  - Clustering: one user's errors come in bursts, so counts vary more than binomially. Each
//    version is also counted for the users in the lower half of the hash space (an A/A split:
//    the halves share everything but their users); the halves' error split given the errors is
//    binomial only without clustering, and its Pearson dispersion phi (>= 1) divides every
//    error log-likelihood ratio (quasi-likelihood). Bursts shared by all users cancel as they
//    do between the versions.
//  - Absolute (`max_error_rate`): the same machinery on the canary's own counts, fed by the
//    intervals in which stable is not itself above the limit. Over the bar: the mixture over
//    p = max_error_rate x 2^(j+1) against max_error_rate (only while stable has traffic to
//    tell a canary's fault from everybody's); pass: the ratio of max_error_rate x
//    2^floor(log2(full_evidence_weight / weight)) against max_error_rate / ratio falls to beta
//    (the route to a pass when errors are too rare for the relative test, and at 100%, where
//    an interval that breaches is a failure by itself and kept out of this evidence).
//  - Per interval: the exact binomial tail of the interval's dispersion-scaled counts against
//    max_error_rate. Stable below hold_level: hold (what both versions show is not the
//    canary's). Canary below alpha while stable is not breaching: the canary alone breached.
//  - Latency (`max_p99_latency`): the canary's requests slower than the limit against a share
//    of 1% (p99 at the limit), by the same mixture over 2% x 2^j, unscaled (phi is about
//    errors); it passes on the same rule, so a p99 over the limit is not promoted.
//  - Latency against stable (`max_latency_ratio`): each interval's Mann-Whitney statistic of the
//    canary's latencies divided by the ratio against stable's, as the probability that such a
//    canary request is slower than a stable one, minus 1/2 (delta; 0 when the canary is exactly
//    `ratio` times slower). Inverse-variance sums S = sum delta_i / v_i, I = sum 1 / v_i make
//    S ~ N(delta I, I); one-sided normal-mixture e-values (prior sd tau on delta) fail at
//    1/alpha for delta > 0 and pass at 1/beta for delta < 0. Shared slowness cancels.
//  - Warm-up: an interval right after a weight change adds nothing; only its own breach of
//    max_error_rate counts (and holds).
#pragma once

#include <array>
#include <cstdint>
#include <limits>

#include "routing/rollout_stats.hpp"

namespace gp::routing {

struct Counts {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
};

// One version in one interval. `half`: the requests (and their errors) of users whose hash falls
// in the lower half of the hash space; {0, 0} when not measured. `slow`: requests slower than
// max_p99_latency. `latency`: the interval's latencies (empty when not measured).
struct VersionCounts {
  Counts all;
  Counts half;
  std::uint64_t slow = 0;
  LatencyBins latency{};
};

struct EvidencePolicy {
  double max_error_rate_ratio = 2;  // rho the relative test must catch; > 1
  double max_error_rate = std::numeric_limits<double>::quiet_NaN();  // NaN: no absolute limit
  bool judge_latency = false;  // slow counts are against max_p99_latency
  bool relative = true;        // judge the canary against stable
  double alpha = 0.005;        // false failures over the whole rollout, per test
  double relative_alpha = std::numeric_limits<double>::quiet_NaN();  // NaN: alpha
  double beta = 0.05;  // misses at and above full_evidence_weight, per test
  double full_evidence_weight = 0.25;
  // Stable "above max_error_rate" below this p-value. Loose on purpose: a hold only waits,
  // and a stable window of a few hundred requests in an outage must still hold.
  double hold_level = 0.05;
  double dispersion_prior = 2;  // pseudo-variance units at phi = 1 before any data
  // Canary latency over stable's the rank test must catch; NaN: not judged.
  double max_latency_ratio = std::numeric_limits<double>::quiet_NaN();
  double rank_prior_sd = 0.1;  // tau: the mixture's spread of delta (in probability units)
};

// One sequential test's state after the latest interval.
struct TestReading {
  bool active = false;     // the test ran on some interval
  double fail_log_e = 0;   // log of the mixture e-value
  double bar = 0;          // log(1/alpha): over the bar from there
  double pass_log_lr = 0;  // log LR of the pass alternative against the null, passes at <= bound
  double pass_bound = 0;   // log(beta)
  // This interval's log LR of the first alternative against the null: > 0 points to a
  // regression.
  double interval_llr = 0;
  // The alternative a pass excludes at this weight, as a factor on the null (relative: the
  // ratio rho; absolute and latency: the rate over max_error_rate / ratio, resp. over 1%).
  double pass_factor = 0;
  bool over = false;  // fail_log_e over the bar
  // over, and this interval points the same way: a burst that does not recur (one user's
  // failing session) fails at most one interval, and failure_limit needs them in a row.
  bool fail = false;
  bool pass = false;  // pass_log_lr <= pass_bound and not over
};

struct EvidenceReading {
  double dispersion = 1;      // phi, >= 1
  TestReading relative;       // canary against stable
  TestReading absolute;       // canary against max_error_rate
  TestReading latency;        // share over max_p99_latency against 1%
  TestReading latency_ratio;  // rank test against stable (pass_factor: max_latency_ratio)
  // This interval: P(a canary request's latency / max_latency_ratio > a stable one's); NaN when
  // not judged.
  double rank_probability = std::numeric_limits<double>::quiet_NaN();
  // This interval against max_error_rate (NaN: not judged): the tails of the dispersion-scaled
  // counts, "the rate is above the limit".
  double canary_breach_p = std::numeric_limits<double>::quiet_NaN();
  double stable_breach_p = std::numeric_limits<double>::quiet_NaN();
  bool canary_breach = false;  // canary_breach_p < alpha and no stable breach
  bool stable_breach = false;  // stable_breach_p < hold_level: hold
  // Canary requests the relative test still needs to pass at this weight, at this interval's
  // traffic and stable's error rate, if the canary is as good as stable (NaN: cannot tell).
  double requests_to_pass = std::numeric_limits<double>::quiet_NaN();
};

inline constexpr std::size_t kEvidenceComponents = 8;
using EvidenceSums = std::array<double, kEvidenceComponents>;

// Everything the analysis has learnt, to persist and restore (a restart, the fleet's leader
// changing): raw (phi = 1) log-likelihood ratio sums per mixture component and the A/A sums.
struct EvidenceState {
  EvidenceSums relative{};         // rho = ratio x 2^j against 1
  EvidenceSums absolute{};         // p = max_error_rate x 2^(j+1) against max_error_rate
  EvidenceSums absolute_accept{};  // p = max_error_rate x 2^j against max_error_rate / ratio
  EvidenceSums latency{};          // share 2% x 2^j against 1%
  bool relative_active = false;
  bool absolute_active = false;
  bool latency_active = false;
  double dispersion_num = 0;  // sum (a - E h)^2 over both versions' A/A splits
  double dispersion_den = 0;  // sum E h (1 - h)
  // The rank test: sum delta_i / v_i and sum 1 / v_i.
  double rank_score = 0;
  double rank_information = 0;
  bool rank_active = false;
  // What the sums were computed against (0: nothing yet); other values void them.
  double ratio = 0;
  double max_error_rate = 0;
  double latency_ratio = 0;
  friend bool operator==(const EvidenceState&, const EvidenceState&) = default;
};

class CanaryEvidence {
 public:
  explicit CanaryEvidence(EvidencePolicy p, EvidenceState s = {});

  // Adds one interval at `weight` (the step's share of traffic, in (0, 1]) and reads every test.
  // A warm-up interval adds nothing: every test reads as before it, and only the interval's own
  // breaches of max_error_rate count.
  EvidenceReading add(const VersionCounts& canary, const VersionCounts& stable, double weight,
                      bool warmup = false);

  const EvidencePolicy& policy() const { return p_; }
  const EvidenceState& state() const { return s_; }
  double dispersion() const;

 private:
  TestReading read(const EvidenceSums& llr, const EvidenceSums& log_weights,
                   const EvidenceSums& accept, double interval_llr, bool active, double phi,
                   std::size_t pass_component, double alpha) const;
  TestReading read_rank(double interval_shift) const;

  EvidencePolicy p_;
  EvidenceState s_;
};

}  // namespace gp::routing
