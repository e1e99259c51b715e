#include "proxy/rollout_manager.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <cmath>

#include "metrics/window.hpp"
#include "proxy/fleet.hpp"
#include "proxy/fleet_json.hpp"
#include "proxy/log.hpp"
#include "proxy/rollout_json.hpp"
#include "proxy/rollout_window.hpp"

namespace gp::proxy {

namespace json = boost::json;
using routing::RolloutState;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

namespace {

constexpr auto kTickResolution = std::chrono::milliseconds(100);

}  // namespace

RolloutManager::RolloutManager(metrics::Metrics& metrics, std::string state_dir)
    : metrics_(metrics), state_file_(std::move(state_dir)) {
  auto& reg = metrics_.registry();
  observed_ = &prometheus::BuildGauge()
                   .Name("grayproxy_rollout_observed")
                   .Help(
                       "What the last rollout judgement measured, by route and check "
                       "(error_rate and stable_error_rate over the current step, p99_seconds "
                       "of the window, the log evidence of each sequential test, dispersion, "
                       "requests_to_pass; docs/analysis.md).")
                   .Register(reg);
  threshold_ = &prometheus::BuildGauge()
                    .Name("grayproxy_rollout_threshold")
                    .Help("The threshold each rollout check is judged against, by route and check.")
                    .Register(reg);
  judgements_ = &prometheus::BuildCounter()
                     .Name("grayproxy_rollout_judgements_total")
                     .Help(
                         "Rollout judgements by route and verdict (pass, fail, inconclusive, "
                         "hold: stable itself above max_error_rate). In a fleet every member "
                         "counts the leader's judgements.")
                     .Register(reg);
  state_load_failures_ = &prometheus::BuildCounter()
                              .Name("grayproxy_state_load_failures_total")
                              .Help(
                                  "State files that could not be read at startup (moved aside "
                                  "to *.corrupt; the configuration's values were used).")
                              .Register(reg)
                              .Add({});
}

RolloutManager::~RolloutManager() {
  stop();
}

RolloutState RolloutManager::state_of(const Entry& e) const {
  return e.controller ? e.controller->state() : RolloutState::idle;
}

void RolloutManager::reset_window(const std::string& route, Entry& e) {
  e.prev_canary = metrics_.totals(route, metrics::Version::canary);
  e.prev_stable = metrics_.totals(route, metrics::Version::stable);
  e.next_tick = SteadyClock::now() + (e.policy ? e.policy->interval : std::chrono::seconds(30));
}

void RolloutManager::sync(const Snapshot& snap, const Snapshot* previous) {
  std::lock_guard lock(mu_);
  const auto now = SystemClock::now();
  StateFile::Loaded loaded;
  if (!previous) {
    loaded = state_file_.load();
    if (loaded.corrupt) {
      state_load_failures_->Increment();
      log::error("state file unreadable, moved aside; starting from the configuration")
          .kv("file", state_file_.path())
          .kv("error", loaded.error);
    }
  }
  const json::object* persisted_routes = nullptr;
  if (auto* r = loaded.doc.if_contains("routes"); r && r->is_object())
    persisted_routes = &r->as_object();

  std::map<std::string, Entry> next;
  std::vector<std::pair<std::string, Fleet::ReloadEdit>> fleet_edits;
  for (auto const& rt : snap.routes) {
    if (rt.canary < 0) continue;
    const std::string& name = rt.config->name;
    Entry e;
    e.live = rt.live;
    e.canary_cluster = snap.clusters[rt.canary].config->name;
    e.policy = rt.config->rollout;
    const std::uint32_t yaml_weight = rt.live->configured_weight_bp;

    auto old = entries_.find(name);
    if (previous && old != entries_.end()) {
      Entry& o = old->second;
      const bool weight_edit = o.live != rt.live;  // the snapshot took the YAML's new weight
      const bool canary_changed = o.canary_cluster != e.canary_cluster;
      e.prev_canary = o.prev_canary;
      e.prev_stable = o.prev_stable;
      e.next_tick = o.next_tick;
      e.fleet_seq = o.fleet_seq;
      if (e.policy && canary_changed)  // as below: the analysis starts again, fleet-wide
        fleet_edits.emplace_back(name, Fleet::ReloadEdit{true, 0});
      else if (weight_edit)
        fleet_edits.emplace_back(name, Fleet::ReloadEdit{false, yaml_weight});
      if (e.policy) {
        if (canary_changed) {
          // Judgements were about another build: start the analysis from the first step.
          e.controller.emplace(*e.policy, 0, now);
          log::info("rollout restarted: canary cluster changed")
              .kv("route", name)
              .kv("canary", e.canary_cluster);
        } else if (!o.controller || !(o.policy == e.policy)) {
          e.controller.emplace(*e.policy, rt.live->weight_bp.load(), now);
        } else {
          e.controller = o.controller;
          if (weight_edit) (void)e.controller->set_weight(yaml_weight, now);
        }
      }
    } else {
      const json::object* saved = nullptr;
      if (persisted_routes)
        if (auto* v = persisted_routes->if_contains(name); v && v->is_object())
          saved = &v->as_object();
      bool restored = false;
      if (saved) {
        try {
          const auto configured = saved->at("configured_weight_bp").to_number<std::uint32_t>();
          const auto weight = saved->at("weight_bp").to_number<std::uint32_t>();
          if (configured == yaml_weight && weight <= 10000) {  // else the operator edited the file
            rt.live->weight_bp.store(weight);
            if (fleet_)
              if (auto* seq = saved->if_contains("fleet_seq"))
                e.fleet_seq = seq->to_number<std::uint64_t>();
            if (e.policy) {
              if (auto* ro = saved->if_contains("rollout"); ro && ro->is_object())
                e.controller.emplace(*e.policy, status_from_json(ro->as_object()));
              else
                e.controller.emplace(*e.policy, weight, now);
            }
            restored = true;
            log::info("route state restored")
                .kv("route", name)
                .kv("weight_percent", weight / 100.0)
                .kv("state", routing::to_string(state_of(e)));
          }
        } catch (const std::exception& ex) {
          state_load_failures_->Increment();
          log::error("saved route state unusable; starting from the configuration")
              .kv("route", name)
              .kv("error", ex.what());
          e.controller.reset();
        }
      }
      if (!restored && e.policy) e.controller.emplace(*e.policy, yaml_weight, now);
      reset_window(name, e);
    }
    if (e.controller) e.live->weight_bp.store(e.controller->weight_bp());
    metrics_.set_canary_weight(name, e.live->weight_bp.load() / 100.0);
    metrics_.set_rollout_state(name, routing::to_string(state_of(e)));
    next.emplace(name, std::move(e));
  }
  entries_ = std::move(next);
  persist();
  if (fleet_) {
    // The fleet's state in etcd stays the truth: edits go there, the rest is re-applied.
    for (auto const& [route, edit] : fleet_edits) fleet_->submit_edit(route, edit);
    fleet_->resync();
  }
}

void RolloutManager::attach_fleet(Fleet* fleet) {
  std::lock_guard lock(mu_);
  fleet_ = fleet;
}

void RolloutManager::start() {
  thread_ = std::thread([this] {
    boost::asio::steady_timer timer(ioc_);
    std::function<void(boost::system::error_code)> loop = [&](boost::system::error_code ec) {
      if (ec) return;
      tick_due();
      timer.expires_after(kTickResolution);
      timer.async_wait(loop);
    };
    timer.expires_after(kTickResolution);
    timer.async_wait(loop);
    ioc_.run();
  });
}

void RolloutManager::stop() {
  if (!thread_.joinable()) return;
  ioc_.stop();
  thread_.join();
}

void RolloutManager::tick_due() {
  std::lock_guard lock(mu_);
  if (fleet_) return;  // the fleet's leader judges
  const auto now = SteadyClock::now();
  for (auto& [name, e] : entries_) {
    if (!e.controller || now < e.next_tick) continue;
    e.next_tick += e.policy->interval;
    if (e.next_tick < now) e.next_tick = now + e.policy->interval;  // fell behind: skip ahead
    auto canary = metrics_.totals(name, metrics::Version::canary);
    auto stable = metrics_.totals(name, metrics::Version::stable);
    auto wc = metrics::delta(canary, e.prev_canary);
    auto ws = metrics::delta(stable, e.prev_stable);
    e.prev_canary = canary;
    e.prev_stable = stable;
    if (e.controller->state() != RolloutState::progressing) continue;
    auto r = e.controller->tick(SystemClock::now(), to_version_window(wc, *e.policy),
                                to_version_window(ws, *e.policy));
    apply(name, e, r, "judgement");
  }
}

void RolloutManager::export_judgement(const std::string& route, const routing::Judgement& j) {
  auto set = [&](prometheus::Family<prometheus::Gauge>* f, const char* check, double v) {
    f->Add({{"route", route}, {"check", check}}).Set(v);  // NaN: not measured this time
  };
  judgements_->Add({{"route", route}, {"verdict", routing::to_string(j.verdict)}}).Increment();
  set(observed_, "error_rate", j.canary.error_rate);
  set(observed_, "stable_error_rate", j.stable.error_rate);
  set(observed_, "p99_seconds", j.canary.p99_seconds);
  set(observed_, "dispersion", j.dispersion);
  set(observed_, "relative_evidence", j.relative.evidence);
  set(observed_, "absolute_evidence", j.absolute.evidence);
  set(observed_, "latency_evidence", j.latency.evidence);
  set(observed_, "latency_ratio_evidence", j.latency_ratio.evidence);
  set(observed_, "rank_probability", j.rank_probability);
  set(observed_, "requests_to_pass", j.requests_to_pass);
  set(threshold_, "error_rate", j.max_error_rate);
  set(threshold_, "error_rate_ratio", j.max_error_rate_ratio);
  set(threshold_, "p99_seconds", j.max_p99_seconds);
  set(threshold_, "relative_evidence", j.relative.bar);
  set(threshold_, "absolute_evidence", j.absolute.bar);
  set(threshold_, "latency_evidence", j.latency.bar);
  set(threshold_, "latency_ratio", j.max_latency_ratio);
  set(threshold_, "latency_ratio_evidence", j.latency_ratio.bar);
}

void RolloutManager::log_judgement(const std::string& route, const routing::Judgement& j,
                                   std::size_t fleet_members) {
  auto line = log::info("rollout judgement");
  line.kv("route", route)
      .kv("verdict", routing::to_string(j.verdict))
      .kv("weight_percent", j.weight_bp / 100.0)
      .kv("canary_requests", j.canary.requests)
      .kv("canary_errors", j.canary.errors)
      .kv("canary_step_error_rate", j.canary.error_rate)
      .kv("stable_step_error_rate", j.stable.error_rate)
      .kv("canary_p99_seconds", j.canary.p99_seconds)
      .kv("stable_requests", j.stable.requests)
      .kv("stable_errors", j.stable.errors)
      .kv("dispersion", j.dispersion)
      .kv("requests_to_pass", j.requests_to_pass);
  if (j.warmup) line.kv("warmup", true);
  if (!std::isnan(j.max_latency_ratio)) line.kv("rank_probability", j.rank_probability);
  if (fleet_members > 0) line.kv("fleet_members", fleet_members);
  line.kv("reason", j.reason);
}

void RolloutManager::apply(const std::string& route, Entry& e, const Result& r, const char* cause) {
  bool changed = false;
  if (r.judgement) {
    auto const& j = *r.judgement;
    export_judgement(route, j);
    log_judgement(route, j);
    changed = true;
  }
  if (r.weight_changed || r.state_changed) {
    const auto weight = e.controller ? e.controller->weight_bp() : e.live->weight_bp.load();
    e.live->weight_bp.store(weight, std::memory_order_relaxed);
    const char* state = routing::to_string(state_of(e));
    metrics_.set_canary_weight(route, weight / 100.0);
    metrics_.set_rollout_state(route, state);
    if (r.state_changed) metrics_.rollout_transition(route, state);
    log::info("rollout transition")
        .kv("route", route)
        .kv("state", state)
        .kv("weight_percent", weight / 100.0)
        .kv("cause", cause)
        .kv("reason", r.transition_reason);
    changed = true;
  }
  if (changed) persist();
}

void RolloutManager::persist() {
  if (!state_file_.enabled()) return;
  json::object routes;
  for (auto const& [name, e] : entries_) {
    json::object o{{"configured_weight_bp", e.live->configured_weight_bp},
                   {"weight_bp", e.live->weight_bp.load()}};
    if (e.controller) o["rollout"] = to_json(e.controller->status());
    if (fleet_) o["fleet_seq"] = e.fleet_seq;
    routes[name] = std::move(o);
  }
  auto err = state_file_.save(json::object{{"version", 1}, {"routes", std::move(routes)}});
  if (!err.empty()) log::error("cannot persist rollout state").kv("error", err);
}

RolloutManager::ActionResult RolloutManager::act(const std::string& route,
                                                 const std::string& action,
                                                 std::optional<std::uint32_t> weight_bp) {
  if (fleet_) return fleet_->act(route, action, weight_bp);  // set before start, never reset
  std::lock_guard lock(mu_);
  auto it = entries_.find(route);
  if (it == entries_.end())
    return {404, json::object{{"error", "no route \"" + route + "\" with a canary"}}};
  Entry& e = it->second;
  const auto now = SystemClock::now();
  Result r;
  if (action == "weight") {
    if (!weight_bp || *weight_bp > 10000)
      return {400, json::object{{"error", "weight must be a percentage between 0 and 100"}}};
    if (e.controller) {
      r = e.controller->set_weight(*weight_bp, now);
    } else {
      r.weight_changed = e.live->weight_bp.load() != *weight_bp;
      e.live->weight_bp.store(*weight_bp);
      r.transition_reason = "weight set by the operator";
    }
  } else if (!e.controller) {
    return {409, json::object{{"error", "route \"" + route + "\" has no rollout policy"}}};
  } else if (action == "pause") {
    r = e.controller->pause(now);
  } else if (action == "resume") {
    r = e.controller->resume(now);
  } else if (action == "promote") {
    r = e.controller->promote(now);
  } else if (action == "abort") {
    r = e.controller->abort(now);
  } else {
    return {404, json::object{{"error", "unknown action \"" + action + "\""}}};
  }
  if (!r.error.empty()) return {409, json::object{{"error", r.error}}};
  if (action == "resume" || action == "weight") reset_window(route, e);  // fresh evidence
  apply(route, e, r, "admin");
  persist();
  json::object body{{"route", route},
                    {"state", routing::to_string(state_of(e))},
                    {"weight_percent", json_number(e.live->weight_bp.load() / 100.0)}};
  return {200, std::move(body)};
}

json::object RolloutManager::route_status(const std::string& route) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(route);
  if (it == entries_.end()) return json::object{{"state", "idle"}};
  auto const& e = it->second;
  if (!e.controller) return json::object{{"state", "idle"}};
  return to_json(e.controller->status());
}

}  // namespace gp::proxy

