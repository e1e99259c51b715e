#include "proxy/fleet.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <future>
#include <set>

#include "metrics/window.hpp"
#include "proxy/log.hpp"
#include "proxy/rollout_json.hpp"
#include "proxy/rollout_window.hpp"
#include "proxy/tls_context.hpp"

// g++ 12 false positive on Asio's awaitable frames (its own operator new/delete pair) in the
// coroutines below that hold a RouteDoc; the frames are allocated and freed by Asio alike.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace gp::proxy {

namespace json = boost::json;
using boost::system::error_code;
using routing::RolloutController;
using routing::RolloutState;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;
using ActionResult = RolloutManager::ActionResult;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kLeaderPoll{100};
constexpr milliseconds kRetry{500};
constexpr std::chrono::seconds kActWait{10};

std::int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(SystemClock::now().time_since_epoch()).count();
}

std::string default_instance(const config::Admin& admin) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "grayproxy");
  return std::string(host) + ":" + std::to_string(admin.address.port);
}

std::shared_ptr<asio::ssl::context> etcd_tls(const config::Fleet& f) {
  if (!f.etcd.tls) return nullptr;
  config::Cluster c;  // the client context is built from a cluster's TLS settings
  c.name = "etcd";
  c.tls = f.etcd.tls;
  return make_client_context(c);
}

milliseconds client_timeout(const config::Fleet& f) {
  return std::clamp<milliseconds>(f.etcd.lease_ttl / 3, milliseconds(500), milliseconds(2000));
}

// A failure to reach etcd at all (as opposed to etcd refusing a request).
bool transport_failure(const error_code& ec) {
  return ec.category() != etcd::category() || ec == etcd::Errc::unavailable;
}

ActionResult error_result(unsigned status, std::string message) {
  return {status, json::object{{"error", std::move(message)}}};
}

// Parsing stays out of coroutines: g++ 12 warns about (and mishandles) try blocks in them.
std::optional<RouteDoc> parse_doc(const std::string& route, std::string_view text) {
  try {
    return route_doc_from_text(text);
  } catch (const std::exception& e) {
    log::error("unreadable fleet route state").kv("route", route).kv("error", e.what());
    return std::nullopt;
  }
}

std::optional<MemberReport> parse_report(const std::string& key, std::string_view text) {
  try {
    return report_from_text(text);
  } catch (const std::exception& e) {
    log::warn("unreadable fleet member report").kv("key", key).kv("error", e.what());
    return std::nullopt;
  }
}

// The writer applies what the members will read: a double does not always survive Boost.JSON's
// parser to the last bit, and /status must show every instance the same judgements.
RouteDoc as_stored(const RouteDoc& d) {
  return route_doc_from_text(to_text(d));
}

// The controller runs outside coroutines (g++ 12 emits bogus frame deallocation warnings for
// coroutines holding one): these return the next state to write.
struct Judged {
  RouteDoc next;
  std::optional<routing::Judgement> judgement;
};

Judged judge_doc(const RouteDoc& cur, const config::Rollout& policy, const metrics::RouteWindows& w,
                 const std::string& instance) {
  RolloutController ctl(policy, *cur.rollout);
  const auto canary =
      to_version_window(w[static_cast<std::size_t>(metrics::Version::canary)], policy);
  const auto stable =
      to_version_window(w[static_cast<std::size_t>(metrics::Version::stable)], policy);
  auto r = ctl.tick(SystemClock::now(), canary, stable);
  Judged out{cur, std::move(r.judgement)};
  out.next.seq = cur.seq + 1;
  out.next.writer = instance;
  out.next.cause = "judgement";
  out.next.time_ms = unix_ms();
  out.next.weight_bp = ctl.weight_bp();
  out.next.rollout = ctl.status();
  out.next = as_stored(out.next);
  return out;
}

