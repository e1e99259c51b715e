// Runs the routes' rollouts: owns one RolloutController per route with a `rollout:`
// policy, ticks them on a control thread from the per-version metric windows, moves the
// live weights, applies operator actions, and persists every change in state_dir.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "metrics/metrics.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/state_file.hpp"
#include "routing/fleet_state.hpp"
#include "routing/rollout.hpp"

namespace prometheus {
class Counter;
template <class T>
class Family;
class Gauge;
}  // namespace prometheus

namespace gp::proxy {

class Fleet;
struct RouteDoc;

class RolloutManager {
 public:
  RolloutManager(metrics::Metrics& metrics, std::string state_dir);
  ~RolloutManager();

  // Takes over the live state of a snapshot's routes before it is published (startup:
  // previous == nullptr, state comes from the state file; reload: from `previous`, with
  // the merge rules of docs/design.md). Sets the live weights.
  void sync(const Snapshot& snap, const Snapshot* previous);

  void start();  // the control thread: ticks every route's controller at its interval
  void stop();

  struct ActionResult {
    unsigned http_status = 200;
    boost::json::object body;
  };
  // action: pause | resume | promote | abort | weight (weight_bp set).
  // The log line of one judgement (fleet_members > 0: a fleet leader's, over that many
  // members' windows).
  static void log_judgement(const std::string& route, const routing::Judgement& j,
                            std::size_t fleet_members = 0);

  ActionResult act(const std::string& route, const std::string& action,
                   std::optional<std::uint32_t> weight_bp);

  // /status: per route, the state, weight, step and last judgements.
  boost::json::object route_status(const std::string& route) const;

  // Fleet mode (README "Fleet mode"): the fleet judges and writes the state in etcd, so this
  // instance stops ticking its controllers, sends admin actions and SIGHUP weight edits to
  // `fleet` and takes the states it receives. The state file stays, as a cache. Call before
  // start(); `fleet` outlives this object's use of it.
  void attach_fleet(Fleet* fleet);

  // What the fleet needs of a route with a canary.
  struct FleetRoute {
    std::string name;
    std::optional<config::Rollout> policy;
    routing::HeldState held;                       // seq, state and weight applied
    std::optional<routing::RolloutStatus> status;  // with a policy
  };
  std::vector<FleetRoute> fleet_routes() const;
  std::optional<FleetRoute> fleet_route(const std::string& route) const;
  // Takes a state received from etcd when it is newer than the one held (or `force`, after a
  // reload rebuilt the controllers): weight, state, judgements; logs and counts a change,
  // caches it. Returns whether it was taken.
  bool apply_fleet(const std::string& route, const RouteDoc& doc, bool force);

 private:
  struct Entry {
    std::shared_ptr<RouteLive> live;
    std::string canary_cluster;
    std::optional<config::Rollout> policy;
    std::optional<routing::RolloutController> controller;
    metrics::Snapshot prev_canary, prev_stable;
    std::chrono::steady_clock::time_point next_tick;
    std::uint64_t fleet_seq = 0;  // fleet mode: seq of the etcd state applied
  };
  using Result = routing::RolloutController::TickResult;

  void tick_due();
  void reset_window(const std::string& route, Entry& e);
  // Publishes weight and state, logs and counts a transition, persists.
  void apply(const std::string& route, Entry& e, const Result& r, const char* cause);
  void export_judgement(const std::string& route, const routing::Judgement& j);
  void persist();
  routing::RolloutState state_of(const Entry& e) const;
  FleetRoute fleet_route_of(const std::string& name, const Entry& e) const;

  metrics::Metrics& metrics_;
  StateFile state_file_;
  prometheus::Family<prometheus::Gauge>* observed_;
  prometheus::Family<prometheus::Gauge>* threshold_;
  prometheus::Family<prometheus::Counter>* judgements_;
  prometheus::Counter* state_load_failures_;
  mutable std::mutex mu_;  // entries_: the control thread, the admin thread and reloads
  std::map<std::string, Entry> entries_;
  Fleet* fleet_ = nullptr;  // set once before start()
  boost::asio::io_context ioc_{1};
  std::thread thread_;
};

}  // namespace gp::proxy
