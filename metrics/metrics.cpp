#include "metrics/metrics.hpp"

#include <prometheus/client_metric.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace gp::metrics {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

double unix_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// Start of this process as the kernel recorded it (what Prometheus' own process collectors
// export): /proc/stat btime + /proc/self/stat starttime. Falls back to now, which is within
// milliseconds of it when Metrics is built at startup.
double process_start_time() {
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  const std::size_t paren = line.rfind(')');  // comm may contain spaces and parentheses
  std::ifstream sys("/proc/stat");
  std::string key;
  double btime = -1;
  while (sys >> key) {
    if (key == "btime") {
      sys >> btime;
      break;
    }
    sys.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  if (paren == std::string::npos || btime < 0 || ticks <= 0) return unix_now();
  std::istringstream fields(line.substr(paren + 1));
  std::string field;
  // Fields after "(comm)" start at field 3 (state); starttime is field 22.
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return btime + std::stod(field) / static_cast<double>(ticks);
  }
  return unix_now();
}

std::size_t state_index(std::string_view state) {
  const auto it = std::find(kRolloutStates.begin(), kRolloutStates.end(), state);
  if (it == kRolloutStates.end())
    throw std::invalid_argument("metrics: unknown rollout state '" + std::string(state) + "'");
  return static_cast<std::size_t>(it - kRolloutStates.begin());
}

ClientMetric labelled(std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  return m;
}

}  // namespace

Metrics::Metrics(unsigned workers, std::string version_string)
    : workers_(workers),
      connections_(workers > 0 ? std::make_unique<ConnectionShard[]>(workers)
                               : throw std::invalid_argument("metrics: workers must be > 0")),
      registry_(std::make_shared<prometheus::Registry>()),
      canary_weight_(prometheus::BuildGauge()
                         .Name("grayproxy_canary_weight_percent")
                         .Help("Current share of the route's traffic sent to the canary, in "
                               "percent (0-100).")
                         .Register(*registry_)),
      transitions_(prometheus::BuildCounter()
                       .Name("grayproxy_rollout_transitions_total")
                       .Help("Rollout state transitions, by route and the state entered.")
                       .Register(*registry_)),
      reloads_success_(prometheus::BuildCounter()
                           .Name("grayproxy_config_reloads_total")
                           .Help("Configuration loads and reloads, by result.")
                           .Register(*registry_)
                           .Add({{"result", "success"}})),
      // Same family again: the registry merges by name (InsertBehavior::Merge).
      reloads_failure_(prometheus::BuildCounter()
                           .Name("grayproxy_config_reloads_total")
                           .Help("Configuration loads and reloads, by result.")
                           .Register(*registry_)
                           .Add({{"result", "failure"}})),
      last_reload_success_(
          prometheus::BuildGauge()
              .Name("grayproxy_config_last_reload_success_timestamp_seconds")
              .Help("Unix time of the last successful configuration load (0: none yet).")
              .Register(*registry_)
              .Add({})) {
  prometheus::BuildGauge()
      .Name("grayproxy_build_info")
      .Help("Always 1; the version label is the grayproxy build.")
      .Register(*registry_)
      .Add({{"version", std::move(version_string)}})
      .Set(1);
  prometheus::BuildGauge()
      .Name("process_start_time_seconds")
      .Help("Start time of the process since unix epoch in seconds.")
      .Register(*registry_)
      .Add({})
      .Set(process_start_time());
  refused_max_connections_ = &prometheus::BuildCounter()
                                  .Name("grayproxy_connections_refused_total")
                                  .Help("Client connections closed at accept, by reason.")
                                  .Register(*registry_)
                                  .Add({{"reason", "max_connections"}});
  auto& rejected = prometheus::BuildCounter()
                       .Name("grayproxy_downstream_rejected_total")
                       .Help(
                           "Requests the proxy refused itself because of what the client "
                           "sent (malformed or ambiguous framing, limits, head timeout), by "
                           "reason.")
                       .Register(*registry_);
  for (std::size_t r = 0; r < kRejectReasons; ++r)
    rejected_[r] =
        &rejected.Add({{"reason", std::string(to_string(static_cast<RejectReason>(r)))}});
  auto& closed = prometheus::BuildCounter()
                     .Name("grayproxy_upstream_connections_closed_total")
                     .Help(
                         "Upstream connections closed instead of reused, by reason (stray "
                         "bytes after a response, closed by the upstream while idle, a "
                         "response that does not allow reuse, pool full, exchange aborted).")
                     .Register(*registry_);
  for (std::size_t c = 0; c < kUpstreamCloses; ++c)
    upstream_closed_[c] =
        &closed.Add({{"reason", std::string(to_string(static_cast<UpstreamClose>(c)))}});
  route(kUnmatchedRoute);
}