RouteDoc seed_doc(const RolloutManager::FleetRoute& route, const routing::HeldState& own,
                  const std::vector<routing::HeldState>& members, const std::string& instance) {
  const auto choice = routing::choose_seed(own, members);
  RouteDoc d;
  d.seq = choice.seq;
  d.writer = instance;
  d.cause = "seed from " + (choice.index == 0 ? own.instance : members[choice.index - 1].instance);
  d.time_ms = unix_ms();
  if (choice.index == 0) {
    d.weight_bp = own.weight_bp;
    d.rollout = route.status;
  } else if (route.policy) {
    RolloutController ctl(*route.policy,
                          routing::seed_status(members[choice.index - 1], SystemClock::now()));
    d.weight_bp = ctl.weight_bp();
    d.rollout = ctl.status();
  } else {
    d.weight_bp = members[choice.index - 1].weight_bp;
  }
  return as_stored(d);
}

// An operator action on `base` (the state in etcd, or what this instance holds when there is
// none yet): the next state, or the refusal.
struct Acted {
  std::optional<ActionResult> refused;
  RouteDoc next;
};

Acted act_on(const RouteDoc& base, const RolloutManager::FleetRoute& local,
             const std::string& action, std::optional<std::uint32_t> weight_bp,
             const std::string& instance, const std::string& cause) {
  const auto now = SystemClock::now();
  std::optional<RolloutController> ctl;
  if (local.policy) {
    routing::RolloutStatus status;
    if (base.rollout) {
      status = *base.rollout;
    } else {  // the writer had no policy for the route
      status.weight_bp = base.weight_bp;
      status.since = now;
    }
    ctl.emplace(*local.policy, std::move(status));
  }
  RolloutController::TickResult r;
  std::uint32_t weight = base.weight_bp;
  if (action == "weight") {
    if (!weight_bp || *weight_bp > 10000)
      return {error_result(400, "weight must be a percentage between 0 and 100"), {}};
    if (ctl)
      r = ctl->set_weight(*weight_bp, now);
    else
      weight = *weight_bp;
  } else if (!ctl) {
    return {error_result(409, "route \"" + local.name + "\" has no rollout policy"), {}};
  } else if (action == "pause") {
    r = ctl->pause(now);
  } else if (action == "resume") {
    r = ctl->resume(now);
  } else if (action == "promote") {
    r = ctl->promote(now);
  } else if (action == "abort") {
    r = ctl->abort(now);
  } else if (action == "restart") {  // reload only: judgements were about another build
    ctl.emplace(*local.policy, 0, now);
  } else {
    return {error_result(404, "unknown action \"" + action + "\""), {}};
  }
  if (!r.error.empty()) return {error_result(409, r.error), {}};
  Acted out{std::nullopt, base};
  out.next.seq = base.seq + 1;
  out.next.writer = instance;
  out.next.cause = cause;
  out.next.time_ms = unix_ms();
  out.next.weight_bp = ctl ? ctl->weight_bp() : weight;
  if (ctl)
    out.next.rollout = ctl->status();
  else
    out.next.rollout.reset();
  out.next = as_stored(out.next);
  return out;
}

ActionResult ok_result(const std::string& route, const std::string& state, double percent) {
  return {200, json::object{
                   {"route", route}, {"state", state}, {"weight_percent", json_number(percent)}}};
}

// Transactions are built outside coroutines: g++ 12 miscompiles initializer lists in them.
using Target = etcd::Compare::Target;

// Create-if-absent: exactly one instance's key is created; it lives as long as its lease.
etcd::TxnRequest campaign_txn(const std::string& leader_key, const std::string& id,
                              std::int64_t lease) {
  return {{{Target::create, leader_key, 0, ""}}, {{leader_key, id, lease}}, {leader_key}};
}

// Fenced: only while `lease` holds the leader key, and only over the state that was judged.
etcd::TxnRequest judged_txn(const std::string& leader_key, std::int64_t lease,
                            const std::string& state_key, std::int64_t mod_revision,
                            std::string value) {
  return {{{Target::lease, leader_key, lease, ""}, {Target::mod, state_key, mod_revision, ""}},
          {{state_key, std::move(value), 0}},
          {state_key, leader_key}};
}

