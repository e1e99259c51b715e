#include "proxy/server/worker.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "proxy/log.hpp"
#include "proxy/server.hpp"
#include "proxy/server/session.hpp"

namespace gp::proxy {

namespace {

// Sessions report I/O problems as error codes; an exception escaping one is a bug, and
// must be visible rather than swallowed by a detached coroutine.
void log_exception(const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::error("session ended by an exception").kv("error", ex.what());
  }
}

}  // namespace

Worker::Worker(Server& server, unsigned index)
    : server_(server),
      index_(index),
      pool_(ioc_.get_executor(), server.initial_config().limits.max_idle_upstream_per_endpoint,
            server.metrics()),
      max_connections_(std::max<std::uint32_t>(
          1, server.initial_config().limits.max_connections / server.worker_count())) {}

metrics::Metrics& Worker::metrics() {
  return server_.metrics();
}

std::unique_ptr<Acceptor> Worker::bind(const config::Listener& l) {
  auto results =
      tcp::resolver(ioc_).resolve(l.address.host, std::to_string(l.address.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service);
  auto endpoint = results.begin()->endpoint();
  auto acceptor = std::make_unique<Acceptor>(ioc_.get_executor());
  acceptor->open(endpoint.protocol());
  acceptor->set_option(asio::socket_base::reuse_address(true));
  int one = 1;
  if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    throw std::system_error(errno, std::generic_category(), "SO_REUSEPORT");
  beast::error_code ec;
  acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::system_error(ec, "listener " + l.name + ": cannot listen on " + l.address.str());
  return acceptor;
}

void Worker::adopt(const config::Listener& listener, std::unique_ptr<Acceptor> acceptor) {
  auto bound = std::make_shared<BoundListener>(BoundListener{listener, std::move(acceptor)});
  asio::post(ioc_, [this, bound] {
    if (draining_) return;  // closes the acceptor
    listeners_.push_back(bound);
    asio::co_spawn(ioc_, accept_loop(bound), asio::detached);
  });
}

void Worker::close_listener(const config::Listener& listener) {
  asio::post(ioc_, [this, listener] {
    std::erase_if(listeners_, [&](const std::shared_ptr<BoundListener>& l) {
      if (!(l->config == listener)) return false;
      beast::error_code ignored;
      l->acceptor->close(ignored);
      return true;
    });
  });
}

void Worker::access(const AccessEntry& e) {
  format_access_line(access_buf_, e, access_log_->json());
  if (access_buf_.size() >= 64 * 1024) flush_access_log();
}

void Worker::flush_access_log() {
  if (!access_log_ || access_buf_.empty()) return;
  access_log_->write(access_buf_);
  access_buf_.clear();
}

Task<void> Worker::access_log_flusher() {
  while (!draining_) {
    access_timer_->expires_after(std::chrono::seconds(1));
    co_await access_timer_->async_wait(use_task);
    flush_access_log();
  }
}

void Worker::run() {
  access_log_ = server_.access_log();
  if (access_log_) {
    access_timer_ = std::make_unique<Timer>(ioc_);
    asio::co_spawn(ioc_, access_log_flusher(), asio::detached);
  }
  thread_ = std::thread([this] {
    try {
      ioc_.run();
    } catch (const std::exception& e) {
      log::error("worker stopped by an exception").kv("worker", index_).kv("error", e.what());
    }
    finished_.store(true, std::memory_order_release);
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

Task<void> Worker::accept_loop(std::shared_ptr<BoundListener> l) {
  // Out of descriptors (EMFILE, ENFILE) or memory: accepting again at once fails the same
  // way, so the loop backs off, doubling from 10 ms to 1 s while the errors go on (nginx
  // stops accepting for a while the same way), and logs at most one line a second with the
  // count. Connections wait in the kernel's backlog meanwhile.
  constexpr auto kFirstBackoff = std::chrono::milliseconds(10);
  constexpr auto kMaxBackoff = std::chrono::milliseconds(1000);
  auto backoff = kFirstBackoff;
  std::chrono::steady_clock::time_point logged{};
  std::uint64_t unlogged = 0;
  for (;;) {
    auto [ec, socket] = co_await l->acceptor->async_accept(use_task);
    if (ec) {
      if (ec == asio::error::operation_aborted || !l->acceptor->is_open()) co_return;
      ++unlogged;
      const auto now = std::chrono::steady_clock::now();
      if (now - logged >= std::chrono::seconds(1)) {
        log::warn("accept failed, backing off")
            .kv("listener", l->config.name)
            .kv("error", ec.message())
            .kv("failures", unlogged)
            .kv("backoff_ms", backoff.count());
        logged = now;
        unlogged = 0;
      }
      Timer t(ioc_.get_executor());
      t.expires_after(backoff);
      co_await t.async_wait(use_task);
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = kFirstBackoff;
    if (sessions_.size() >= max_connections_) {
      metrics().connection_refused_max_connections();
      // Every refusal is counted; the log gets at most one line a second per worker, so a
      // connection flood cannot flood the log as well.
      ++refused_unlogged_;
      const auto now = std::chrono::steady_clock::now();
      if (now - refused_logged_ >= std::chrono::seconds(1)) {
        log::warn("connection limit reached, closing new connections")
            .kv("listener", l->config.name)
            .kv("limit", max_connections_)
            .kv("worker", index_)
            .kv("refused", refused_unlogged_);
        refused_logged_ = now;
        refused_unlogged_ = 0;
      }
      continue;  // socket closes here
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (l->config.tls) {
      auto ctx = snapshot()->tls_for(l->config);
      if (!ctx) continue;  // the listener is being removed by a reload
      asio::co_spawn(ioc_,
                     run_tls_session(*this, std::move(socket), l->config.name, std::move(ctx),
                                     l->config.tls->handshake_timeout),
                     log_exception);
    } else {
      asio::co_spawn(ioc_, run_session(*this, std::move(socket), l->config.name), log_exception);
    }
  }
}

void Worker::begin_drain() {
  asio::post(ioc_, [this] {
    draining_ = true;
    if (access_timer_) access_timer_->cancel();
    for (auto& l : listeners_) {
      beast::error_code ignored;
      l->acceptor->close(ignored);
    }
    listeners_.clear();
    // Tunnels end a little before the drain timeout, so each is logged and counted before
    // the process stops the workers.
    const auto drain = snapshot()->config->timeouts.drain;
    const auto deadline =
        std::chrono::steady_clock::now() + drain -
        std::min<std::chrono::milliseconds>(drain / 10, std::chrono::milliseconds(200));
    for (auto* s : sessions_) s->drain(deadline);
    pool_.close_all();
  });
}

void Worker::stop() {
  ioc_.stop();
}

const std::shared_ptr<const Snapshot>& Worker::snapshot() {
  const auto gen = server_.generation();
  if (gen != generation_ || !snapshot_) {
    // Requests copy the worker's pointer. An aliasing pointer with a control block of the
    // worker's own keeps those reference counts off the cache line all workers share.
    auto pinned = std::make_shared<std::shared_ptr<const Snapshot>>(server_.snapshot());
    snapshot_ = std::shared_ptr<const Snapshot>(pinned, pinned->get());
    generation_ = gen;
    rr_.assign(snapshot_->clusters.size(), index_);  // workers start at different endpoints
    std::vector<tcp::endpoint> configured;
    for (auto const& c : snapshot_->clusters)
      configured.insert(configured.end(), c.endpoints.begin(), c.endpoints.end());
    pool_.retain_only(configured);
    // A reload may change a cluster's TLS settings for the same endpoints: connections
    // made under the old configuration are not reused.
    pool_.close_all();
  }
  return snapshot_;
}

std::uint32_t Worker::next_rr(int cluster) {
  return rr_[cluster]++;
}

}  // namespace gp::proxy