Metrics::~Metrics() = default;

RouteStats& Metrics::route(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = routes_.find(name);
  if (it == routes_.end()) {
    it = routes_
             .emplace(std::string(name),
                      std::unique_ptr<RouteStats>(new RouteStats(std::string(name), workers_)))
             .first;
  }
  return *it->second;
}

EndpointStats& Metrics::endpoint(std::string_view cluster, std::string_view address) {
  std::lock_guard lock(mutex_);
  auto& slot = endpoints_[{std::string(cluster), std::string(address)}];
  if (!slot) slot = std::make_unique<EndpointStats>();
  return *slot;
}

Snapshot Metrics::totals(std::string_view route, Version v) const {
  const RouteStats* stats = nullptr;
  {
    std::lock_guard lock(mutex_);
    const auto it = routes_.find(route);
    if (it == routes_.end()) return {};
    stats = it->second.get();
  }
  return stats->totals(v);  // RouteStats live as long as *this: no lock needed to read
}

void Metrics::set_canary_weight(std::string_view route, double percent) {
  canary_weight_.Add({{"route", std::string(route)}}).Set(percent);
}

void Metrics::set_rollout_state(std::string_view route, std::string_view state) {
  const std::size_t index = state_index(state);
  std::lock_guard lock(mutex_);
  const auto it = rollout_state_.find(route);
  if (it == rollout_state_.end()) {
    rollout_state_.emplace(std::string(route), index);
  } else {
    it->second = index;
  }
}

void Metrics::rollout_transition(std::string_view route, std::string_view to) {
  state_index(to);  // validates
  transitions_.Add({{"route", std::string(route)}, {"to", std::string(to)}}).Increment();
}

void Metrics::config_reload(bool success) {
  if (success) {
    reloads_success_.Increment();
    last_reload_success_.Set(unix_now());
  } else {
    reloads_failure_.Increment();
  }
}