etcd::TxnRequest seed_txn(const std::string& leader_key, std::int64_t lease,
                          const std::string& state_key, std::string value) {
  return {{{Target::create, state_key, 0, ""}, {Target::lease, leader_key, lease, ""}},
          {{state_key, std::move(value), 0}},
          {state_key}};
}

// Compare-and-swap on the key's revision (create-if-absent when it does not exist yet).
etcd::TxnRequest cas_txn(const std::string& state_key, bool exists, std::int64_t mod_revision,
                         std::string value) {
  etcd::Compare c = exists ? etcd::Compare{Target::mod, state_key, mod_revision, ""}
                           : etcd::Compare{Target::create, state_key, 0, ""};
  return {{std::move(c)}, {{state_key, std::move(value), 0}}, {}};
}

}  // namespace

Fleet::Fleet(const config::Fleet& config, const config::Admin& admin, RolloutManager& rollouts,
             metrics::Metrics& metrics)
    : config_(config),
      instance_(config.instance.empty() ? default_instance(admin) : config.instance),
      admin_(admin.address.str()),
      prefix_(config.etcd.prefix),
      rollouts_(rollouts),
      metrics_(metrics),
      report_period_(1000),
      client_(ioc_.get_executor(), EtcdClient::Options{config.etcd.endpoints, etcd_tls(config),
                                                       client_timeout(config)}) {
  auto& reg = metrics_.registry();
  leader_gauge_ =
      &prometheus::BuildGauge()
           .Name("grayproxy_fleet_leader")
           .Help("1 while this instance leads the fleet (judges and writes the rollout).")
           .Register(reg)
           .Add({});
  members_gauge_ = &prometheus::BuildGauge()
                        .Name("grayproxy_fleet_members")
                        .Help("Fleet members with a live report in etcd, as last read.")
                        .Register(reg)
                        .Add({});
  up_gauge_ = &prometheus::BuildGauge()
                   .Name("grayproxy_fleet_etcd_up")
                   .Help("1 while etcd answers this instance.")
                   .Register(reg)
                   .Add({});
  frozen_gauge_ = &prometheus::BuildGauge()
                       .Name("grayproxy_fleet_frozen")
                       .Help(
                           "1 while the rollout is frozen because etcd is unreachable (weights "
                           "held, no steps, no rollbacks, no admin writes).")
                       .Register(reg)
                       .Add({});
  frozen_gauge_->Set(1);
  errors_ = &prometheus::BuildCounter()
                 .Name("grayproxy_fleet_etcd_errors_total")
                 .Help("Failed etcd requests, by operation.")
                 .Register(reg);
  frozen_since_ms_ = unix_ms();
}

Fleet::~Fleet() {
  stop();
}

void Fleet::start() {
  // Reports often enough that the leader's windows lag the traffic by a fraction of one.
  milliseconds shortest{5000};
  for (auto const& r : rollouts_.fleet_routes())
    if (r.policy) shortest = std::min<milliseconds>(shortest, r.policy->interval);
  report_period_ = std::clamp<milliseconds>(shortest / 4, milliseconds(250), milliseconds(5000));
  log::info("fleet mode")
      .kv("instance", instance_)
      .kv("prefix", prefix_)
      .kv("etcd", client_.endpoint())
      .kv("lease_ttl_ms", config_.etcd.lease_ttl.count())
      .kv("report_period_ms", report_period_.count());
  auto ex = ioc_.get_executor();
  asio::co_spawn(ex, keepalive_loop(), asio::detached);
  asio::co_spawn(ex, publish_loop(), asio::detached);
  asio::co_spawn(ex, watch_loop(), asio::detached);
  asio::co_spawn(ex, leader_loop(), asio::detached);
  thread_ = std::thread([this] { ioc_.run(); });
}

