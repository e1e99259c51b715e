#include "routing/canary_evidence.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

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

// Latencies as sketch bins: equal values merged, ascending.
LatencyBins bins(std::vector<double> seconds) {
  std::sort(seconds.begin(), seconds.end());
  LatencyBins out;
  for (const double x : seconds) {
    if (!out.empty() && out.back().seconds == x)
      ++out.back().count;
    else
      out.push_back({x, 1});
  }
  return out;
}

std::vector<double> lognormal(std::size_t n, double median_seconds, double sigma,
                              std::mt19937_64& rng) {
  std::lognormal_distribution<double> d(std::log(median_seconds), sigma);
  std::vector<double> out(n);
  for (double& x : out) x = d(rng);
  return out;
}

VersionCounts timed(std::uint64_t requests, std::vector<double> seconds) {
  VersionCounts c = counts(requests, 0);
  c.latency = bins(std::move(seconds));
  return c;
}

EvidencePolicy latency_policy(double ratio) {
  EvidencePolicy p;
  p.max_latency_ratio = ratio;
  return p;
}

TEST(CanaryEvidence, RankShiftIsMannWhitneyWithTies) {
  std::mt19937_64 rng(21);
  std::uniform_int_distribution<int> ms(1, 12);  // few distinct values: many ties
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<double> a(5 + trial % 7);
    std::vector<double> b(3 + trial % 11);
    for (double& x : a) x = ms(rng) / 1000.0;
    for (double& x : b) x = ms(rng) / 1000.0;
    const double scale = trial % 2 ? 1.0 : 2.0;
    // Brute force over all pairs, and the tie groups of the pooled sample.
    double u = 0;
    for (const double x : a)
      for (const double y : b) u += x / scale > y ? 1 : x / scale == y ? 0.5 : 0;
    std::map<double, double> groups;
    for (const double x : a) ++groups[x / scale];
    for (const double y : b) ++groups[y];
    double ties = 0;
    for (const auto& [v, t] : groups) ties += t * t * t - t;
    const double n1 = static_cast<double>(a.size());
    const double n2 = static_cast<double>(b.size());
    const double n = n1 + n2;
    const double var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)));
    const auto r = stats::rank_shift(bins(a), bins(b), scale);
    ASSERT_TRUE(r.has_value());
    EXPECT_NEAR(r->shift, u / (n1 * n2) - 0.5, 1e-12) << trial;
    EXPECT_NEAR(r->variance, var / (n1 * n1 * n2 * n2), 1e-12) << trial;
  }
  EXPECT_FALSE(stats::rank_shift({}, bins({0.1}), 1.5).has_value());
  EXPECT_FALSE(stats::rank_shift(bins({0.1, 0.1}), bins({0.1}), 1.0).has_value());  // all tied
}

TEST(CanaryEvidence, RankTestFailsASlowCanaryAndPassesAFastOne) {
  std::mt19937_64 rng(5);
  CanaryEvidence slow(latency_policy(1.5));
  CanaryEvidence same(latency_policy(1.5));
  int slow_failed_at = 0;
  int same_passed_at = 0;
  for (int i = 1; i <= 30; ++i) {
    const std::vector<double> stable = lognormal(1900, 0.05, 0.5, rng);
    // 2.2x stable's latency against a limit of 1.5x.
    const EvidenceReading a =
        slow.add(timed(100, lognormal(100, 0.11, 0.5, rng)), timed(1900, stable), 0.05);
    if (a.latency_ratio.fail && slow_failed_at == 0) slow_failed_at = i;
    EXPECT_FALSE(a.latency_ratio.pass);
    EXPECT_GT(a.rank_probability, 0.5);
    const EvidenceReading b =
        same.add(timed(100, lognormal(100, 0.05, 0.5, rng)), timed(1900, stable), 0.05);
    if (b.latency_ratio.pass && same_passed_at == 0) same_passed_at = i;
    EXPECT_FALSE(b.latency_ratio.over);
    EXPECT_NEAR(b.latency_ratio.pass_factor, 1.5, 0);
  }
  EXPECT_GE(slow_failed_at, 1);
  EXPECT_LE(slow_failed_at, 3);
  EXPECT_GE(same_passed_at, 1);
  EXPECT_LE(same_passed_at, 3);
}

// At exactly the limit (canary = 1.5 x stable in distribution) the test is at its null: over
// many rollouts of many looks it fails at most about alpha of them and passes at most about
// beta.
TEST(CanaryEvidence, RankTestAtTheLimitKeepsBothErrorRates) {
  std::mt19937_64 rng(9);
  int failed = 0;
  int passed = 0;
  constexpr int kRollouts = 300;
  for (int k = 0; k < kRollouts; ++k) {
    CanaryEvidence ev(latency_policy(1.5));
    bool f = false;
    bool p = false;
    for (int i = 0; i < 30 && !f && !p; ++i) {
      const EvidenceReading r = ev.add(timed(40, lognormal(40, 0.075, 0.4, rng)),
                                       timed(400, lognormal(400, 0.05, 0.4, rng)), 0.1);
      f = r.latency_ratio.over;
      p = r.latency_ratio.pass;
    }
    failed += f;
    passed += p;
  }
  EXPECT_LE(failed, 4);   // alpha 0.005: 1.5 expected
  EXPECT_LE(passed, 30);  // beta 0.05: 15 expected
}

TEST(CanaryEvidence, SlownessSharedByBothVersionsCancels) {
  std::mt19937_64 rng(13);
  CanaryEvidence ev(latency_policy(1.2));
  for (int i = 0; i < 40; ++i) {
    // Every fifth interval both versions are 4x slower (a slow database).
    const double median = i % 5 == 0 ? 0.2 : 0.05;
    const EvidenceReading r = ev.add(timed(200, lognormal(200, median, 0.3, rng)),
                                     timed(1800, lognormal(1800, median, 0.3, rng)), 0.1);
    EXPECT_FALSE(r.latency_ratio.over) << i;
  }
}

TEST(CanaryEvidence, WarmupAddsNothingButItsOwnBreach) {
  EvidencePolicy p = policy();
  p.max_latency_ratio = 1.5;
  p.judge_latency = true;
  CanaryEvidence ev(p);
  VersionCounts c = split(200, 1, 1);
  c.latency = bins({0.5, 0.6});
  VersionCounts s = split(2000, 10, 3);
  s.latency = bins({0.1, 0.2});
  ev.add(c, s, 0.1);
  const EvidenceState before = ev.state();
  c.all.errors = 150;  // a breach in the warm-up interval
  const EvidenceReading r = ev.add(c, s, 0.1, true);
  EXPECT_EQ(ev.state(), before);
  EXPECT_TRUE(r.canary_breach);
  EXPECT_FALSE(r.relative.fail);  // the accumulated tests did not see this interval
}

}  // namespace
}  // namespace gp::routing
