#include "proxy/snapshot.hpp"

#include "proxy/tls_context.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <utility>

namespace gp::proxy {

namespace {

std::vector<boost::asio::ip::tcp::endpoint> resolve(const config::Cluster& cluster) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::resolver resolver(ioc);
  std::vector<boost::asio::ip::tcp::endpoint> out;
  for (auto const& addr : cluster.endpoints) {
    boost::system::error_code ec;
    auto results = resolver.resolve(addr.host, std::to_string(addr.port),
                                    boost::asio::ip::tcp::resolver::numeric_service, ec);
    if (ec || results.empty())
      throw config::Error("cluster " + cluster.name + ": cannot resolve " + addr.str() + ": " +
                          (ec ? ec.message() : std::string("no address")));
    out.push_back(results.begin()->endpoint());
  }
  return out;
}

int cluster_index(const config::Config& cfg, const std::string& name) {
  for (std::size_t i = 0; i < cfg.clusters.size(); ++i)
    if (cfg.clusters[i].name == name) return static_cast<int>(i);
  return -1;
}

// Outlier state and breaker counters survive a reload: the cluster's by name, an endpoint's
// while its address stays configured in that cluster.
void carry_cluster_state(ClusterRuntime& rt, const Snapshot* previous, metrics::Metrics& metrics) {
  const ClusterRuntime* old = nullptr;
  if (previous)
    for (auto const& oc : previous->clusters)
      if (oc.config->name == rt.config->name) old = &oc;
  rt.state = old ? old->state : std::make_shared<ClusterState>();
  for (auto const& a : rt.config->endpoints) {
    const std::string address = a.str();
    std::shared_ptr<EndpointHealth> h;
    if (old)
      for (auto const& oh : old->health)
        if (oh->address() == address) h = oh;
    if (!h)
      h = std::make_shared<EndpointHealth>(address, &metrics.endpoint(rt.config->name, address));
    rt.health.push_back(std::move(h));
  }
}

}  // namespace

std::shared_ptr<boost::asio::ssl::context> Snapshot::tls_for(const config::Listener& l) const {
  for (std::size_t i = 0; i < config->listeners.size(); ++i)
    if (config->listeners[i] == l) return listener_tls[i];
  return nullptr;
}

std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> config,
                                               metrics::Metrics& metrics,
                                               const Snapshot* previous) {
  auto snap = std::make_shared<Snapshot>();
  snap->config = std::move(config);
  const config::Config& cfg = *snap->config;

  snap->clusters.reserve(cfg.clusters.size());
  for (auto const& c : cfg.clusters) {
    ClusterRuntime rt{&c, resolve(c), nullptr, {}, routing::outlier_policy(c), nullptr, {}};
    carry_cluster_state(rt, previous, metrics);
    if (c.tls) {
      rt.tls = make_client_context(c);
      for (auto const& a : c.endpoints)
        rt.server_names.push_back(c.tls->sni.empty() ? a.host : c.tls->sni);
    }
    snap->clusters.push_back(std::move(rt));
  }
  for (auto const& l : cfg.listeners)
    snap->listener_tls.push_back(l.tls ? make_server_context(l) : nullptr);

  snap->routes.reserve(cfg.routes.size());
  for (auto const& r : cfg.routes) {
    RouteRuntime rt;
    rt.config = &r;
    rt.stable = cluster_index(cfg, r.stable);
    rt.canary = r.canary.empty() ? -1 : cluster_index(cfg, r.canary);
    const std::uint32_t yaml_weight = r.split ? r.split->weight_bp : 0;
    if (r.split) rt.splitter.emplace(*r.split, r.name);

    if (previous) {
      for (auto const& old : previous->routes)
        if (old.config->name == r.name && old.live->configured_weight_bp == yaml_weight) {
          rt.live = old.live;
          break;
        }
    }
    if (!rt.live) {
      rt.live = std::make_shared<RouteLive>();
      rt.live->weight_bp.store(yaml_weight, std::memory_order_relaxed);
      rt.live->configured_weight_bp = yaml_weight;
    }
    rt.stats = &metrics.route(r.name);
    snap->routes.push_back(std::move(rt));
  }
  snap->table.emplace(cfg.routes);
  snap->unmatched = &metrics.route("none");
  return snap;
}

}  // namespace gp::proxy
