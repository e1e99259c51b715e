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
std::uint64_t u64_or(const json::object& o, std::string_view key) {
  auto const* v = o.if_contains(key);
  return v ? v->to_number<std::uint64_t>() : 0;
}

json::object version_json(const routing::VersionStats& v) {
  return json::object{{"requests", v.requests},
                      {"errors", v.errors},
                      {"slow", v.slow},
                      {"step_requests", v.step_requests},
                      {"step_errors", v.step_errors},
                      {"error_rate", num(v.error_rate)},
                      {"p99_seconds", num(v.p99_seconds)}};
}
routing::VersionStats version_from(const json::object& o) {
  routing::VersionStats v;
  v.requests = u64(o, "requests");
  v.errors = u64(o, "errors");
  v.slow = u64_or(o, "slow");
  v.step_requests = u64(o, "step_requests");
  v.step_errors = u64(o, "step_errors");
  v.error_rate = num_of(o, "error_rate");
  v.p99_seconds = num_of(o, "p99_seconds");
  return v;
}

json::object test_json(const routing::TestStats& t) {
  return json::object{{"evidence", num(t.evidence)},
                      {"bar", num(t.bar)},
                      {"pass_evidence", num(t.pass_evidence)},
                      {"pass_bound", num(t.pass_bound)},
                      {"pass_factor", num(t.pass_factor)}};
}
routing::TestStats test_from(const json::object& o, std::string_view key) {
  routing::TestStats t;
  auto const* v = o.if_contains(key);
  if (!v || !v->is_object()) return t;
  auto const& x = v->as_object();
  t.evidence = num_of(x, "evidence");
  t.bar = num_of(x, "bar");
  t.pass_evidence = num_of(x, "pass_evidence");
  t.pass_bound = num_of(x, "pass_bound");
  t.pass_factor = num_of(x, "pass_factor");
  return t;
}

json::array sums_json(const routing::EvidenceSums& sums) {
  json::array a;
  for (const double v : sums) a.push_back(num(v));
  return a;
}
routing::EvidenceSums sums_from(const json::object& o, std::string_view key) {
  routing::EvidenceSums sums{};
  auto const& a = o.at(key).as_array();
  if (a.size() != sums.size()) throw std::invalid_argument("evidence sums of another layout");
  for (std::size_t i = 0; i < sums.size(); ++i) {
    if (a[i].is_null()) throw std::invalid_argument("evidence sum is not finite");
    sums[i] = a[i].to_number<double>();
  }
  return sums;
}

json::object evidence_json(const routing::EvidenceState& e) {
  return json::object{{"relative", sums_json(e.relative)},
                      {"absolute", sums_json(e.absolute)},
                      {"absolute_accept", sums_json(e.absolute_accept)},
                      {"latency", sums_json(e.latency)},
                      {"relative_active", e.relative_active},
                      {"absolute_active", e.absolute_active},
                      {"latency_active", e.latency_active},
                      {"dispersion_num", num(e.dispersion_num)},
                      {"dispersion_den", num(e.dispersion_den)},
                      {"rank_score", num(e.rank_score)},
                      {"rank_information", num(e.rank_information)},
                      {"rank_active", e.rank_active},
                      {"ratio", num(e.ratio)},
                      {"max_error_rate", num(e.max_error_rate)},
                      {"latency_ratio", num(e.latency_ratio)}};
}
routing::EvidenceState evidence_from(const json::object& o) {
  routing::EvidenceState e;
  e.relative = sums_from(o, "relative");
  e.absolute = sums_from(o, "absolute");
  e.absolute_accept = sums_from(o, "absolute_accept");
  e.latency = sums_from(o, "latency");
  e.relative_active = o.at("relative_active").as_bool();
  e.absolute_active = o.at("absolute_active").as_bool();
  e.latency_active = o.at("latency_active").as_bool();
  e.dispersion_num = o.at("dispersion_num").to_number<double>();
  e.dispersion_den = o.at("dispersion_den").to_number<double>();
  e.ratio = o.at("ratio").to_number<double>();
  e.max_error_rate = o.at("max_error_rate").to_number<double>();
  // Absent from an earlier build's state: no rank test then (latency_ratio 0 voids it on a
  // policy that has one).
  if (o.contains("rank_score")) {
    e.rank_score = o.at("rank_score").to_number<double>();
    e.rank_information = o.at("rank_information").to_number<double>();
    e.rank_active = o.at("rank_active").as_bool();
    e.latency_ratio = o.at("latency_ratio").to_number<double>();
  }
  if (!(e.dispersion_num >= 0 && e.dispersion_den >= 0 && e.rank_information >= 0))
    throw std::invalid_argument("negative evidence sums");
  return e;
}