void Fleet::stop() {
  if (!thread_.joinable()) return;
  auto done = std::make_shared<std::promise<void>>();
  asio::co_spawn(ioc_.get_executor(), revoke(),
                 [done](const std::exception_ptr&) { done->set_value(); });
  done->get_future().wait_for(client_timeout(config_) + milliseconds(500));
  ioc_.stop();
  thread_.join();
}

Task<void> Fleet::revoke() {
  if (lease_ == 0) co_return;
  const std::int64_t id = lease_;
  lease_ = 0;
  auto ec = co_await client_.lease_revoke(id);
  if (!ec) log::info("fleet lease revoked: leadership and membership released");
}

Task<void> Fleet::sleep(milliseconds d) {
  Timer timer(ioc_.get_executor());
  timer.expires_after(d);
  co_await timer.async_wait(use_task);
}

void Fleet::failed(const char* op, const error_code& ec) {
  errors_->Add({{"op", op}}).Increment();
  if (!transport_failure(ec)) {
    log::warn("etcd request failed").kv("op", op).kv("error", client_.last_error());
    return;
  }
  bool was_up;
  bool report;
  {
    std::lock_guard lock(mu_);
    was_up = etcd_up_;
    if (was_up) {
      etcd_up_ = false;
      frozen_since_ms_ = unix_ms();
    }
    // Once per outage, including one that began at startup (never reached).
    report = !down_reported_;
    down_reported_ = true;
  }
  if (!report) return;
  up_gauge_->Set(0);
  frozen_gauge_->Set(1);
  log::warn("etcd unreachable: serving the last known weights, rollout frozen")
      .kv("op", op)
      .kv("error", client_.last_error());
  client_.cancel_watch();  // a half-open watch would never notice
}

void Fleet::reachable() {
  {
    std::lock_guard lock(mu_);
    if (etcd_up_) return;
    etcd_up_ = true;
    down_reported_ = false;
    frozen_since_ms_ = 0;
  }
  up_gauge_->Set(1);
  frozen_gauge_->Set(0);
  baseline_needed_ = true;  // traffic counted while frozen is not judged
  log::info("etcd reachable: fleet rollout active").kv("etcd", client_.endpoint());
}

void Fleet::set_leader(bool leader, const std::string& who) {
  {
    std::lock_guard lock(mu_);
    leader_id_ = who;
    if (leader && !leader_) leader_since_ms_ = unix_ms();
    is_leader_ = leader;
  }
  if (leader == leader_) return;
  leader_ = leader;
  leader_gauge_->Set(leader ? 1 : 0);
  if (leader) {
    leader_since_ = SteadyClock::now();
    baseline_needed_ = true;
    log::info("fleet leadership taken").kv("instance", instance_).kv("lease", lease_);
  } else {
    log::info("fleet leadership lost").kv("instance", instance_).kv("leader", who);
  }
}

Task<void> Fleet::keepalive_loop() {
  const std::int64_t ttl_seconds = config_.etcd.lease_ttl.count() / 1000;
  for (;;) {
    if (lease_ == 0) {
      auto [ec, id] = co_await client_.lease_grant(ttl_seconds);
      if (ec) {
        failed("lease_grant", ec);
        co_await sleep(kRetry);
        continue;
      }
      reachable();
      lease_ = id;
      log::info("fleet lease granted").kv("lease", id).kv("ttl_seconds", ttl_seconds);
    } else {
      const std::int64_t id = lease_;
      auto [ec, ttl] = co_await client_.lease_keepalive(id);
      if (ec) {
        failed("lease_keepalive", ec);
      } else if (ttl <= 0) {
        log::warn("fleet lease expired: joining again").kv("lease", id);
        if (lease_ == id) lease_ = 0;
        set_leader(false, "");
        continue;
      } else {
        reachable();
      }
    }
    co_await sleep(config_.etcd.lease_ttl / 3);
  }
}

