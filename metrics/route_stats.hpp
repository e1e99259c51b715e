// Per-route request statistics, sharded per worker thread (Envoy's thread-local stats model).
// The request path only does relaxed load+store on its own worker's cache lines: no lock, no
// map lookup, no allocation, no contended read-modify-write. Scrapes sum the shards.
#pragma once

#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "metrics/types.hpp"

namespace gp::metrics {

class Metrics;

// Sum over all worker shards of one route and version.
struct VersionTotals {
  std::array<std::uint64_t, kCodeClasses> code_class{};  // index: code_class_index()
  std::array<std::uint64_t, kBuckets> buckets{};         // non-cumulative, last is +Inf
  std::uint64_t sum_us = 0;
  std::array<std::uint64_t, kUpstreamErrors> upstream_errors{};  // index: UpstreamError
  std::uint64_t retries = 0;
  std::uint64_t half_requests = 0;  // see Snapshot
  std::uint64_t half_5xx = 0;
  SketchCounts latency{};
};

class RouteStats {
 public:
  RouteStats(const RouteStats&) = delete;
  RouteStats& operator=(const RouteStats&) = delete;

  const std::string& name() const noexcept { return name_; }
  unsigned workers() const noexcept { return workers_; }

  // Must be called only from the thread that owns `worker` (each shard has one writer).
  // `half`: the request's user is in the A/A half of the hash space (Snapshot::half_requests).
  void record(unsigned worker, Version v, unsigned http_status, std::chrono::nanoseconds latency,
              bool half = false) noexcept {
    Counters& c = counters(worker, v);
    if (half) {
      bump(c.half_requests, 1);
      if (code_class_index(http_status) == code_class_index(500)) bump(c.half_5xx, 1);
    }
    bump(c.buckets[bucket_index(latency)], 1);
    bump(c.latency[sketch_index(latency)], 1);
    // Microseconds, not ns: the sum grows by (requests in flight) seconds per second, and
    // 2^64 ns is only ~21 days of 10000 in-flight long polls on one worker.
    const auto ns = latency.count() < 0 ? 0 : latency.count();
    bump(c.sum_us, static_cast<std::uint64_t>((ns + 500) / 1000));
    // Code class after the bucket, and sum() reads them in the opposite order, so (on x86's
    // ordered stores) a scrape never sees more 5xx than requests.
    bump(c.code_class[code_class_index(http_status)], 1);
  }

  // Same single-writer rule as record().
  void upstream_error(unsigned worker, Version v, UpstreamError reason) noexcept {
    bump(counters(worker, v).upstream_errors[static_cast<std::size_t>(reason)], 1);
  }

  // A request sent once more (to another endpoint, or after a retryable answer). Same
  // single-writer rule as record().
  void retry(unsigned worker, Version v) noexcept { bump(counters(worker, v).retries, 1); }

  // Callable from any thread, concurrently with record(). Each value is monotonic across
  // calls; values of different counters may be a few in-flight records apart.
  VersionTotals sum(Version v) const noexcept;
  Snapshot totals(Version v) const noexcept;

 private:
  friend class Metrics;
  RouteStats(std::string name, unsigned workers);

  struct Counters {
    std::array<std::atomic<std::uint64_t>, kCodeClasses> code_class;
    std::array<std::atomic<std::uint64_t>, kBuckets> buckets;
    std::atomic<std::uint64_t> sum_us;
    std::array<std::atomic<std::uint64_t>, kUpstreamErrors> upstream_errors;
    std::atomic<std::uint64_t> retries;
    std::atomic<std::uint64_t> half_requests;
    std::atomic<std::uint64_t> half_5xx;
    std::array<std::atomic<std::uint64_t>, kSketchBuckets> latency;
  };
  // 128, not 64: x86's adjacent-line prefetcher pulls cache lines in pairs, so 64-byte
  // alignment still lets two workers' shards ping-pong.
  struct alignas(128) Shard {
    std::array<Counters, kVersions> by_version;
  };

  // A single writer per shard makes load+store exact, and unlike fetch_add it is not a locked
  // instruction. Atomics (relaxed) only so the scrape thread's reads are not data races.
  static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n) noexcept {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  Counters& counters(unsigned worker, Version v) noexcept {
    assert(worker < workers_);
    return shards_[worker].by_version[static_cast<std::size_t>(v)];
  }

  std::string name_;
  unsigned workers_;
  std::unique_ptr<Shard[]> shards_;  // value-initialised: C++20 std::atomic<T>{} is T{}
};

}  // namespace gp::metrics