routing::Verdict verdict_from(std::string_view s) {
  if (auto v = routing::parse_verdict(s)) return *v;
  throw std::invalid_argument("unknown verdict");
}

// Judgements written by an earlier build lack the newer numbers: those read as not measured.
Judgement judgement_from(const json::object& o) {
  Judgement j;
  j.time = from_ms(o.at("time_ms").to_number<std::int64_t>());
  j.verdict = verdict_from(o.at("verdict").as_string());
  j.reason = std::string(o.at("reason").as_string());
  j.step_index = o.at("step_index").to_number<int>();
  j.weight_bp = o.at("weight_bp").to_number<std::uint32_t>();
  j.window = o.at("window").to_number<std::uint32_t>();
  j.canary = version_from(o.at("canary").as_object());
  j.stable = version_from(o.at("stable").as_object());
  j.dispersion = o.if_contains("dispersion") ? num_of(o, "dispersion") : 1;
  j.relative = test_from(o, "relative");
  j.absolute = test_from(o, "absolute");
  j.latency = test_from(o, "latency");
  j.latency_ratio = test_from(o, "latency_ratio");
  j.rank_probability = num_of(o, "rank_probability");
  if (auto const* w = o.if_contains("warmup")) j.warmup = w->is_bool() && w->as_bool();
  j.canary_breach_p = num_of(o, "canary_breach_p");
  j.stable_breach_p = num_of(o, "stable_breach_p");
  j.requests_to_pass = num_of(o, "requests_to_pass");
  auto const& t = o.at("thresholds").as_object();
  j.min_requests = u64(t, "min_requests");
  j.max_error_rate = num_of(t, "max_error_rate");
  j.max_error_rate_ratio = num_of(t, "max_error_rate_ratio");
  j.confidence = num_of(t, "confidence");
  j.compare_confidence = num_of(t, "compare_confidence");
  j.power = num_of(t, "power");
  j.compare_to_stable = t.at("compare_to_stable").as_bool();
  if (auto const* m = t.if_contains("mode"))
    j.analyze_only = m->is_string() && m->as_string() == "analyze";
  j.max_p99_seconds = num_of(t, "max_p99_seconds");
  j.max_latency_ratio = num_of(t, "max_latency_ratio");
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
      {"canary", version_json(j.canary)},
      {"stable", version_json(j.stable)},
      {"dispersion", num(j.dispersion)},
      {"relative", test_json(j.relative)},
      {"absolute", test_json(j.absolute)},
      {"latency", test_json(j.latency)},
      {"latency_ratio", test_json(j.latency_ratio)},
      {"rank_probability", num(j.rank_probability)},
      {"warmup", j.warmup},
      {"canary_breach_p", num(j.canary_breach_p)},
      {"stable_breach_p", num(j.stable_breach_p)},
      {"requests_to_pass", num(j.requests_to_pass)},
      {"thresholds", json::object{{"min_requests", j.min_requests},
                                  {"max_error_rate", num(j.max_error_rate)},
                                  {"max_error_rate_ratio", num(j.max_error_rate_ratio)},
                                  {"confidence", num(j.confidence)},
                                  {"compare_confidence", num(j.compare_confidence)},
                                  {"power", num(j.power)},
                                  {"compare_to_stable", j.compare_to_stable},
                                  {"mode", j.analyze_only ? "analyze" : "progressive"},
                                  {"max_p99_seconds", num(j.max_p99_seconds)},
                                  {"max_latency_ratio", num(j.max_latency_ratio)}}},
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
      {"holds", s.holds},
      {"evidence", evidence_json(s.evidence)},
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
  s.holds = static_cast<std::uint32_t>(u64_or(o, "holds"));
  // A status from an earlier build has no evidence: the analysis starts afresh.
  if (auto const* e = o.if_contains("evidence")) s.evidence = evidence_from(e->as_object());
  s.judge_from = from_ms(o.at("judge_from_ms").to_number<std::int64_t>());
  s.since = from_ms(o.at("since_ms").to_number<std::int64_t>());
  s.reason = std::string(o.at("reason").as_string());
  for (auto const& j : o.at("judgements").as_array())
    s.last.push_back(judgement_from(j.as_object()));
  while (s.last.size() > routing::RolloutController::kMaxJudgements) s.last.pop_front();
  return s;
}

}  // namespace gp::proxy