namespace gp::proxy {

RolloutManager::FleetRoute RolloutManager::fleet_route_of(const std::string& name,
                                                          const Entry& e) const {
  FleetRoute r;
  r.name = name;
  r.policy = e.policy;
  r.held = routing::HeldState{"", e.fleet_seq, state_of(e), e.live->weight_bp.load()};
  if (e.controller) r.status = e.controller->status();
  return r;
}

std::vector<RolloutManager::FleetRoute> RolloutManager::fleet_routes() const {
  std::lock_guard lock(mu_);
  std::vector<FleetRoute> out;
  for (auto const& [name, e] : entries_) out.push_back(fleet_route_of(name, e));
  return out;
}

std::optional<RolloutManager::FleetRoute> RolloutManager::fleet_route(
    const std::string& route) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(route);
  if (it == entries_.end()) return std::nullopt;
  return fleet_route_of(route, it->second);
}

bool RolloutManager::apply_fleet(const std::string& route, const RouteDoc& doc, bool force) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(route);
  if (it == entries_.end()) return false;  // not a canary route in this instance's file
  Entry& e = it->second;
  if (!force && !routing::should_apply(e.fleet_seq, doc.seq)) return false;
  const auto old_weight = e.live->weight_bp.load();
  const auto old_state = state_of(e);
  const routing::Judgement* old_last = e.controller && !e.controller->status().last.empty()
                                           ? &e.controller->status().last.back()
                                           : nullptr;
  const auto old_judged = old_last ? old_last->time : routing::TimePoint{};
  e.fleet_seq = doc.seq;
  if (e.policy) {
    routing::RolloutStatus status;
    if (doc.rollout) {
      status = *doc.rollout;
    } else {  // the writer has no rollout policy for this route: hold its weight
      status.weight_bp = doc.weight_bp;
      status.since = SystemClock::now();
      status.reason = "fleet state without a rollout policy, written by " + doc.writer;
    }
    e.controller.emplace(*e.policy, std::move(status));
  } else {
    e.controller.reset();
  }
  const auto weight = e.controller ? e.controller->weight_bp() : doc.weight_bp;
  e.live->weight_bp.store(weight, std::memory_order_relaxed);
  const auto state = state_of(e);
  metrics_.set_canary_weight(route, weight / 100.0);
  metrics_.set_rollout_state(route, routing::to_string(state));
  if (state != old_state) metrics_.rollout_transition(route, routing::to_string(state));
  if (e.controller && !e.controller->status().last.empty() &&
      e.controller->status().last.back().time != old_judged)
    export_judgement(route, e.controller->status().last.back());
  if (weight != old_weight || state != old_state)
    log::info("rollout transition")
        .kv("route", route)
        .kv("state", routing::to_string(state))
        .kv("weight_percent", weight / 100.0)
        .kv("cause", "fleet " + doc.cause)
        .kv("writer", doc.writer)
        .kv("seq", doc.seq)
        .kv("reason", e.controller ? e.controller->status().reason : std::string());
  persist();
  return true;
}

}  // namespace gp::proxy
