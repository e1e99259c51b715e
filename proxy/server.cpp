#include "proxy/server.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <thread>

#include <openssl/err.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>

#include "proxy/admin_server.hpp"
#include "proxy/fleet.hpp"
#include "proxy/log.hpp"
#include "proxy/rollout_manager.hpp"
#include "proxy/server/worker.hpp"

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
      metrics_(std::make_unique<metrics::Metrics>(worker_count_, GRAYPROXY_VERSION)),
      rollouts_(std::make_unique<RolloutManager>(*metrics_, initial_->state_dir)) {
  tls_failures_ = &prometheus::BuildCounter()
                       .Name("grayproxy_tls_handshake_failures_total")
                       .Help("TLS handshakes that failed on a listener, by OpenSSL reason.")
                       .Register(metrics_->registry());
  if (initial_->fleet) {
    fleet_ = std::make_unique<Fleet>(*initial_->fleet, initial_->admin, *rollouts_, *metrics_);
    rollouts_->attach_fleet(fleet_.get());
  }
}

Server::~Server() = default;

void Server::tls_handshake_failed(const std::string& listener,
                                  const boost::system::error_code& ec) {
  // A bounded label: OpenSSL's reason text in snake_case, or the kind of socket error.
  std::string reason;
  if (ec == boost::beast::error::timeout) {
    reason = "timeout";
  } else if (ec.category() == boost::asio::error::get_ssl_category()) {
    const char* r = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    reason = r ? r : "ssl_error";
  } else if (ec == boost::asio::ssl::error::stream_truncated || ec == boost::asio::error::eof) {
    reason = "closed";
  } else {
    reason = "reset";
  }
  for (char& c : reason)
    c = c == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  tls_failures_->Add({{"listener", listener}, {"reason", reason}}).Increment();
  log::info("TLS handshake failed")
      .kv("listener", listener)
      .kv("reason", reason)
      .kv("error", ec.message());
}

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

void Server::apply_listeners(const std::vector<config::Listener>& added,
                             const std::vector<config::Listener>& removed) {
  std::vector<std::vector<std::unique_ptr<Acceptor>>> bound(workers_.size());
  for (std::size_t w = 0; w < workers_.size(); ++w)
    for (auto const& l : added) bound[w].push_back(workers_[w]->bind(l));  // throws: all close
  for (std::size_t w = 0; w < workers_.size(); ++w) {
    for (std::size_t i = 0; i < added.size(); ++i)
      workers_[w]->adopt(added[i], std::move(bound[w][i]));
    for (auto const& l : removed) workers_[w]->close_listener(l);
  }
  for (auto const& l : added)
    log::info("listening").kv("listener", l.name).kv("address", l.address.str());
  for (auto const& l : removed)
    log::info("listener closed").kv("listener", l.name).kv("address", l.address.str());
}

Server::ReloadResult Server::reload() {
  std::lock_guard lock(reload_mutex_);
  if (config_path_.empty()) {
    log::warn("reload ignored: no configuration file (demo mode)");
    return {false, "no configuration file (demo mode)"};
  }
  if (draining()) return {false, "draining"};
  try {
    auto cfg = std::make_shared<const config::Config>(config::load_file(config_path_));
    auto old = snapshot();
    auto snap = build_snapshot(cfg, *metrics_, old.get());

    std::vector<config::Listener> added, removed;
    for (auto const& l : cfg->listeners)
      if (std::find(old->config->listeners.begin(), old->config->listeners.end(), l) ==
          old->config->listeners.end())
        added.push_back(l);
    for (auto const& l : old->config->listeners)
      if (std::find(cfg->listeners.begin(), cfg->listeners.end(), l) == cfg->listeners.end())
        removed.push_back(l);
    apply_listeners(added, removed);
    rollouts_->sync(*snap, old.get());

    if (!(cfg->admin == old->config->admin))
      log::warn("admin settings changed: they take effect at the next restart");
    if (cfg->access_log != old->config->access_log)
      log::warn("access_log settings changed: they take effect at the next restart");
    if (cfg->fleet != old->config->fleet)
      log::warn("fleet settings changed: they take effect at the next restart");
    if (cfg->workers != old->config->workers)
      log::warn("workers changed: it takes effect at the next restart");

    publish(std::move(snap));
    metrics_->config_reload(true);
    log::info("configuration reloaded").kv("file", config_path_).kv("routes", cfg->routes.size());
    return {true, ""};
  } catch (const std::exception& e) {
    metrics_->config_reload(false);
    log::error("configuration reload failed, keeping the running configuration")
        .kv("file", config_path_)
        .kv("error", e.what());
    return {false, e.what()};
  }
}

int Server::run() {
  auto first = build_snapshot(initial_, *metrics_, nullptr);
  rollouts_->sync(*first, nullptr);
  publish(std::move(first));
  metrics_->config_reload(true);

  if (initial_->access_log)
    access_log_ = std::make_unique<AccessLogFile>(initial_->access_log->path,
                                                  initial_->access_log->format == "json");
  for (unsigned i = 0; i < worker_count_; ++i)
    workers_.push_back(std::make_unique<Worker>(*this, i));
  apply_listeners(initial_->listeners, {});
  admin_ = std::make_unique<AdminServer>(*this, initial_->admin);
  admin_->start();
  for (auto& w : workers_) w->run();
  rollouts_->start();
  if (fleet_) fleet_->start();
  log::info("grayproxy started")
      .kv("version", GRAYPROXY_VERSION)
      .kv("workers", worker_count_)
      .kv("admin", initial_->admin.address.str());

  // Signals are handled here, on the main thread, never inside a signal handler.
  boost::asio::io_context main_ioc;
  boost::asio::signal_set signals(main_ioc, SIGINT, SIGTERM, SIGHUP);
  signals.add(SIGUSR1);  // logrotate: reopen the access log
  bool force = false;
  std::chrono::steady_clock::time_point deadline;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          reload();
        } else if (sig == SIGUSR1) {
          if (access_log_) access_log_->reopen();
        } else if (!draining()) {
          log::info("shutting down: draining")
              .kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT")
              .kv("timeout_ms", snapshot()->config->timeouts.drain.count());
          deadline = std::chrono::steady_clock::now() + snapshot()->config->timeouts.drain;
          draining_.store(true, std::memory_order_relaxed);
          for (auto& w : workers_) w->begin_drain();
        } else {
          log::warn("second stop signal: exiting now");
          force = true;
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  auto all_finished = [&] {
    return std::all_of(workers_.begin(), workers_.end(), [](auto& w) { return w->finished(); });
  };
  while (!(draining() && (force || all_finished() || std::chrono::steady_clock::now() >= deadline)))
    main_ioc.run_for(std::chrono::milliseconds(20));

  const bool clean = all_finished();
  if (!clean) log::warn("drain incomplete, closing remaining connections").kv("forced", force);
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  for (auto& w : workers_) w->flush_access_log();  // the threads are gone: safe here
  if (fleet_) fleet_->stop();
  rollouts_->stop();
  admin_->stop();
  log::info("stopped").kv("drained_cleanly", clean);
  return 0;
}

}  // namespace gp::proxy
