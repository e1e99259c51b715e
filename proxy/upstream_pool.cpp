#include "proxy/upstream_pool.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace gp::proxy {

namespace {

// Connections idle for longer than this are likely closed by the upstream soon (common
// keep-alive timeouts are 5-75 s); dropping them avoids racing its close.
constexpr auto kMaxIdleAge = std::chrono::seconds(30);
constexpr auto kPeekAfter = std::chrono::milliseconds(100);

// A pooled connection is usable when the peer has neither closed it nor sent anything:
// a non-blocking peek must find no data and no EOF.
bool looks_open(Stream& s) {
  char byte;
  ssize_t n = ::recv(s.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

UpstreamPool::UpstreamPool(Executor ex, std::size_t max_idle_per_endpoint)
    : ex_(ex), max_idle_(max_idle_per_endpoint) {}

std::unique_ptr<UpstreamConn> UpstreamPool::take(const tcp::endpoint& ep) {
  auto it = idle_.find(ep);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = std::chrono::steady_clock::now();
  while (!list.empty()) {
    auto conn = std::move(list.back());  // most recently used first: warmest, least likely closed
    list.pop_back();
    const auto idle = now - conn->idle_since;
    // Under load a connection comes back within microseconds: skip the peek syscall then;
    // the retry of idempotent requests covers the rare close in that instant.
    if (idle < kPeekAfter || (idle < kMaxIdleAge && looks_open(conn->stream))) return conn;
    beast::error_code ignored;
    conn->stream.socket().close(ignored);
  }
  return nullptr;
}

void UpstreamPool::give_back(const tcp::endpoint& ep, std::unique_ptr<UpstreamConn> conn) {
  auto& list = idle_[ep];
  if (list.size() >= max_idle_ || conn->buffer.size() != 0) return;  // closes conn
  conn->idle_since = std::chrono::steady_clock::now();
  conn->stream.expires_never();
  list.push_back(std::move(conn));
}

Task<std::pair<beast::error_code, std::unique_ptr<UpstreamConn>>> UpstreamPool::connect(
    const tcp::endpoint& ep, std::chrono::milliseconds timeout) {
  auto conn = std::make_unique<UpstreamConn>(ex_);
  conn->stream.expires_after(timeout);
  auto [ec] = co_await conn->stream.async_connect(ep, use_task);
  if (!ec) {
    beast::error_code ignored;
    conn->stream.socket().set_option(tcp::no_delay(true), ignored);
  }
  co_return std::pair{ec, std::move(conn)};
}

bool UpstreamPool::ejected(const tcp::endpoint& ep,
                           std::chrono::steady_clock::time_point now) const {
  auto it = ejected_until_.find(ep);
  return it != ejected_until_.end() && now < it->second;
}

void UpstreamPool::eject(const tcp::endpoint& ep, std::chrono::steady_clock::time_point until) {
  ejected_until_[ep] = until;
}

void UpstreamPool::retain_only(const std::vector<tcp::endpoint>& endpoints) {
  std::erase_if(idle_, [&](auto const& entry) {
    return std::find(endpoints.begin(), endpoints.end(), entry.first) == endpoints.end();
  });
  std::erase_if(ejected_until_, [&](auto const& entry) {
    return std::find(endpoints.begin(), endpoints.end(), entry.first) == endpoints.end();
  });
}

void UpstreamPool::close_all() {
  idle_.clear();
}

std::size_t UpstreamPool::idle_count() const {
  std::size_t n = 0;
  for (auto const& [ep, list] : idle_) n += list.size();
  return n;
}

}  // namespace gp::proxy
