#include "routing/canary_evidence.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

namespace gp::routing {
namespace {

VersionCounts counts(std::uint64_t requests, std::uint64_t errors) {
  return {{requests, errors}, {}, 0};
}

// A version's interval with its A/A half: `half_errors` of the errors among the first half of
// the requests.
VersionCounts split(std::uint64_t requests, std::uint64_t errors, std::uint64_t half_errors) {
  return {{requests, errors}, {requests / 2, half_errors}, 0};
}

EvidencePolicy policy() {
  EvidencePolicy p;
  p.max_error_rate = 0.01;
  return p;
}

std::uint64_t binomial(std::uint64_t n, double p, std::mt19937_64& rng) {
  return std::binomial_distribution<std::uint64_t>(n, p)(rng);
}

TEST(CanaryEvidence, LikelihoodRatioAndErrorShare) {
  EXPECT_DOUBLE_EQ(stats::error_share(0.1, 1), 0.1);
  EXPECT_NEAR(stats::error_share(0.1, 2), 0.2 / 1.1, 1e-15);
  // k ln(p1/p0) + (n-k) ln((1-p1)/(1-p0))
  EXPECT_NEAR(stats::binomial_llr(3, 10, 0.1, 0.2), 3 * std::log(2.0) + 7 * std::log(0.8 / 0.9),
              1e-12);
  EXPECT_DOUBLE_EQ(stats::binomial_llr(0, 0, 0.1, 0.2), 0);
  EXPECT_NEAR(stats::binomial_llr(0, 5, 0.01, 0.02), 5 * std::log(0.98 / 0.99), 1e-12);
}

// "A canary failing 10 of its first 10 requests is not kept up": one interval, far below any
// min_requests, is over the bar and fails.
TEST(CanaryEvidence, OverwhelmingEvidenceFailsInOneInterval) {
  CanaryEvidence ev(policy());
  const EvidenceReading r = ev.add(counts(10, 10), counts(990, 5), 0.01);
  EXPECT_TRUE(r.relative.over);
  EXPECT_TRUE(r.relative.fail);
  EXPECT_TRUE(r.canary_breach);
  EXPECT_FALSE(r.stable_breach);
  EXPECT_FALSE(r.relative.pass);
}

// Both versions at 5% (a database down): stable breaches, the canary is not blamed.
TEST(CanaryEvidence, SharedOutageHoldsAndNeverFails) {
  std::mt19937_64 rng(1);
  CanaryEvidence ev(policy());
  for (int i = 0; i < 200; ++i) {
    const EvidenceReading r = ev.add(counts(500, binomial(500, 0.05, rng)),
                                     counts(1500, binomial(1500, 0.05, rng)), 0.25);
    ASSERT_TRUE(r.stable_breach) << i;
    ASSERT_FALSE(r.canary_breach) << i;
    ASSERT_FALSE(r.relative.fail) << i;
  }
}

TEST(CanaryEvidence, HealthyCanaryPassesAndRegressionFails) {
  std::mt19937_64 rng(2);
  CanaryEvidence good(policy());
  CanaryEvidence bad(policy());
  int good_pass_at = 0;
  int bad_fail_at = 0;
  for (int i = 1; i <= 100 && (!good_pass_at || !bad_fail_at); ++i) {
    const VersionCounts stable = counts(1500, binomial(1500, 0.005, rng));
    const EvidenceReading g = good.add(counts(500, binomial(500, 0.005, rng)), stable, 0.25);
    const EvidenceReading b = bad.add(counts(500, binomial(500, 0.015, rng)), stable, 0.25);
    ASSERT_FALSE(g.relative.fail) << i;
    ASSERT_FALSE(b.relative.pass) << i;
    if (g.relative.pass && !good_pass_at) good_pass_at = i;
    if (b.relative.fail && !bad_fail_at) bad_fail_at = i;
  }
  // At 500 canary requests per interval: about 6 intervals to rule out 2x, 4 to catch 3x.
  EXPECT_GT(good_pass_at, 0);
  EXPECT_LE(good_pass_at, 20);
  EXPECT_GT(bad_fail_at, 0);
  EXPECT_LE(bad_fail_at, 20);
}

// The pass alternative grows as the weight falls: less evidence where less is at stake.
TEST(CanaryEvidence, PassRatioFollowsTheWeight) {
  for (const auto& [weight, ratio] :
       {std::pair{1.0, 2.0}, {0.5, 2.0}, {0.25, 2.0}, {0.1, 4.0}, {0.05, 8.0}, {0.01, 32.0}}) {
    CanaryEvidence ev(policy());
    EXPECT_DOUBLE_EQ(ev.add(counts(100, 0), counts(100, 1), weight).relative.pass_factor, ratio)
        << weight;
  }
}

// Under rho = 1 the chance of ever being over the bar in a long rollout stays below alpha.
TEST(CanaryEvidence, FalseAlarmsStayBelowAlphaOverManyLooks) {
  std::mt19937_64 rng(3);
  EvidencePolicy p = policy();
  p.alpha = 0.05;  // large enough to count in 1,000 runs
  int over = 0;
  constexpr int kRuns = 1000;
  for (int run = 0; run < kRuns; ++run) {
    CanaryEvidence ev(p);
    for (int i = 0; i < 100; ++i) {
      const double w = i < 20 ? 0.05 : 0.25;  // the weight moves; the strata keep it exact
      const auto n = static_cast<std::uint64_t>(2000 * w);
      const EvidenceReading r = ev.add(counts(n, binomial(n, 0.005, rng)),
                                       counts(2000 - n, binomial(2000 - n, 0.005, rng)), w);
      if (r.relative.over) {
        ++over;
        break;
      }
    }
  }
  EXPECT_LT(over, kRuns * p.alpha) << over;
}

// Errors in bursts of 20 (one user's failing session) show in the A/A split: phi near 20.
// Independent errors keep phi near 1.
TEST(CanaryEvidence, DispersionMeasuresClustering) {
  std::mt19937_64 rng(4);
  CanaryEvidence clustered(policy());
  CanaryEvidence independent(policy());
  for (int i = 0; i < 300; ++i) {
    const std::uint64_t sessions = binomial(100, 0.005, rng);  // of 20 requests each
    const std::uint64_t in_half = binomial(sessions, 0.5, rng);
    clustered.add(split(100, 0, 0), split(2000, 20 * sessions, 20 * in_half), 0.05);
    const std::uint64_t errors = binomial(2000, 0.005, rng);
    independent.add(split(100, 0, 0), split(2000, errors, binomial(errors, 0.5, rng)), 0.05);
  }
  EXPECT_GT(clustered.dispersion(), 12);
  EXPECT_LT(clustered.dispersion(), 30);
  EXPECT_LT(independent.dispersion(), 1.5);
}

// One user's failing session on the canary, once, with clustering already known: the bar is not
// reached; and a test over the bar does not fail on an interval that does not confirm it.
TEST(CanaryEvidence, OneBurstDoesNotFail) {
  std::mt19937_64 rng(5);
  CanaryEvidence ev(policy());
  for (int i = 0; i < 20; ++i) {  // stable shows bursts of 20
    const std::uint64_t sessions = binomial(99, 0.005, rng) + (i % 5 == 0 ? 1 : 0);
    const std::uint64_t in_half = binomial(sessions, 0.5, rng);
    ev.add(split(20, 0, 0), split(1980, 20 * sessions, 20 * in_half), 0.01);
  }
  const EvidenceReading burst = ev.add(split(20, 20, 20), split(1980, 0, 0), 0.01);
  EXPECT_GT(burst.dispersion, 5);
  EXPECT_FALSE(burst.relative.fail);

  CanaryEvidence naive(policy());  // no A/A counts: phi stays 1
  const EvidenceReading first = naive.add(counts(20, 20), counts(1980, 10), 0.01);
  EXPECT_TRUE(first.relative.fail);
  const EvidenceReading next = naive.add(counts(20, 0), counts(1980, 10), 0.01);
  EXPECT_TRUE(next.relative.over);
  EXPECT_FALSE(next.relative.fail);  // this interval does not point to a regression
  EXPECT_LT(next.relative.interval_llr, 0);
}

TEST(CanaryEvidence, AbsoluteLimitPerInterval) {
  CanaryEvidence ev(policy());
  // 10% of 1,000 against a 1% limit with stable fine: the canary alone breached.
  EvidenceReading r = ev.add(counts(1000, 100), counts(1000, 5), 0.5);
  EXPECT_TRUE(r.canary_breach);
  EXPECT_FALSE(r.stable_breach);
  // Both at 10%: hold, not the canary's.
  r = ev.add(counts(1000, 100), counts(1000, 100), 0.5);
  EXPECT_TRUE(r.stable_breach);
  EXPECT_FALSE(r.canary_breach);
  // At 100%, no stable: the canary's own counts decide.
  r = ev.add(counts(2000, 100), counts(0, 0), 1.0);
  EXPECT_TRUE(r.canary_breach);
  EXPECT_TRUE(std::isnan(r.stable_breach_p));
  // No limit configured: not judged.
  EvidencePolicy none;
  CanaryEvidence unlimited(none);
  r = unlimited.add(counts(1000, 500), counts(1000, 500), 0.5);
  EXPECT_TRUE(std::isnan(r.canary_breach_p));
  EXPECT_FALSE(r.canary_breach);
  EXPECT_FALSE(r.stable_breach);
}

TEST(CanaryEvidence, LatencyShareOverTheLimit) {
  EvidencePolicy p = policy();
  p.judge_latency = true;
  CanaryEvidence slow(p);
  VersionCounts all_slow = counts(5, 0);
  all_slow.slow = 5;  // every request over max_p99_latency, at 5 requests an interval
  EvidenceReading r = slow.add(all_slow, counts(495, 2), 0.01);
  EXPECT_TRUE(r.latency.fail);

  CanaryEvidence fast(p);
  int passed_at = 0;
  for (int i = 1; i <= 50 && !passed_at; ++i) {
    r = fast.add(counts(500, 2), counts(1500, 7), 0.25);  // nothing slow
    EXPECT_FALSE(r.latency.fail);
    if (r.latency.pass) passed_at = i;
  }
  EXPECT_GT(passed_at, 0);
  EXPECT_LE(passed_at, 5);

  CanaryEvidence borderline(p);  // 5% slow: a p99 well over the limit never passes
  std::mt19937_64 rng(6);
  for (int i = 0; i < 100; ++i) {
    VersionCounts c = counts(500, 2);
    c.slow = binomial(500, 0.05, rng);
    r = borderline.add(c, counts(1500, 7), 0.25);
    ASSERT_FALSE(r.latency.pass) << i;
  }
  EXPECT_TRUE(r.latency.over);
}

TEST(CanaryEvidence, RequestsToPassIsShownUntilItPasses) {
  CanaryEvidence ev(policy());
  const EvidenceReading r = ev.add(counts(500, 2), counts(1500, 8), 0.25);
  ASSERT_FALSE(r.relative.pass);
  EXPECT_GT(r.requests_to_pass, 500);
  EXPECT_LT(r.requests_to_pass, 50000);
}

}  // namespace
}  // namespace gp::routing