Task<std::optional<std::vector<MemberReport>>> Fleet::read_reports() {
  auto [ec, range] = co_await client_.range(prefix_ + "/members/", true);
  if (ec) {
    failed("members", ec);
    co_return std::nullopt;
  }
  reachable();
  std::vector<MemberReport> out;
  for (auto const& kv : range.kvs)
    if (auto r = parse_report(kv.key, kv.value)) out.push_back(std::move(*r));
  {
    std::lock_guard lock(mu_);
    members_.clear();
    for (auto const& r : out) members_[r.instance] = Member{r.admin, r.time_ms};
  }
  members_gauge_->Set(static_cast<double>(out.size()));
  co_return out;
}

Task<void> Fleet::campaign() {
  auto [ec, range] = co_await client_.range(leader_key(), false);
  if (ec) {
    failed("leader", ec);
    co_return;
  }
  if (!range.kvs.empty()) {
    auto const& kv = range.kvs.front();
    set_leader(lease_ != 0 && kv.lease == lease_ && kv.value == instance_, kv.value);
    co_return;
  }
  if (lease_ == 0) co_return;
  const std::int64_t lease = lease_;
  auto request = campaign_txn(leader_key(), instance_, lease);
  auto [tec, t] = co_await client_.txn(std::move(request));
  if (tec) {
    failed("campaign", tec);
    co_return;
  }
  if (t.succeeded) {
    set_leader(lease_ == lease, instance_);
  } else if (!t.reads.empty() && !t.reads[0].kvs.empty()) {
    set_leader(false, t.reads[0].kvs[0].value);
  }
}

Task<void> Fleet::publish_loop() {
  for (bool first = true;; first = false) {
    if (!first) co_await sleep(report_period_);
    if (lease_ == 0) continue;
    MemberReport r;
    r.instance = instance_;
    r.admin = admin_;
    r.time_ms = unix_ms();
    r.totals.instance = instance_;
    for (auto const& route : rollouts_.fleet_routes()) {
      r.totals.routes[route.name] = {metrics_.totals(route.name, metrics::Version::stable),
                                     metrics_.totals(route.name, metrics::Version::canary)};
      r.held[route.name] = route.held;
    }
    const std::int64_t lease = lease_;
    etcd::Put put{member_key(instance_), to_text(r), lease};
    auto ec = co_await client_.put(std::move(put));
    if (ec == etcd::Errc::not_found) {  // the lease expired: the keepalive loop takes a new one
      if (lease_ == lease) lease_ = 0;
      set_leader(false, "");
      continue;
    }
    if (ec) {
      failed("publish", ec);
      continue;
    }
    reachable();
    co_await campaign();
    (void)co_await read_reports();
    // SIGHUP edits made while etcd was away (or still in flight).
    std::map<std::string, ReloadEdit> pending;
    {
      std::lock_guard lock(mu_);
      pending = pending_edits_;
    }
    for (auto const& [route, edit] : pending)
      if (!co_await write_edit(route, edit)) break;
  }
}

void Fleet::take_doc(const std::string& route, RouteDoc doc, std::int64_t mod_revision) {
  Doc d{std::move(doc), mod_revision};
  {
    std::lock_guard lock(mu_);
    seen_[route] = {d.doc.seq, d.doc.writer};
  }
  auto it = docs_.find(route);
  if (it != docs_.end() && !routing::should_apply(it->second.doc.seq, d.doc.seq)) return;
  docs_[route] = d;
  rollouts_.apply_fleet(route, d.doc, false);
}

void Fleet::on_events(const std::vector<etcd::Event>& events) {
  const std::string base = prefix_ + "/state/";
  for (auto& ev : events) {
    if (!ev.kv.key.starts_with(base)) continue;
    const std::string route = ev.kv.key.substr(base.size());
    if (ev.deleted) {
      docs_.erase(route);
      log::warn("fleet route state deleted from etcd; the leader seeds it again")
          .kv("route", route);
      continue;
    }
    if (auto d = parse_doc(route, ev.kv.value)) take_doc(route, std::move(*d), ev.kv.mod_revision);
  }
}

