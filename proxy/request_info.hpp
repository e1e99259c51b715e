// One request as it goes through the proxy (Envoy's StreamInfo): filled once, by the session
// and the exchange, and read once when the request ends, for its metrics and its access log
// line.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "proxy/asio_types.hpp"
#include "proxy/snapshot.hpp"

namespace gp::proxy {

struct RequestInfo {
  std::chrono::steady_clock::time_point start;
  std::shared_ptr<const Snapshot> snap;  // the configuration the request runs under
  const RouteRuntime* route = nullptr;   // null: no route matched (route="none")
  config::Version version = config::Version::stable;
  int cluster = -1;              // index into snap->clusters
  std::uint32_t bucket = 10000;  // cohort bucket; 10000 = none
  boost::beast::http::verb method = boost::beast::http::verb::get;
  unsigned client_version = 11;
  std::string method_text;      // for the access log only (copied before rewriting)
  std::string path;             // for the access log only, without the query
  tcp::endpoint upstream;       // the endpoint that answered, or failed last
  std::uint64_t bytes_in = 0;   // request body bytes (tunnel: client to upstream)
  std::uint64_t bytes_out = 0;  // response body bytes (tunnel: upstream to client)

  metrics::RouteStats& stats() const { return route ? *route->stats : *snap->unmatched; }
  // The user's half of the hash space for the A/A split (metrics::Snapshot::half_requests): even
  // cohort buckets; requests without a bucket (overrides) are in neither half.
  bool aa_half() const { return bucket < 10000 && bucket % 2 == 0; }
};

}  // namespace gp::proxy
