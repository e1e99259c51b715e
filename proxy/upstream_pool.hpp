// A worker's upstream connections: idle keep-alive connections per endpoint (bounded),
// and passive ejection of endpoints that refused a connection. Owned by one worker
// thread, so nothing here is locked.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include "proxy/asio_types.hpp"

namespace gp::proxy {

struct UpstreamConn {
  explicit UpstreamConn(Executor ex) : stream(ex) {}
  Stream stream;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idle_since;
};

class UpstreamPool {
 public:
  UpstreamPool(Executor ex, std::size_t max_idle_per_endpoint);

  // An idle connection to ep that still looks open, or null.
  std::unique_ptr<UpstreamConn> take(const tcp::endpoint& ep);
  // Keeps conn for reuse, unless the endpoint already has enough idle connections.
  void give_back(const tcp::endpoint& ep, std::unique_ptr<UpstreamConn> conn);
  // Opens a new connection within the timeout.
  Task<std::pair<beast::error_code, std::unique_ptr<UpstreamConn>>> connect(
      const tcp::endpoint& ep, std::chrono::milliseconds timeout);

  bool ejected(const tcp::endpoint& ep, std::chrono::steady_clock::time_point now) const;
  void eject(const tcp::endpoint& ep, std::chrono::steady_clock::time_point until);

  // Closes idle connections to endpoints that are no longer configured (after a reload).
  void retain_only(const std::vector<tcp::endpoint>& endpoints);
  void close_all();
  std::size_t idle_count() const;

 private:
  Executor ex_;
  std::size_t max_idle_;
  std::unordered_map<tcp::endpoint, std::vector<std::unique_ptr<UpstreamConn>>> idle_;
  std::unordered_map<tcp::endpoint, std::chrono::steady_clock::time_point> ejected_until_;
};

}  // namespace gp::proxy