Task<void> Fleet::watch_loop() {
  const std::string base = prefix_ + "/state/";
  for (;;) {
    auto [ec, range] = co_await client_.range(base, true);
    if (ec) {
      failed("watch", ec);
      co_await sleep(kRetry);
      continue;
    }
    reachable();
    std::set<std::string> present;
    for (auto const& kv : range.kvs) {
      const std::string route = kv.key.substr(base.size());
      present.insert(route);
      if (auto d = parse_doc(route, kv.value)) take_doc(route, std::move(*d), kv.mod_revision);
    }
    std::erase_if(docs_, [&](auto const& d) { return !present.contains(d.first); });
    synced_ = true;
    const std::int64_t from = range.revision + 1;
    auto wec = co_await client_.watch(
        base, from, [this](const std::vector<etcd::Event>& ev) { on_events(ev); });
    // Cancelled: failed() already counted why. Compacted: the range above catches up.
    if (wec != asio::error::operation_aborted && wec != etcd::Errc::compacted) failed("watch", wec);
    co_await sleep(kRetry);
  }
}

Task<void> Fleet::leader_loop() {
  for (;;) {
    co_await sleep(kLeaderPoll);
    bool up;
    {
      std::lock_guard lock(mu_);
      up = etcd_up_;
    }
    if (!leader_ || !up || !synced_) continue;  // frozen: no steps, no rollbacks
    const auto routes = rollouts_.fleet_routes();
    const auto now = SteadyClock::now();
    if (baseline_needed_) {
      auto reports = co_await read_reports();
      if (!reports) continue;
      std::vector<metrics::MemberTotals> totals;
      for (auto& r : *reports) totals.push_back(std::move(r.totals));
      windows_.reset();
      next_tick_.clear();
      for (auto const& r : routes) {
        if (!r.policy) continue;
        (void)windows_.advance(r.name, totals);
        next_tick_[r.name] = now + r.policy->interval;
      }
      baseline_needed_ = false;
      continue;
    }
    for (auto const& r : routes) {
      if (!leader_) break;
      if (!docs_.contains(r.name)) {
        // Wait one report period after taking over, so every member's state is known.
        if (now - leader_since_ >= report_period_) co_await seed(r);
        continue;
      }
      if (!r.policy) continue;
      auto [it, added] = next_tick_.try_emplace(r.name, now);  // new route: baseline now
      if (now < it->second) continue;
      it->second += r.policy->interval;
      if (it->second < now) it->second = now + r.policy->interval;  // fell behind
      co_await judge(r.name, *r.policy);
    }
  }
}

Task<void> Fleet::judge(const std::string& route, const config::Rollout& policy) {
  auto reports = co_await read_reports();
  if (!reports) co_return;
  std::vector<metrics::MemberTotals> totals;
  for (auto& r : *reports) totals.push_back(std::move(r.totals));
  const auto windows = windows_.advance(route, totals);
  if (!windows) co_return;  // baseline only
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto it = docs_.find(route);
    if (it == docs_.end()) co_return;
    const Doc cur = it->second;
    if (!cur.doc.rollout || cur.doc.rollout->state != RolloutState::progressing) co_return;
    Judged judged = judge_doc(cur.doc, policy, *windows, instance_);
    auto request =
        judged_txn(leader_key(), lease_, state_key(route), cur.mod_revision, to_text(judged.next));
    auto [ec, t] = co_await client_.txn(std::move(request));
    if (ec) {
      failed("judge", ec);
      co_return;
    }
    if (t.succeeded) {
      if (judged.judgement) RolloutManager::log_judgement(route, *judged.judgement, totals.size());
      take_doc(route, std::move(judged.next), t.revision);
      co_return;
    }
    // Lost the race: to another leader (stop), or to an admin write (judge on top of it).
    if (t.reads.size() < 2) co_return;
    auto const& leader = t.reads[1].kvs;
    if (leader.empty() || leader.front().lease != lease_) {
      set_leader(false, leader.empty() ? "" : leader.front().value);
      co_return;
    }
    if (t.reads[0].kvs.empty()) co_return;
    auto const& kv = t.reads[0].kvs.front();
    auto d = parse_doc(route, kv.value);
    if (!d) co_return;
    take_doc(route, std::move(*d), kv.mod_revision);
  }
}

