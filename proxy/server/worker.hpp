// One worker: an io_context on its own thread with its own SO_REUSEPORT acceptors and
// upstream pool. Nothing in a worker is shared with another worker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <unordered_set>
#include <vector>

#include "config/config.hpp"
#include "proxy/access_log.hpp"
#include "proxy/asio_types.hpp"
#include "proxy/server/buffer_pool.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/upstream/upstream_pool.hpp"
#include "routing/split.hpp"

namespace gp::proxy {

class Server;
class SessionBase;

class Worker {
 public:
  Worker(Server& server, unsigned index);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Binds an acceptor (SO_REUSEPORT) for this worker on the caller's thread, so a bind
  // error surfaces at startup or fails a reload before anything changed. Throws.
  std::unique_ptr<Acceptor> bind(const config::Listener& listener);
  // Posted to the worker: start accepting on a bound acceptor.
  void adopt(const config::Listener& listener, std::unique_ptr<Acceptor> acceptor);
  // Posted to the worker: stop accepting on the listener; its connections finish normally.
  void close_listener(const config::Listener& listener);
  void run();  // starts the thread
  void join();
  // Posted to the worker: stop accepting, let in-flight requests finish, close idle
  // keep-alive connections.
  void begin_drain();
  void stop();  // hard stop after the drain timeout

  unsigned index() const { return index_; }
  Executor executor() { return ioc_.get_executor(); }
  Server& server() { return server_; }
  metrics::Metrics& metrics();
  UpstreamPool& pool() { return pool_; }
  BufferPool& buffers() { return buffers_; }
  routing::RandomSource& rng() { return rng_; }
  bool draining() const { return draining_; }
  // Set once the worker's io_context has run out of work (drain finished).
  bool finished() const { return finished_.load(std::memory_order_acquire); }

  // The current snapshot; refreshed when the server published a new generation.
  const std::shared_ptr<const Snapshot>& snapshot();
  // Round-robin position for a cluster of the current snapshot.
  std::uint32_t next_rr(int cluster);

  // Access log: whether it is on, and one entry (buffered; written in batches).
  bool access_log_enabled() const { return access_log_ != nullptr; }
  void access(const AccessEntry& e);
  void flush_access_log();

  void add_session(SessionBase* s) { sessions_.insert(s); }
  void remove_session(SessionBase* s) { sessions_.erase(s); }
  std::size_t active_sessions() const { return sessions_.size(); }

 private:
  struct BoundListener {
    config::Listener config;
    std::unique_ptr<Acceptor> acceptor;
  };
  // Owned by the accept loop's frame; the list only lets drain and reload close them.
  Task<void> accept_loop(std::shared_ptr<BoundListener> l);

  Server& server_;
  unsigned index_;
  // Declared before ioc_, so destroyed after it: coroutine frames still pending when the
  // io_context goes (open sessions at a forced exit) return buffers and unregister here.
  BufferPool buffers_;
  std::unordered_set<SessionBase*> sessions_;
  asio::io_context ioc_{1};
  UpstreamPool pool_;
  routing::RandomSource rng_;
  std::vector<std::shared_ptr<BoundListener>> listeners_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::uint64_t generation_ = 0;
  std::vector<std::uint32_t> rr_;
  Task<void> access_log_flusher();
  const AccessLogFile* access_log_ = nullptr;
  std::string access_buf_;
  std::unique_ptr<Timer> access_timer_;
  bool draining_ = false;
  std::atomic<bool> finished_{false};
  std::uint32_t max_connections_;
  std::chrono::steady_clock::time_point refused_logged_{};  // last max_connections log line
  std::uint64_t refused_unlogged_ = 0;                      // refusals since then
  std::thread thread_;
};

}  // namespace gp::proxy
