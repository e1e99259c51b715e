#include "proxy/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>

#include "proxy/admin_server.hpp"
#include "proxy/log.hpp"
#include "proxy/worker.hpp"

namespace gp::proxy {

namespace {

unsigned resolve_workers(unsigned configured) {
  if (configured > 0) return configured;
  const unsigned cores = std::thread::hardware_concurrency();
  return cores > 0 ? cores : 1;
}

}  // namespace

Server::Server(config::Config config, std::string config_path)
    : initial_(std::make_shared<const config::Config>(std::move(config))),
      config_path_(std::move(config_path)),
      worker_count_(resolve_workers(initial_->workers)),
      metrics_(std::make_unique<metrics::Metrics>(worker_count_, GRAYPROXY_VERSION)) {}

Server::~Server() = default;

std::shared_ptr<const Snapshot> Server::snapshot() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

void Server::publish(std::shared_ptr<const Snapshot> snap) {
  for (auto const& r : snap->routes)
    metrics_->set_canary_weight(r.config->name,
                                r.live->weight_bp.load(std::memory_order_relaxed) / 100.0);
  {
    std::lock_guard lock(snapshot_mutex_);
    snapshot_ = std::move(snap);
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

bool Server::reload() {
  if (config_path_.empty()) {
    log::warn("reload ignored: no configuration file (demo mode)");
    return false;
  }
  try {
    auto cfg = std::make_shared<const config::Config>(config::load_file(config_path_));
    auto snap = build_snapshot(cfg, *metrics_, snapshot().get());
    publish(std::move(snap));
    metrics_->config_reload(true);
    log::info("configuration reloaded").kv("file", config_path_);
    return true;
  } catch (const std::exception& e) {
    metrics_->config_reload(false);
    log::error("configuration reload failed, keeping the running configuration")
        .kv("file", config_path_)
        .kv("error", e.what());
    return false;
  }
}

int Server::run() {
  publish(build_snapshot(initial_, *metrics_, nullptr));
  metrics_->config_reload(true);

  for (unsigned i = 0; i < worker_count_; ++i) {
    workers_.push_back(std::make_unique<Worker>(*this, i));
    workers_.back()->listen(initial_->listeners);
  }
  admin_ = std::make_unique<AdminServer>(*this, initial_->admin);
  admin_->start();
  for (auto& w : workers_) w->run();

  for (auto const& l : initial_->listeners)
    log::info("listening").kv("listener", l.name).kv("address", l.address.str());
  log::info("grayproxy started")
      .kv("version", GRAYPROXY_VERSION)
      .kv("workers", worker_count_)
      .kv("admin", initial_->admin.address.str());

  boost::asio::io_context main_ioc;
  boost::asio::signal_set signals(main_ioc, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          reload();
          signals.async_wait(on_signal);
          return;
        }
        log::info("shutting down: draining").kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        draining_.store(true, std::memory_order_relaxed);
        for (auto& w : workers_) w->begin_drain();
      };
  signals.async_wait(on_signal);
  // Returns after the terminating signal (the handler does not re-arm for it).
  main_ioc.run();

  const auto deadline = std::chrono::steady_clock::now() + snapshot()->config->timeouts.drain;
  bool clean = true;
  for (auto& w : workers_) {
    while (!w->finished() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!w->finished()) clean = false;
  }
  if (!clean) log::warn("drain timeout reached, closing remaining connections");
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  admin_->stop();
  log::info("stopped").kv("drained_cleanly", clean);
  return 0;
}

}  // namespace gp::proxy