Task<void> Fleet::seed(const RolloutManager::FleetRoute& route) {
  auto reports = co_await read_reports();
  if (!reports) co_return;
  routing::HeldState own = route.held;
  own.instance = instance_;
  std::vector<routing::HeldState> members;
  for (auto const& m : *reports) {
    if (m.instance == instance_) continue;
    if (auto h = m.held.find(route.name); h != m.held.end()) members.push_back(h->second);
  }
  RouteDoc d = seed_doc(route, own, members, instance_);
  auto request = seed_txn(leader_key(), lease_, state_key(route.name), to_text(d));
  auto [ec, t] = co_await client_.txn(std::move(request));
  if (ec) {
    failed("seed", ec);
    co_return;
  }
  if (t.succeeded) {
    log::info("fleet route state seeded")
        .kv("route", route.name)
        .kv("cause", d.cause)
        .kv("seq", d.seq)
        .kv("weight_percent", d.weight_bp / 100.0);
    take_doc(route.name, std::move(d), t.revision);
  } else if (!t.reads.empty() && !t.reads[0].kvs.empty()) {
    auto const& kv = t.reads[0].kvs.front();
    if (auto parsed = parse_doc(route.name, kv.value))
      take_doc(route.name, std::move(*parsed), kv.mod_revision);
  }
}

Task<ActionResult> Fleet::act_task(std::string route, std::string action,
                                   std::optional<std::uint32_t> weight_bp, std::string cause) {
  {
    std::lock_guard lock(mu_);
    if (!etcd_up_)
      co_return error_result(503,
                             "etcd is unreachable: the fleet is frozen and refuses writes until "
                             "it is back");
  }
  const auto local = rollouts_.fleet_route(route);
  if (!local) co_return error_result(404, "no route \"" + route + "\" with a canary");
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto [ec, range] = co_await client_.range(state_key(route), false);
    if (ec) {
      failed("admin", ec);
      co_return error_result(503, "etcd: " + client_.last_error());
    }
    RouteDoc base;
    std::int64_t mod = 0;
    const bool exists = !range.kvs.empty();
    if (exists) {
      auto parsed = parse_doc(route, range.kvs.front().value);
      if (!parsed) co_return error_result(500, "the fleet state in etcd is unreadable");
      base = std::move(*parsed);
      mod = range.kvs.front().mod_revision;
    } else {  // not seeded yet: act on what this instance holds
      base.seq = local->held.seq;
      base.weight_bp = local->held.weight_bp;
      base.rollout = local->status;
    }
    Acted acted = act_on(base, *local, action, weight_bp, instance_, cause);
    if (acted.refused) co_return std::move(*acted.refused);
    RouteDoc& next = acted.next;
    auto request = cas_txn(state_key(route), exists, mod, to_text(next));
    auto [tec, t] = co_await client_.txn(std::move(request));
    if (tec) {
      failed("admin", tec);
      co_return error_result(503, "etcd: " + client_.last_error());
    }
    if (!t.succeeded) continue;  // written meanwhile: act on the newer state
    const std::string state =
        routing::to_string(next.rollout ? next.rollout->state : RolloutState::idle);
    const double percent = next.weight_bp / 100.0;
    take_doc(route, std::move(next), t.revision);
    co_return ok_result(route, state, percent);
  }
  co_return error_result(409, "the fleet state kept changing; try again");
}

