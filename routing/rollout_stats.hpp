// Statistics the canary analysis rests on (docs/analysis.md): binomial likelihood ratios, the
// canary's share of errors, the exact binomial tail (Boost.Math's incomplete beta) and the
// Mann-Whitney statistic of two latency sketches. Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace gp::routing {

// One bucket of a latency sketch: the latency it stands for and the requests it counts.
struct LatencyBin {
  double seconds = 0;
  std::uint64_t count = 0;
};
using LatencyBins = std::vector<LatencyBin>;  // ascending by seconds

namespace stats {
// log P(k | n, p1) - log P(k | n, p0) for a binomial count: k ln(p1/p0) + (n-k) ln((1-p1)/(1-p0)).
double binomial_llr(double k, double n, double p0, double p1) noexcept;
// theta(rho) = rho w / (rho w + 1 - w): the canary's share of errors when its rate is rho times
// stable's and its share of requests is w.
double error_share(double w, double rho) noexcept;

// Mann-Whitney of `canary` latencies divided by `scale` against `stable` (ties count half, with
// the tie-corrected variance): P(canary / scale > stable) - 1/2 and its variance under "no
// difference". nullopt when either side is empty or every latency ties.
struct RankShift {
  double shift = 0;
  double variance = 0;
};
std::optional<RankShift> rank_shift(const LatencyBins& canary, const LatencyBins& stable,
                                    double scale) noexcept;

// P(X >= k) for X ~ Binomial(n, p): the exact one-sided p-value of k errors in n requests
// against "the error rate is at most p".
double binomial_tail(std::uint64_t k, std::uint64_t n, double p) noexcept;

}  // namespace stats
}  // namespace gp::routing
