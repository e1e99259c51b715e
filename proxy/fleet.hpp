// Fleet mode: several grayproxy instances run one rollout together through etcd (README
// "Fleet mode"). Each instance holds a lease, publishes its traffic totals under it and
// watches the routes' states; the one holding the leader key (create-if-absent, bound to its
// lease) sums the reports, judges with the same RolloutController and writes the new state
// with a compare-and-swap. Admin actions and SIGHUP weight edits go through etcd too. When
// etcd is unreachable the fleet keeps its last weights and the rollout freezes. Runs on its
// own thread and io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "metrics/fleet_window.hpp"
#include "metrics/metrics.hpp"
#include "proxy/asio_types.hpp"
#include "proxy/etcd_client.hpp"
#include "proxy/fleet_json.hpp"
#include "proxy/rollout_manager.hpp"

namespace prometheus {
class Counter;
template <class T>
class Family;
class Gauge;
}  // namespace prometheus

namespace gp::proxy {

class Fleet {
 public:
  // instance: the configured id, else hostname:admin_port. Throws config::Error when the
  // etcd TLS files cannot be loaded.
  Fleet(const config::Fleet& config, const config::Admin& admin, RolloutManager& rollouts,
        metrics::Metrics& metrics);
  ~Fleet();

  void start();
  void stop();  // revokes the lease (best effort), so another instance takes over at once

  const std::string& instance() const { return instance_; }

  // An admin action, written to etcd with a compare-and-swap and applied here at once. Any
  // thread but the fleet's; waits for etcd (bounded). 503 while etcd is unreachable.
  RolloutManager::ActionResult act(const std::string& route, const std::string& action,
                                   std::optional<std::uint32_t> weight_bp);
  // A reload's edit of a route for the whole fleet: the YAML's new weight, or (restart) the
  // analysis started again from the first step because the canary cluster changed.
  struct ReloadEdit {
    bool restart = false;
    std::uint32_t weight_bp = 0;
    bool operator==(const ReloadEdit&) const = default;
  };
  // Written to etcd as soon as it is reachable; until then the route keeps the fleet's
  // state. Any thread.
  void submit_edit(const std::string& route, ReloadEdit edit);
  // After a reload rebuilt the controllers: re-apply the last states seen in etcd. Any thread.
  void resync();

  // /status "fleet". Any thread.
  boost::json::object status() const;

 private:
  struct Doc {
    RouteDoc doc;
    std::int64_t mod_revision = 0;
  };

  Task<void> keepalive_loop();
  Task<void> publish_loop();
  Task<void> watch_loop();
  Task<void> leader_loop();
  Task<void> revoke();
  // Writes a reload edit to etcd and drops it from pending_edits_ unless a newer one replaced
  // it, logging a refusal; false while etcd is unreachable (the edit stays pending).
  Task<bool> write_edit(std::string route, ReloadEdit edit);
  Task<RolloutManager::ActionResult> act_task(std::string route, std::string action,
                                              std::optional<std::uint32_t> weight_bp,
                                              std::string cause);
  Task<void> judge(const std::string& route, const config::Rollout& policy);
  Task<void> seed(const RolloutManager::FleetRoute& route);
  Task<std::optional<std::vector<MemberReport>>> read_reports();
  Task<void> campaign();
  Task<void> sleep(std::chrono::milliseconds d);

  void on_events(const std::vector<etcd::Event>& events);
  void take_doc(const std::string& route, RouteDoc doc, std::int64_t mod_revision);
  // Counts an etcd failure; a transport failure (etcd unreachable) freezes the fleet.
  void failed(const char* op, const boost::system::error_code& ec);
  void reachable();
  void set_leader(bool leader, const std::string& who);

  std::string state_key(const std::string& route) const { return prefix_ + "/state/" + route; }
  std::string member_key(const std::string& id) const { return prefix_ + "/members/" + id; }
  std::string leader_key() const { return prefix_ + "/leader"; }

  config::Fleet config_;
  std::string instance_;
  std::string admin_;
  std::string prefix_;
  RolloutManager& rollouts_;
  metrics::Metrics& metrics_;
  std::chrono::milliseconds report_period_;

  boost::asio::io_context ioc_{1};
  std::thread thread_;
  EtcdClient client_;

  // Fleet thread only.
  std::int64_t lease_ = 0;
  bool leader_ = false;
  bool baseline_needed_ = true;
  bool synced_ = false;  // the states were read once (a missing key means "none yet")
  std::chrono::steady_clock::time_point leader_since_;
  std::map<std::string, std::chrono::steady_clock::time_point> next_tick_;
  metrics::FleetWindows windows_;
  std::map<std::string, Doc> docs_;  // the routes' states as last seen in etcd

  // Shared with the admin and reload threads.
  mutable std::mutex mu_;
  struct Member {
    std::string admin;
    std::int64_t report_ms = 0;
  };
  std::map<std::string, Member> members_;
  std::string leader_id_;
  bool is_leader_ = false;
  bool etcd_up_ = false;
  bool down_reported_ = false;  // the current outage (or the one since startup) was logged
  std::int64_t frozen_since_ms_ = 0;
  std::int64_t leader_since_ms_ = 0;
  std::map<std::string, ReloadEdit> pending_edits_;  // SIGHUP edits not yet in etcd
  std::map<std::string, std::pair<std::uint64_t, std::string>> seen_;  // route -> seq, writer

  prometheus::Gauge* leader_gauge_;
  prometheus::Gauge* members_gauge_;
  prometheus::Gauge* up_gauge_;
  prometheus::Gauge* frozen_gauge_;
  prometheus::Family<prometheus::Counter>* errors_;
};

}  // namespace gp::proxy