ActionResult Fleet::act(const std::string& route, const std::string& action,
                        std::optional<std::uint32_t> weight_bp) {
  auto result = std::make_shared<std::promise<ActionResult>>();
  auto future = result->get_future();
  asio::co_spawn(ioc_.get_executor(), act_task(route, action, weight_bp, "admin"),
                 [result](const std::exception_ptr& e, ActionResult r) {
                   if (e) r = error_result(500, "internal error");
                   result->set_value(std::move(r));
                 });
  if (future.wait_for(kActWait) != std::future_status::ready)
    return error_result(503, "etcd did not answer in time");
  return future.get();
}

Task<bool> Fleet::write_edit(std::string route, ReloadEdit edit) {
  std::optional<std::uint32_t> weight;
  if (!edit.restart) weight = edit.weight_bp;
  std::string action = edit.restart ? "restart" : "weight";
  auto res = co_await act_task(route, std::move(action), weight, "reload");
  if (res.http_status == 503) co_return false;  // kept pending: the publish loop retries
  if (res.http_status != 200)
    log::warn("reload edit not written to the fleet")
        .kv("route", route)
        .kv("status", res.http_status)
        .kv("error", json::serialize(res.body));
  std::lock_guard lock(mu_);
  if (auto it = pending_edits_.find(route); it != pending_edits_.end() && it->second == edit)
    pending_edits_.erase(it);
  co_return true;
}

void Fleet::submit_edit(const std::string& route, ReloadEdit edit) {
  {
    std::lock_guard lock(mu_);
    pending_edits_[route] = edit;
  }
  if (edit.restart)
    log::info("reload edit sent to the fleet: restart the analysis (canary cluster changed)")
        .kv("route", route);
  else
    log::info("reload weight edit sent to the fleet")
        .kv("route", route)
        .kv("weight_percent", edit.weight_bp / 100.0);
  asio::co_spawn(
      ioc_.get_executor(),
      [this, route, edit]() -> Task<void> { (void)co_await write_edit(route, edit); },
      asio::detached);
}

void Fleet::resync() {
  asio::post(ioc_, [this] {
    std::map<std::string, ReloadEdit> pending;
    {
      std::lock_guard lock(mu_);
      pending = pending_edits_;
    }
    for (auto const& [route, d] : docs_)
      if (!pending.contains(route)) rollouts_.apply_fleet(route, d.doc, true);
  });
}

json::object Fleet::status() const {
  std::lock_guard lock(mu_);
  const std::int64_t now = unix_ms();
  json::array members;
  for (auto const& [id, m] : members_)
    members.push_back(json::object{{"instance", id},
                                   {"admin", m.admin},
                                   {"last_report_ms", m.report_ms},
                                   {"last_report_age_ms", now - m.report_ms}});
  json::object routes;
  for (auto const& [route, s] : seen_)
    routes[route] = json::object{{"seq", s.first}, {"writer", s.second}};
  json::object pending;
  for (auto const& [route, e] : pending_edits_)
    pending[route] = e.restart ? json::value("restart") : json_number(e.weight_bp / 100.0);
  json::array endpoints;
  for (auto const& e : config_.etcd.endpoints) endpoints.push_back(json::value(e.str()));
  return json::object{
      {"instance", instance_},
      {"leader", leader_id_.empty() ? json::value(nullptr) : json::value(leader_id_)},
      {"is_leader", is_leader_},
      {"leader_since_ms", is_leader_ ? json::value(leader_since_ms_) : json::value()},
      {"members", std::move(members)},
      {"etcd_reachable", etcd_up_},
      {"etcd_endpoints", std::move(endpoints)},
      {"prefix", prefix_},
      {"lease_ttl_seconds", config_.etcd.lease_ttl.count() / 1000},
      {"frozen", !etcd_up_},
      {"frozen_since_ms", etcd_up_ ? json::value(nullptr) : json::value(frozen_since_ms_)},
      {"routes", std::move(routes)},
      {"pending_weight_edits", std::move(pending)},
  };
}

}  // namespace gp::proxy
