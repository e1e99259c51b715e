// The process: workers, the published snapshot, the admin listener and signals.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/system/error_code.hpp>

#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "proxy/access_log.hpp"
#include "proxy/snapshot.hpp"

namespace prometheus {
class Counter;
template <class T>
class Family;
}  // namespace prometheus

namespace gp::proxy {

class Worker;
class AdminServer;
class RolloutManager;
class Fleet;

class Server {
 public:
  // config_path may be empty (demo): SIGHUP then has nothing to re-read.
  Server(config::Config config, std::string config_path);
  ~Server();

  // Binds everything, runs until SIGTERM/SIGINT and the drain are over; returns the exit code.
  int run();

  std::shared_ptr<const Snapshot> snapshot() const;
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  metrics::Metrics& metrics() { return *metrics_; }
  RolloutManager& rollouts() { return *rollouts_; }
  Fleet* fleet() { return fleet_.get(); }  // null in single-instance mode
  const AccessLogFile* access_log() const { return access_log_.get(); }
  const config::Config& initial_config() const { return *initial_; }
  unsigned worker_count() const { return worker_count_; }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  // Counts and logs a failed TLS handshake on a listener (reason from the error).
  void tls_handshake_failed(const std::string& listener, const boost::system::error_code& ec);

  // Re-reads the config file and publishes a new snapshot. On any error (unreadable,
  // invalid, unresolvable, a listener that cannot be bound) nothing changes and the old
  // config keeps serving; the error text is returned. Safe from any thread.
  struct ReloadResult {
    bool ok = false;
    std::string error;
  };
  ReloadResult reload();

 private:
  void publish(std::shared_ptr<const Snapshot> snap);
  // Binds `added` on every worker and hands them over, closes `removed`; throws (with
  // nothing changed) when an address cannot be bound.
  void apply_listeners(const std::vector<config::Listener>& added,
                       const std::vector<config::Listener>& removed);

  std::shared_ptr<const config::Config> initial_;
  std::string config_path_;
  unsigned worker_count_;
  std::unique_ptr<metrics::Metrics> metrics_;
  std::unique_ptr<RolloutManager> rollouts_;
  std::unique_ptr<Fleet> fleet_;       // fleet mode only; uses rollouts_
  std::mutex reload_mutex_;            // SIGHUP and POST /reload may race
  mutable std::mutex snapshot_mutex_;  // guards snapshot_; workers read it once per generation
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> draining_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<AccessLogFile> access_log_;
  prometheus::Family<prometheus::Counter>* tls_failures_ = nullptr;
};

}  // namespace gp::proxy
