#include "proxy/rollout_json.hpp"

#include <boost/json.hpp>
#include <cmath>
#include <stdexcept>

namespace gp::proxy {

namespace json = boost::json;
using routing::Judgement;
using routing::RolloutStatus;
using routing::TimePoint;

namespace {

std::int64_t to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
TimePoint from_ms(std::int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}

// JSON has no NaN or infinity: "not measured" is null.
json::value num(double v) {
  return std::isfinite(v) ? json::value(v) : json::value(nullptr);
}
double num_of(const json::object& o, std::string_view key) {
  auto const* v = o.if_contains(key);
  if (!v || v->is_null()) return std::numeric_limits<double>::quiet_NaN();
  return v->to_number<double>();
}
std::uint64_t u64(const json::object& o, std::string_view key) {
  return o.at(key).to_number<std::uint64_t>();
}

json::object version_json(const routing::VersionStats& v) {
  return json::object{{"requests", v.requests},           {"errors", v.errors},
                      {"step_requests", v.step_requests}, {"step_errors", v.step_errors},
                      {"error_rate", num(v.error_rate)},  {"p99_seconds", num(v.p99_seconds)}};
}
routing::VersionStats version_from(const json::object& o) {
  routing::VersionStats v;
  v.requests = u64(o, "requests");
  v.errors = u64(o, "errors");
  v.step_requests = u64(o, "step_requests");
  v.step_errors = u64(o, "step_errors");
  v.error_rate = num_of(o, "error_rate");
  v.p99_seconds = num_of(o, "p99_seconds");
  return v;
}

routing::Verdict verdict_from(std::string_view s) {
  for (auto v : {routing::Verdict::pass, routing::Verdict::fail, routing::Verdict::inconclusive})
    if (s == routing::to_string(v)) return v;
  throw std::invalid_argument("unknown verdict");
}

Judgement judgement_from(const json::object& o) {
  Judgement j;
  j.time = from_ms(o.at("time_ms").to_number<std::int64_t>());
  j.verdict = verdict_from(o.at("verdict").as_string());
  j.reason = std::string(o.at("reason").as_string());
  j.step_index = o.at("step_index").to_number<int>();
  j.weight_bp = o.at("weight_bp").to_number<std::uint32_t>();
  j.window = o.at("window").to_number<std::uint32_t>();
  j.judgement = o.at("judgement").to_number<std::uint32_t>();
  j.new_requests = u64(o, "new_requests");
  j.canary = version_from(o.at("canary").as_object());
  j.stable = version_from(o.at("stable").as_object());
  j.fail_below = num_of(o, "fail_below");
  j.pass_from = num_of(o, "pass_from");
  j.error_rate_p_value = num_of(o, "error_rate_p_value");
  j.error_rate_lower = num_of(o, "error_rate_lower");
  j.error_rate_upper = num_of(o, "error_rate_upper");
  j.p_value = num_of(o, "p_value");
  auto const& t = o.at("thresholds").as_object();
  j.min_requests = u64(t, "min_requests");
  j.max_error_rate = num_of(t, "max_error_rate");
  j.confidence = num_of(t, "confidence");
  j.compare_to_stable = t.at("compare_to_stable").as_bool();
  j.max_error_rate_increase = num_of(t, "max_error_rate_increase");
  j.max_p99_seconds = num_of(t, "max_p99_seconds");
  j.consecutive_passes = o.at("consecutive_passes").to_number<std::uint32_t>();
  j.consecutive_failures = o.at("consecutive_failures").to_number<std::uint32_t>();
  return j;
}

}  // namespace

json::value json_number(double v) {
  if (!std::isfinite(v)) return nullptr;
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) return static_cast<std::int64_t>(v);
  return v;
}

json::object to_json(const Judgement& j) {
  return json::object{
      {"time_ms", to_ms(j.time)},
      {"verdict", routing::to_string(j.verdict)},
      {"reason", j.reason},
      {"step_index", j.step_index},
      {"weight_bp", j.weight_bp},
      {"weight_percent", num(j.weight_bp / 100.0)},
      {"window", j.window},
      {"judgement", j.judgement},
      {"new_requests", j.new_requests},
      {"canary", version_json(j.canary)},
      {"stable", version_json(j.stable)},
      {"fail_below", num(j.fail_below)},
      {"pass_from", num(j.pass_from)},
      {"error_rate_p_value", num(j.error_rate_p_value)},
      {"error_rate_lower", num(j.error_rate_lower)},
      {"error_rate_upper", num(j.error_rate_upper)},
      {"p_value", num(j.p_value)},
      {"thresholds", json::object{{"min_requests", j.min_requests},
                                  {"max_error_rate", num(j.max_error_rate)},
                                  {"confidence", num(j.confidence)},
                                  {"compare_to_stable", j.compare_to_stable},
                                  {"max_error_rate_increase", num(j.max_error_rate_increase)},
                                  {"max_p99_seconds", num(j.max_p99_seconds)}}},
      {"consecutive_passes", j.consecutive_passes},
      {"consecutive_failures", j.consecutive_failures},
  };
}

json::object to_json(const RolloutStatus& s) {
  json::array last;
  for (auto const& j : s.last) last.push_back(to_json(j));
  return json::object{
      {"state", routing::to_string(s.state)},
      {"weight_bp", s.weight_bp},
      {"weight_percent", num(s.weight_bp / 100.0)},
      {"step_index", s.step_index},
      {"consecutive_passes", s.consecutive_passes},
      {"consecutive_failures", s.consecutive_failures},
      {"step_windows", s.step_windows},
      {"step_canary_requests", s.step_canary_requests},
      {"step_canary_errors", s.step_canary_errors},
      {"step_stable_requests", s.step_stable_requests},
      {"step_stable_errors", s.step_stable_errors},
      {"pending_canary_requests", s.pending_canary_requests},
      {"step_judgements", s.step_judgements},
      {"judge_from_ms", to_ms(s.judge_from)},
      {"since_ms", to_ms(s.since)},
      {"reason", s.reason},
      {"judgements", std::move(last)},
  };
}

RolloutStatus status_from_json(const json::object& o) {
  RolloutStatus s;
  auto state = routing::parse_state(o.at("state").as_string());
  if (!state) throw std::invalid_argument("unknown rollout state");
  s.state = *state;
  s.weight_bp = o.at("weight_bp").to_number<std::uint32_t>();
  if (s.weight_bp > 10000) throw std::invalid_argument("weight out of range");
  s.step_index = o.at("step_index").to_number<int>();
  s.consecutive_passes = o.at("consecutive_passes").to_number<std::uint32_t>();
  s.consecutive_failures = o.at("consecutive_failures").to_number<std::uint32_t>();
  s.step_windows = o.at("step_windows").to_number<std::uint32_t>();
  s.step_canary_requests = u64(o, "step_canary_requests");
  s.step_canary_errors = u64(o, "step_canary_errors");
  s.step_stable_requests = u64(o, "step_stable_requests");
  s.step_stable_errors = u64(o, "step_stable_errors");
  s.pending_canary_requests = u64(o, "pending_canary_requests");
  s.step_judgements = o.at("step_judgements").to_number<std::uint32_t>();
  s.judge_from = from_ms(o.at("judge_from_ms").to_number<std::int64_t>());
  s.since = from_ms(o.at("since_ms").to_number<std::int64_t>());
  s.reason = std::string(o.at("reason").as_string());
  for (auto const& j : o.at("judgements").as_array())
    s.last.push_back(judgement_from(j.as_object()));
  while (s.last.size() > routing::RolloutController::kMaxJudgements) s.last.pop_front();
  return s;
}

}  // namespace gp::proxy
