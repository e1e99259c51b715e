// The immutable routing snapshot: a validated config with everything the request path
// needs precomputed (route table, splitters, resolved endpoints, metric handles).
// Published by the server through a generation counter; a request keeps the snapshot
// it started with.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "proxy/upstream/cluster_state.hpp"
#include "routing/outlier.hpp"
#include "routing/route_table.hpp"
#include "routing/split.hpp"

namespace gp::proxy {

struct ClusterRuntime {
  const config::Cluster* config = nullptr;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // resolved when the snapshot is built
  std::shared_ptr<boost::asio::ssl::context> tls;         // null: plain HTTP
  std::vector<std::string> server_names;                  // per endpoint: SNI and verified name
  routing::OutlierPolicy outlier;
  std::shared_ptr<ClusterState> state;  // all workers; kept across reloads by cluster name
  EndpointHealthList health;            // per endpoint; kept across reloads by address
};

// Live per-route state that outlives snapshots: the canary weight moves without a rebuild.
struct RouteLive {
  std::atomic<std::uint32_t> weight_bp{0};
  std::uint32_t configured_weight_bp = 0;  // the YAML weight it was last set from
};

struct RouteRuntime {
  const config::Route* config = nullptr;
  int stable = -1;  // index into Snapshot::clusters
  int canary = -1;  // -1: plain route
  std::optional<routing::Splitter> splitter;
  std::shared_ptr<RouteLive> live;
  metrics::RouteStats* stats = nullptr;
};

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::vector<ClusterRuntime> clusters;
  std::vector<RouteRuntime> routes;
  std::optional<routing::RouteTable> table;
  // Per listener of the config (same order); null for plain listeners. Built with the
  // snapshot, so a reload re-reads certificates.
  std::vector<std::shared_ptr<boost::asio::ssl::context>> listener_tls;
  std::shared_ptr<boost::asio::ssl::context> tls_for(const config::Listener& l) const;
  metrics::RouteStats* unmatched = nullptr;  // route="none"
};

// Builds a snapshot. Live route state is taken from `previous` for routes of the same
// name whose YAML weight did not change (an operator edit wins, otherwise the live
// weight carries on). Throws config::Error when an endpoint cannot be resolved or a
// certificate, key or CA file cannot be loaded.
std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> config,
                                               metrics::Metrics& metrics, const Snapshot* previous);

}  // namespace gp::proxy
