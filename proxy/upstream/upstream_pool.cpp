#include "proxy/upstream/upstream_pool.hpp"

#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace gp::proxy {

namespace {

// Connections idle for longer than this are likely closed by the upstream soon (common
// keep-alive timeouts are 5-75 s); dropping them avoids racing its close.
constexpr auto kMaxIdleAge = std::chrono::seconds(30);

enum class Peek { clean, bytes, closed };

// What an idle connection holds: nothing (usable), bytes the upstream sent outside any
// response, or its close (EOF or an error). One syscall, whatever the idle time: bytes that
// came after a response must never be read as the answer to the next request.
Peek peek(Stream& s) {
  char byte;
  const ssize_t n = ::recv(s.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return Peek::bytes;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Peek::clean;
  return Peek::closed;
}

}  // namespace

UpstreamPool::UpstreamPool(Executor ex, std::size_t max_idle_per_endpoint,
                           metrics::Metrics& metrics)
    : ex_(std::move(ex)), max_idle_(max_idle_per_endpoint), metrics_(metrics) {}

std::unique_ptr<UpstreamConn> UpstreamPool::take(const tcp::endpoint& ep,
                                                 const boost::asio::ssl::context* tls) {
  auto it = idle_.find(PoolKey{ep, tls});
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = std::chrono::steady_clock::now();
  while (!list.empty()) {
    auto conn = std::move(list.back());  // most recently used first: warmest, least likely closed
    list.pop_back();
    if (now - conn->idle_since >= kMaxIdleAge) continue;  // closes it
    const Peek p = peek(conn->tcp());
    if (p == Peek::clean) return conn;
    metrics_.upstream_connection_closed(p == Peek::bytes ? metrics::UpstreamClose::stray_bytes
                                                         : metrics::UpstreamClose::peer_closed);
    beast::error_code ignored;
    conn->tcp().socket().close(ignored);
  }
  return nullptr;
}

void UpstreamPool::give_back(const tcp::endpoint& ep, std::unique_ptr<UpstreamConn> conn) {
  const PoolKey key{ep, conn->tls_context};
  if (conn->tls) {
    if (SSL_SESSION* session = SSL_get1_session(conn->tls->native_handle()))
      tls_sessions_[key].reset(session);
  }
  auto& list = idle_[key];
  if (list.size() >= max_idle_) {
    metrics_.upstream_connection_closed(metrics::UpstreamClose::pool_full);
    return;  // closes conn
  }
  conn->idle_since = std::chrono::steady_clock::now();
  conn->tcp().expires_never();
  list.push_back(std::move(conn));
}

Task<std::pair<beast::error_code, std::unique_ptr<UpstreamConn>>> UpstreamPool::connect(
    tcp::endpoint ep, std::chrono::milliseconds timeout, boost::asio::ssl::context* tls,
    std::string server_name, bool verify) {
  auto conn = tls ? std::make_unique<UpstreamConn>(ex_, *tls) : std::make_unique<UpstreamConn>(ex_);
  conn->tls_context = tls;
  const PoolKey key{ep, tls};
  Stream& s = conn->tcp();
  s.expires_after(timeout);
  auto [ec] = co_await s.async_connect(ep, use_task);
  if (ec) co_return std::pair{ec, std::move(conn)};
  beast::error_code ignored;
  s.socket().set_option(tcp::no_delay(true), ignored);
  if (!tls) co_return std::pair{ec, std::move(conn)};

  SSL* ssl = conn->tls->native_handle();
  boost::system::error_code addr_ec;
  const auto ip = boost::asio::ip::make_address(server_name, addr_ec);
  if (addr_ec && !server_name.empty()) SSL_set_tlsext_host_name(ssl, server_name.c_str());
  if (verify) {
    // OpenSSL checks the name (or IP) against the certificate during the handshake.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (addr_ec)
      X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), server_name.size());
    else
      X509_VERIFY_PARAM_set1_ip_asc(param, ip.to_string().c_str());
  }
  if (auto it = tls_sessions_.find(key); it != tls_sessions_.end())
    SSL_set_session(ssl, it->second.get());
  s.expires_after(timeout);
  auto [hec] = co_await conn->tls->async_handshake(boost::asio::ssl::stream_base::client, use_task);
  if (hec) tls_sessions_.erase(key);
  co_return std::pair{hec, std::move(conn)};
}

void UpstreamPool::retain_only(const std::vector<tcp::endpoint>& endpoints) {
  std::erase_if(tls_sessions_, [&](auto const& entry) {
    return std::find(endpoints.begin(), endpoints.end(), entry.first.endpoint) == endpoints.end();
  });
  std::erase_if(idle_, [&](auto const& entry) {
    return std::find(endpoints.begin(), endpoints.end(), entry.first.endpoint) == endpoints.end();
  });
}

void UpstreamPool::close_all() {
  idle_.clear();
  tls_sessions_.clear();  // keyed by contexts of the configuration that is going away
}

std::size_t UpstreamPool::idle_count() const {
  std::size_t n = 0;
  for (auto const& [ep, list] : idle_) n += list.size();
  return n;
}

}  // namespace gp::proxy
