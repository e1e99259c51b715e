// Vocabulary shared by the metrics library and its users (proxy, rollout controller): the version
// enum (config/version.hpp), upstream error reasons, the latency bucket layout and the cumulative
// per-version Snapshot.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include "config/version.hpp"
#include "metrics/latency_sketch.hpp"

namespace gp::metrics {

using config::kVersions;
using config::to_string;
using config::Version;

// overflow: refused by the cluster's circuit breaker (limits), nothing was sent.
// local_overload: the proxy itself ran out of file descriptors for a new upstream connection
// (not the endpoint's fault: no ejection).
enum class UpstreamError : std::uint8_t {
  connect,
  timeout,
  reset,
  protocol,
  no_endpoint,
  overflow,
  local_overload
};
inline constexpr std::size_t kUpstreamErrors = 7;

// Why an upstream connection was closed instead of reused
// (grayproxy_upstream_connections_closed_total): stray_bytes, bytes beyond a response (found
// when it ended or by the peek before a reuse); peer_closed, the upstream closed it while it
// was idle (found by that peek); unframed, a response that does not allow reuse (ended by
// close, Connection: close, HTTP/1.0, 1xx, HEAD/204/304 declaring a body); pool_full, enough
// idle connections already; aborted, the exchange failed or was cut short.
enum class UpstreamClose : std::uint8_t { stray_bytes, peer_closed, unframed, pool_full, aborted };
inline constexpr std::size_t kUpstreamCloses = 5;

constexpr std::string_view to_string(UpstreamClose c) noexcept {
  switch (c) {
    case UpstreamClose::stray_bytes:
      return "stray_bytes";
    case UpstreamClose::peer_closed:
      return "peer_closed";
    case UpstreamClose::unframed:
      return "unframed";
    case UpstreamClose::pool_full:
      return "pool_full";
    case UpstreamClose::aborted:
      return "aborted";
  }
  return "unknown";
}

// Why the proxy itself refused a client's request (grayproxy_downstream_rejected_total).
// invalid_head: malformed or ambiguous head (framing, syntax, Host); unsupported: a well-formed
// request the proxy does not serve (HTTP version, method, expectation).
enum class RejectReason : std::uint8_t {
  request_line_too_long,
  head_too_large,
  head_timeout,
  invalid_head,
  unsupported,
  body_too_large,
  invalid_body,
  chunk_line_too_long,
  trailers_too_large,
  underscore_header
};
inline constexpr std::size_t kRejectReasons = 10;

constexpr std::string_view to_string(RejectReason r) noexcept {
  switch (r) {
    case RejectReason::request_line_too_long:
      return "request_line_too_long";
    case RejectReason::head_too_large:
      return "head_too_large";
    case RejectReason::head_timeout:
      return "head_timeout";
    case RejectReason::invalid_head:
      return "invalid_head";
    case RejectReason::unsupported:
      return "unsupported";
    case RejectReason::body_too_large:
      return "body_too_large";
    case RejectReason::invalid_body:
      return "invalid_body";
    case RejectReason::chunk_line_too_long:
      return "chunk_line_too_long";
    case RejectReason::trailers_too_large:
      return "trailers_too_large";
    case RejectReason::underscore_header:
      return "underscore_header";
  }
  return "unknown";
}

// 1xx..5xx.
inline constexpr std::size_t kCodeClasses = 5;

constexpr std::string_view to_string(UpstreamError e) noexcept {
  switch (e) {
    case UpstreamError::connect:
      return "connect";
    case UpstreamError::timeout:
      return "timeout";
    case UpstreamError::reset:
      return "reset";
    case UpstreamError::protocol:
      return "protocol";
    case UpstreamError::no_endpoint:
      return "no_endpoint";
    case UpstreamError::overflow:
      return "overflow";
    case UpstreamError::local_overload:
      return "local_overload";
  }
  return "unknown";
}

inline constexpr std::array<std::string_view, kCodeClasses> kCodeClassNames = {"1xx", "2xx", "3xx",
                                                                               "4xx", "5xx"};

// Status codes outside 100..599 (which a proxy never sends) are clamped into 1xx / 5xx rather
// than dropped, so requests_total always equals the histogram count.
constexpr std::size_t code_class_index(unsigned http_status) noexcept {
  const unsigned c = http_status / 100;
  return c < 1 ? 0 : c > 5 ? 4 : c - 1;
}

// Finite upper bounds of grayproxy_request_duration_seconds, in microseconds. Mantissas 1, 1.5,
// 2, 2.5, 3, 4, 5, 7 per decade: neighbouring bounds differ by at most x1.5 from 0.5 ms to 10 s
// (so a p50/p99 read by interpolation is off by less than one such step), and the round
// thresholds operators write (100ms, 250ms, 300ms, 500ms, 1s) are exact bucket bounds.
// Integers so that the ns comparison on the request path is exact.
inline constexpr std::array<std::uint64_t, 38> kBucketBoundsUs = {
    500,      700,                                                              //
    1000,     1500,     2000,     2500,    3000,    4000,    5000,    7000,     //
    10000,    15000,    20000,    25000,   30000,   40000,   50000,   70000,    //
    100000,   150000,   200000,   250000,  300000,  400000,  500000,  700000,   //
    1000000,  1500000,  2000000,  2500000, 3000000, 4000000, 5000000, 7000000,  //
    10000000, 15000000, 30000000, 60000000};

// Finite buckets plus the +Inf bucket (last index).
inline constexpr std::size_t kBuckets = kBucketBoundsUs.size() + 1;

// Upper bound of bucket i in seconds; +Inf for the last. us / 1e6 of exact integers rounds to
// the same double as the decimal literal, so "le" labels print as 0.0015, not 0.00150000001.
inline double bucket_upper_bound_seconds(std::size_t i) noexcept {
  return i < kBucketBoundsUs.size() ? static_cast<double>(kBucketBoundsUs[i]) / 1e6
                                    : std::numeric_limits<double>::infinity();
}

namespace detail {
// The bounds in ns, so the request path compares without dividing.
inline constexpr std::array<std::uint64_t, kBucketBoundsUs.size()> kBucketBoundsNs = [] {
  std::array<std::uint64_t, kBucketBoundsUs.size()> ns{};
  for (std::size_t i = 0; i < ns.size(); ++i) ns[i] = kBucketBoundsUs[i] * 1000;
  return ns;
}();
}  // namespace detail

// Index of the bucket that counts `latency` (Prometheus "le" semantics: bound >= value).
// Branchless lower_bound: request latencies are unpredictable, so a branchy binary search
// would pay a misprediction per level.
constexpr std::size_t bucket_index(std::chrono::nanoseconds latency) noexcept {
  const auto ns =
      latency.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(latency.count());
  const std::uint64_t* const first = detail::kBucketBoundsNs.data();
  const std::uint64_t* base = first;
  std::size_t n = detail::kBucketBoundsNs.size();
  while (n > 1) {
    const std::size_t half = n / 2;
    base = base[half - 1] < ns ? base + half : base;
    n -= half;
  }
  return static_cast<std::size_t>(base - first) + (*base < ns);
}

// Cumulative totals of one route and version since the Metrics object was created, summed
// over worker shards. The rollout controller keeps the previous one and takes delta().
struct Snapshot {
  std::uint64_t requests = 0;    // all code classes
  std::uint64_t errors_5xx = 0;  // code class 5xx (proxy-generated 502/503/504 included)
  // NON-cumulative: bucket_counts[i] counts latencies in (bound[i-1], bound[i]]; the last is
  // the +Inf bucket. Their sum equals `requests`.
  std::array<std::uint64_t, kBuckets> bucket_counts{};
  double sum_seconds = 0;
  // The requests (and their 5xx) of users in one half of the hash space (even cohort buckets):
  // an A/A split of the version, which shows how its errors cluster by user (docs/analysis.md).
  std::uint64_t half_requests = 0;
  std::uint64_t half_errors_5xx = 0;
  // The latencies in the rollout analysis's sketch (metrics/latency_sketch.hpp), non-cumulative
  // over its buckets like bucket_counts.
  SketchCounts latency{};
};

}  // namespace gp::metrics
