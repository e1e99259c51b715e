// Hot-path cost of the routing library: cohort hash, split decision, route match.
// Run: ./split_bench --benchmark_min_time=1   (numbers are per call)
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "routing/cohort.hpp"
#include "routing/route_table.hpp"
#include "routing/split.hpp"

namespace {

using namespace gp;
using namespace gp::routing;
namespace http = boost::beast::http;

void BM_Bucket(benchmark::State& state) {
  const std::string key =
      state.range(0) == 16 ? "0123456789abcdef" : "3f2b8c1e-9d4a-4c6b-8e21-7a5f0c9d1b34";
  const std::uint64_t seed = salt_seed("shop");
  for (auto _ : state) {
    std::string_view k = key;
    benchmark::DoNotOptimize(k);  // keep the length from being folded into the hash
    benchmark::DoNotOptimize(bucket(k, seed));
  }
}
BENCHMARK(BM_Bucket)->Arg(16)->Arg(36);

// A browser-like request head: the splitter must find its key among ordinary headers.
http::fields typical_headers() {
  http::fields h;
  h.set(http::field::host, "shop.example.com");
  h.set(http::field::user_agent, "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0");
  h.set(http::field::accept, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
  h.set(http::field::accept_language, "en-US,en;q=0.5");
  h.set(http::field::accept_encoding, "gzip, deflate, br");
  h.set("x-request-id", "7d6c1f0e-5b2a-4e39-9a71-0c8d2e4f6b13");
  return h;
}

config::Split header_split(bool with_overrides) {
  config::Split s;
  s.weight_bp = 1000;
  s.hash_on = {config::KeySource::header, "x-user-id"};
  if (with_overrides)
    s.overrides = {{config::KeySource::header, "x-canary", "always", config::Version::canary},
                   {config::KeySource::header, "x-canary", "never", config::Version::stable}};
  return s;
}

void BM_DecideHeader(benchmark::State& state) {
  const Splitter splitter(header_split(state.range(0) != 0), "shop");
  http::fields h = typical_headers();
  h.set("x-user-id", "3f2b8c1e-9d4a-4c6b-8e21-7a5f0c9d1b34");
  RandomSource rng(1);
  std::string new_cookie_id;
  const SplitInput in{h, "192.0.2.10"};
  for (auto _ : state) benchmark::DoNotOptimize(splitter.decide(in, 1000, new_cookie_id, rng));
}
BENCHMARK(BM_DecideHeader)->ArgName("overrides")->Arg(0)->Arg(1);

void BM_DecideCookie(benchmark::State& state) {
  config::Split cfg;
  cfg.weight_bp = 1000;
  cfg.hash_on = {config::KeySource::cookie, "uid"};
  cfg.fallback = config::Fallback::cookie;
  const Splitter splitter(cfg, "shop");
  http::fields h = typical_headers();
  // The key is the last of 5 cookies: the parser walks all of them.
  h.set(http::field::cookie,
        "_ga=GA1.2.1234567890.1700000000; theme=dark; lang=en-US; "
        "session=Zm9vYmFyYmF6cXV4; uid=3f2b8c1e9d4a4c6b8e217a5f0c9d1b34");
  RandomSource rng(1);
  std::string new_cookie_id;
  const SplitInput in{h, "192.0.2.10"};
  for (auto _ : state) benchmark::DoNotOptimize(splitter.decide(in, 1000, new_cookie_id, rng));
}
BENCHMARK(BM_DecideCookie);

void BM_DecideFallbackCookie(benchmark::State& state) {
  config::Split cfg;
  cfg.weight_bp = 1000;
  cfg.hash_on = {config::KeySource::cookie, "uid"};
  cfg.fallback = config::Fallback::cookie;
  const Splitter splitter(cfg, "shop");
  const http::fields h = typical_headers();
  RandomSource rng(1);
  std::string new_cookie_id;  // reused: after the first call the id fits without allocating
  const SplitInput in{h, "192.0.2.10"};
  for (auto _ : state) benchmark::DoNotOptimize(splitter.decide(in, 1000, new_cookie_id, rng));
}
BENCHMARK(BM_DecideFallbackCookie);

config::Route route(std::string host, std::string prefix,
                    std::optional<config::HeaderMatch> header = std::nullopt) {
  config::Route r;
  r.name = host + prefix;
  r.match = {std::move(host), std::move(prefix), std::move(header)};
  r.stable = "v1";
  return r;
}

// 20 routes of mixed kinds; the request hits a wildcard route, so most exact-host entries
// are checked and rejected first (a near-worst case for the linear scan).
void BM_RouteMatch(benchmark::State& state) {
  std::vector<config::Route> routes;
  for (int i = 0; i < 8; ++i) {
    routes.push_back(route("svc" + std::to_string(i) + ".example.com", "/"));
    routes.push_back(
        route("svc" + std::to_string(i) + ".example.com", "/api/v" + std::to_string(i)));
  }
  routes.push_back(route("*.example.com", "/", config::HeaderMatch{"x-beta", "1"}));
  routes.push_back(route("*.example.com", "/api"));
  routes.push_back(route("*.example.org", "/"));
  routes.push_back(route("", "/"));
  const RouteTable table(routes);
  http::fields h = typical_headers();
  h.set("x-beta", "1");
  int expected = 17;
  if (table.match("Shop.Example.com:8443", "/api/orders/42?page=2", h) != expected)
    state.SkipWithError("unexpected route");
  for (auto _ : state)
    benchmark::DoNotOptimize(table.match("Shop.Example.com:8443", "/api/orders/42?page=2", h));
}
BENCHMARK(BM_RouteMatch);

}  // namespace

BENCHMARK_MAIN();