std::vector<MetricFamily> Metrics::Collect() const {
  std::vector<const RouteStats*> routes;
  std::vector<std::pair<std::string, std::size_t>> states;
  std::vector<std::pair<const std::pair<std::string, std::string>*, const EndpointStats*>>
      endpoints;
  {
    // Copy out under the lock; the shards are summed after it, so a scrape never holds up
    // route() (a reload) for long.
    std::lock_guard lock(mutex_);
    routes.reserve(routes_.size());
    for (const auto& [name, stats] : routes_) routes.push_back(stats.get());
    states.assign(rollout_state_.begin(), rollout_state_.end());
    // Entries are never erased, so the key and stats pointers stay valid after the lock.
    for (const auto& [key, stats] : endpoints_) endpoints.emplace_back(&key, stats.get());
  }

  MetricFamily requests{"grayproxy_requests_total",
                        "Requests answered, by route, version (stable or canary) and status "
                        "class; route \"none\" counts requests that matched no route.",
                        MetricType::Counter,
                        {}};
  MetricFamily duration{"grayproxy_request_duration_seconds",
                        "Time from reading the request head to the last byte of the response, "
                        "by route and version.",
                        MetricType::Histogram,
                        {}};
  MetricFamily upstream{"grayproxy_upstream_errors_total",
                        "Failed upstream attempts, by route, version and reason.",
                        MetricType::Counter,
                        {}};
  MetricFamily retries{"grayproxy_upstream_retries_total",
                       "Requests sent upstream once more after a failed attempt (retry policy, "
                       "or the next endpoint after a failed connection), by route and version.",
                       MetricType::Counter,
                       {}};
  // Every label combination of a known route is emitted, zeros included, so dashboards and
  // rate() see a series from the first scrape instead of losing its first increments.
  for (const RouteStats* stats : routes) {
    for (Version v : {Version::stable, Version::canary}) {
      const VersionTotals t = stats->sum(v);
      const std::string version(to_string(v));
      for (std::size_t c = 0; c < kCodeClasses; ++c) {
        ClientMetric m = labelled({{"route", stats->name()},
                                   {"version", version},
                                   {"code_class", std::string(kCodeClassNames[c])}});
        m.counter.value = static_cast<double>(t.code_class[c]);
        requests.metric.push_back(std::move(m));
      }
      ClientMetric h = labelled({{"route", stats->name()}, {"version", version}});
      h.histogram.bucket.resize(kBuckets);
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < kBuckets; ++i) {
        cumulative += t.buckets[i];
        h.histogram.bucket[i] = {cumulative, bucket_upper_bound_seconds(i)};
      }
      // _count from the same loaded buckets, so it always equals the +Inf bucket.
      h.histogram.sample_count = cumulative;
      h.histogram.sample_sum = static_cast<double>(t.sum_us) / 1e6;
      duration.metric.push_back(std::move(h));
      for (std::size_t r = 0; r < kUpstreamErrors; ++r) {
        ClientMetric m =
            labelled({{"route", stats->name()},
                      {"version", version},
                      {"reason", std::string(to_string(static_cast<UpstreamError>(r)))}});
        m.counter.value = static_cast<double>(t.upstream_errors[r]);
        upstream.metric.push_back(std::move(m));
      }
      ClientMetric r = labelled({{"route", stats->name()}, {"version", version}});
      r.counter.value = static_cast<double>(t.retries);
      retries.metric.push_back(std::move(r));
    }
  }

  MetricFamily rollout{"grayproxy_rollout_state",
                       "1 for the route's current rollout state, 0 for the other states.",
                       MetricType::Gauge,
                       {}};
  for (const auto& [route, current] : states) {
    for (std::size_t s = 0; s < kRolloutStates.size(); ++s) {
      ClientMetric m = labelled({{"route", route}, {"state", std::string(kRolloutStates[s])}});
      m.gauge.value = s == current ? 1 : 0;
      rollout.metric.push_back(std::move(m));
    }
  }

  MetricFamily connections{"grayproxy_downstream_connections_active",
                           "Open client connections, all listeners.",
                           MetricType::Gauge,
                           {}};
  std::int64_t active = 0;
  for (unsigned w = 0; w < workers_; ++w)
    active += connections_[w].active.load(std::memory_order_relaxed);
  ClientMetric c;
  c.gauge.value = static_cast<double>(active);
  connections.metric.push_back(std::move(c));

  MetricFamily ejected{"grayproxy_upstream_endpoint_ejected",
                       "1 while outlier detection keeps the endpoint out of its cluster.",
                       MetricType::Gauge,
                       {}};
  MetricFamily ejections{"grayproxy_upstream_ejections_total",
                         "Ejections of the endpoint by outlier detection.",
                         MetricType::Counter,
                         {}};
  const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now().time_since_epoch())
                                  .count();
  for (const auto& [key, stats] : endpoints) {
    ClientMetric g = labelled({{"cluster", key->first}, {"endpoint", key->second}});
    g.gauge.value = now_ns < stats->ejected_until_ns.load(std::memory_order_relaxed) ? 1 : 0;
    ejected.metric.push_back(std::move(g));
    ClientMetric n = labelled({{"cluster", key->first}, {"endpoint", key->second}});
    n.counter.value = static_cast<double>(stats->ejections.load(std::memory_order_relaxed));
    ejections.metric.push_back(std::move(n));
  }

  std::vector<MetricFamily> families = registry_->Collect();
  for (MetricFamily* f :
       {&requests, &duration, &upstream, &retries, &rollout, &connections, &ejected, &ejections})
    families.push_back(std::move(*f));
  // A family without samples is noise (HELP/TYPE only); drop it until it has one.
  std::erase_if(families, [](const MetricFamily& f) { return f.metric.empty(); });
  std::sort(families.begin(), families.end(),
            [](const MetricFamily& a, const MetricFamily& b) { return a.name < b.name; });
  return families;
}

std::string Metrics::serialize() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace gp::metrics
