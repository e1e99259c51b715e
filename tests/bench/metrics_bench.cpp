// Cost of recording one request, for the design choice in docs/design.md "Metrics":
// per-worker shards (RouteStats::record) against prometheus-cpp used directly
// (Histogram::Observe takes a mutex; Family::Add looks up a map) and against one shared set of
// atomic counters (fetch_add: a contended locked RMW).
#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "metrics/metrics.hpp"

namespace {

using gp::metrics::Metrics;
using gp::metrics::RouteStats;
using gp::metrics::Version;

constexpr unsigned kMaxThreads = 8;
constexpr std::size_t kSamples = 4096;  // power of two: the index wraps with a mask

struct Sample {
  std::chrono::nanoseconds latency;
  unsigned status;
  Version version;
};

// Latencies log-normal around 5 ms (spanning ~0.3 ms .. 100 ms), 1% 5xx, 10% canary: a
// realistic spread, so the bucket search is not trivially predicted.
std::vector<Sample> samples(unsigned seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> lat(std::log(5e6), 1.0);
  std::uniform_int_distribution<int> pct(0, 99);
  std::vector<Sample> out(kSamples);
  for (Sample& s : out) {
    s.latency = std::chrono::nanoseconds(static_cast<std::int64_t>(lat(rng)));
    s.status = pct(rng) == 0 ? 503 : 200;
    s.version = pct(rng) < 10 ? Version::canary : Version::stable;
  }
  return out;
}

std::vector<double> bounds_seconds() {
  std::vector<double> b;
  for (std::size_t i = 0; i + 1 < gp::metrics::kBuckets; ++i)
    b.push_back(gp::metrics::bucket_upper_bound_seconds(i));
  return b;
}

// The design: each benchmark thread is a worker writing its own shard.
void BM_RouteStatsRecord(benchmark::State& state) {
  static Metrics metrics(kMaxThreads, "bench");
  static RouteStats& route = metrics.route("shop");
  const unsigned worker = static_cast<unsigned>(state.thread_index());
  const std::vector<Sample> in = samples(worker + 1);
  std::size_t i = 0;
  for (auto _ : state) {
    const Sample& s = in[i++ & (kSamples - 1)];
    route.record(worker, s.version, s.status, s.latency);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RouteStatsRecord)->Threads(1)->Threads(2)->Threads(4);

// prometheus-cpp with handles resolved up front (the best case of using it directly): every
// thread observes into the same Histogram, whose Observe locks a mutex.
void BM_PrometheusHistogramObserve(benchmark::State& state) {
  static prometheus::Registry registry;
  static auto& family = prometheus::BuildHistogram()
                            .Name("bench_request_duration_seconds")
                            .Help("bench")
                            .Register(registry);
  static prometheus::Histogram& stable = family.Add({{"version", "stable"}}, bounds_seconds());
  static prometheus::Histogram& canary = family.Add({{"version", "canary"}}, bounds_seconds());
  const std::vector<Sample> in = samples(static_cast<unsigned>(state.thread_index()) + 1);
  std::size_t i = 0;
  for (auto _ : state) {
    const Sample& s = in[i++ & (kSamples - 1)];
    (s.version == Version::canary ? canary : stable)
        .Observe(std::chrono::duration<double>(s.latency).count());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PrometheusHistogramObserve)->Threads(1)->Threads(2)->Threads(4);

// prometheus-cpp used naively: Family::Add (map lookup + label hashing) per request for the
// requests counter, then Observe.
void BM_PrometheusAddPerRequest(benchmark::State& state) {
  static prometheus::Registry registry;
  static auto& requests =
      prometheus::BuildCounter().Name("bench_requests_total").Help("bench").Register(registry);
  static auto& durations = prometheus::BuildHistogram()
                               .Name("bench_request_duration_seconds")
                               .Help("bench")
                               .Register(registry);
  static const std::vector<double> bounds = bounds_seconds();
  const std::vector<Sample> in = samples(static_cast<unsigned>(state.thread_index()) + 1);
  std::size_t i = 0;
  for (auto _ : state) {
    const Sample& s = in[i++ & (kSamples - 1)];
    const char* version = s.version == Version::canary ? "canary" : "stable";
    requests
        .Add({{"route", "shop"},
              {"version", version},
              {"code_class", s.status >= 500 ? "5xx" : "2xx"}})
        .Increment();
    durations.Add({{"route", "shop"}, {"version", version}}, bounds)
        .Observe(std::chrono::duration<double>(s.latency).count());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PrometheusAddPerRequest)->Threads(1)->Threads(2)->Threads(4);

// Unsharded lock-free alternative: one set of counters shared by all threads, fetch_add.
void BM_SharedAtomicFetchAdd(benchmark::State& state) {
  struct Shared {
    std::array<std::atomic<std::uint64_t>, gp::metrics::kCodeClasses> code_class{};
    std::array<std::atomic<std::uint64_t>, gp::metrics::kBuckets> buckets{};
    std::atomic<std::uint64_t> sum_us{0};
  };
  static std::array<Shared, 2> shared;
  const std::vector<Sample> in = samples(static_cast<unsigned>(state.thread_index()) + 1);
  std::size_t i = 0;
  for (auto _ : state) {
    const Sample& s = in[i++ & (kSamples - 1)];
    Shared& c = shared[static_cast<std::size_t>(s.version)];
    c.buckets[gp::metrics::bucket_index(s.latency)].fetch_add(1, std::memory_order_relaxed);
    c.sum_us.fetch_add(static_cast<std::uint64_t>(s.latency.count() / 1000),
                       std::memory_order_relaxed);
    c.code_class[gp::metrics::code_class_index(s.status)].fetch_add(1, std::memory_order_relaxed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SharedAtomicFetchAdd)->Threads(1)->Threads(2)->Threads(4);

// Scrape cost for context: summing shards of 50 routes x 8 workers and serialising.
void BM_Serialize50Routes8Workers(benchmark::State& state) {
  Metrics metrics(8, "bench");
  for (int r = 0; r < 50; ++r) {
    RouteStats& route = metrics.route("route-" + std::to_string(r));
    for (unsigned w = 0; w < 8; ++w)
      route.record(w, Version::stable, 200, std::chrono::milliseconds(r + 1));
  }
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string page = metrics.serialize();
    bytes = page.size();
    benchmark::DoNotOptimize(page.data());
  }
  state.counters["page_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Serialize50Routes8Workers)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
