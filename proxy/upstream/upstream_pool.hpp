// A worker's upstream connections: idle keep-alive connections per endpoint (bounded).
// Owned by one worker thread, so nothing here is locked. (Endpoint health is shared by all
// workers: proxy/upstream/cluster_state.hpp.)
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "metrics/metrics.hpp"
#include "proxy/asio_types.hpp"

namespace gp::proxy {

// A connection to an upstream endpoint: plain TCP, or TLS over it.
struct UpstreamConn {
  explicit UpstreamConn(Executor ex) : plain(std::in_place, ex) {}
  UpstreamConn(Executor ex, boost::asio::ssl::context& ctx) : tls(std::in_place, ex, ctx) {}
  std::optional<Stream> plain;
  std::optional<TlsStream> tls;
  Stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  template <class S>
  S& as() {
    if constexpr (std::is_same_v<S, TlsStream>)
      return *tls;
    else
      return *plain;
  }
  std::chrono::steady_clock::time_point idle_since;
  const boost::asio::ssl::context* tls_context = nullptr;  // which cluster's TLS made it

  // Closing without close_notify would make OpenSSL mark the session as not resumable;
  // an idle connection that is dropped is no reason to lose it.
  ~UpstreamConn() {
    if (tls) SSL_set_shutdown(tls->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
};

// Pooled connections belong to an endpoint as reached with one TLS setting: two clusters
// naming the same address with different TLS (or none) never share a connection or a
// session.
struct PoolKey {
  tcp::endpoint endpoint;
  const boost::asio::ssl::context* tls = nullptr;
  friend bool operator==(const PoolKey&, const PoolKey&) = default;
};
struct PoolKeyHash {
  std::size_t operator()(const PoolKey& k) const noexcept {
    return std::hash<tcp::endpoint>()(k.endpoint) ^ (std::hash<const void*>()(k.tls) << 1);
  }
};

class UpstreamPool {
 public:
  UpstreamPool(Executor ex, std::size_t max_idle_per_endpoint, metrics::Metrics& metrics);

  // An idle connection to ep (made with the given TLS context, or plain), or null. Each one
  // is peeked first (one non-blocking recv with MSG_PEEK): a connection with an unread byte
  // or a close from the upstream is closed, counted and skipped.
  std::unique_ptr<UpstreamConn> take(const tcp::endpoint& ep, const boost::asio::ssl::context* tls);
  // Keeps conn for reuse, unless the endpoint already has enough idle connections. Only for
  // a connection decide_reuse() allowed (proxy/upstream/reuse.hpp).
  void give_back(const tcp::endpoint& ep, std::unique_ptr<UpstreamConn> conn);
  // Opens a new connection (and, with a TLS context, completes the handshake: SNI and
  // host name verification against `server_name`, resuming the endpoint's last session)
  // within the timeout.
  // (A coroutine: its arguments are taken by value, so none can dangle while it waits.)
  Task<std::pair<beast::error_code, std::unique_ptr<UpstreamConn>>> connect(
      tcp::endpoint ep, std::chrono::milliseconds timeout, boost::asio::ssl::context* tls = nullptr,
      std::string server_name = {}, bool verify = true);

  // Closes idle connections to endpoints that are no longer configured (after a reload).
  void retain_only(const std::vector<tcp::endpoint>& endpoints);
  void close_all();
  std::size_t idle_count() const;

 private:
  Executor ex_;
  std::size_t max_idle_;
  metrics::Metrics& metrics_;
  std::unordered_map<PoolKey, std::vector<std::unique_ptr<UpstreamConn>>, PoolKeyHash> idle_;
  struct SessionFree {
    void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
  };
  // The last TLS session per endpoint, taken when a connection returns to the pool (TLS 1.3
  // tickets arrive after the handshake), offered by the next connection for resumption.
  std::unordered_map<PoolKey, std::unique_ptr<SSL_SESSION, SessionFree>, PoolKeyHash> tls_sessions_;
};

}  // namespace gp::proxy
