#include "proxy/fleet_json.hpp"

#include <boost/json.hpp>
#include <stdexcept>

#include "proxy/rollout_json.hpp"

namespace gp::proxy {

namespace json = boost::json;

namespace {

// Names the sketch's bucket layout: a member of a build with another one is not merged.
std::string sketch_layout() {
  return "log-linear/" + std::to_string(metrics::kSketchSubBits) + "/" +
         std::to_string(metrics::kSketchTopBit);
}

// The sketch as [index, count] pairs of its non-empty buckets: a few dozen, not 737 numbers.
json::object sketch_json(const metrics::SketchCounts& c) {
  json::array buckets;
  for (std::size_t i = 0; i < c.size(); ++i)
    if (c[i] != 0) buckets.push_back(json::array{i, c[i]});
  return json::object{{"layout", sketch_layout()}, {"buckets", std::move(buckets)}};
}

// Absent (a member of an earlier build) or of another layout: that member's latencies are not
// in the fleet's sketch, everything else of its report is.
void sketch_from(const json::object& o, metrics::SketchCounts& c) {
  auto const* s = o.if_contains("latency");
  if (!s || !s->is_object() || s->as_object().if_contains("layout") == nullptr ||
      s->as_object().at("layout") != sketch_layout().c_str())
    return;
  for (auto const& pair : s->as_object().at("buckets").as_array()) {
    auto const& p = pair.as_array();
    if (p.size() != 2) throw std::invalid_argument("latency bucket is not [index, count]");
    const auto i = p[0].to_number<std::size_t>();
    if (i >= c.size()) throw std::invalid_argument("latency bucket index out of range");
    c[i] = p[1].to_number<std::uint64_t>();
  }
}

json::object totals_json(const metrics::Snapshot& s) {
  json::array buckets;
  for (auto c : s.bucket_counts) buckets.push_back(c);
  return json::object{{"requests", s.requests},           {"errors_5xx", s.errors_5xx},
                      {"buckets", std::move(buckets)},    {"sum_seconds", s.sum_seconds},
                      {"half_requests", s.half_requests}, {"half_errors_5xx", s.half_errors_5xx},
                      {"latency", sketch_json(s.latency)}};
}

metrics::Snapshot totals_from(const json::object& o) {
  metrics::Snapshot s;
  s.requests = o.at("requests").to_number<std::uint64_t>();
  s.errors_5xx = o.at("errors_5xx").to_number<std::uint64_t>();
  auto const& b = o.at("buckets").as_array();
  // Another bucket layout (a member of another build) cannot be summed bucket by bucket.
  if (b.size() != metrics::kBuckets) throw std::invalid_argument("histogram layout differs");
  for (std::size_t i = 0; i < metrics::kBuckets; ++i)
    s.bucket_counts[i] = b[i].to_number<std::uint64_t>();
  s.sum_seconds = o.at("sum_seconds").to_number<double>();
  // Absent from a member of an earlier build: its traffic then adds nothing to the A/A split.
  if (auto const* v = o.if_contains("half_requests"))
    s.half_requests = v->to_number<std::uint64_t>();
  if (auto const* v = o.if_contains("half_errors_5xx"))
    s.half_errors_5xx = v->to_number<std::uint64_t>();
  sketch_from(o, s.latency);
  return s;
}

json::object parse_object(std::string_view text) {
  auto v = json::parse(text);  // throws system_error
  if (!v.is_object()) throw std::invalid_argument("not a JSON object");
  return std::move(v.as_object());
}

}  // namespace

std::string to_text(const MemberReport& r) {
  json::object routes;
  for (auto const& [name, t] : r.totals.routes) {
    json::object o{{"stable", totals_json(t[0])}, {"canary", totals_json(t[1])}};
    if (auto h = r.held.find(name); h != r.held.end())
      o["held"] = json::object{{"seq", h->second.seq},
                               {"state", routing::to_string(h->second.state)},
                               {"weight_bp", h->second.weight_bp}};
    routes[name] = std::move(o);
  }
  return json::serialize(json::object{{"instance", r.instance},
                                      {"admin", r.admin},
                                      {"time_ms", r.time_ms},
                                      {"routes", std::move(routes)}});
}

MemberReport report_from_text(std::string_view text) {
  const json::object o = parse_object(text);
  MemberReport r;
  r.instance = std::string(o.at("instance").as_string());
  r.admin = std::string(o.at("admin").as_string());
  r.time_ms = o.at("time_ms").to_number<std::int64_t>();
  r.totals.instance = r.instance;
  for (auto const& [name, v] : o.at("routes").as_object()) {
    auto const& ro = v.as_object();
    const std::string route(name);
    r.totals.routes[route] = {totals_from(ro.at("stable").as_object()),
                              totals_from(ro.at("canary").as_object())};
    if (auto const* h = ro.if_contains("held"); h && h->is_object()) {
      auto const& ho = h->as_object();
      auto state = routing::parse_state(ho.at("state").as_string());
      if (!state) throw std::invalid_argument("unknown rollout state");
      r.held[route] = routing::HeldState{r.instance, ho.at("seq").to_number<std::uint64_t>(),
                                         *state, ho.at("weight_bp").to_number<std::uint32_t>()};
    }
  }
  return r;
}

std::string to_text(const RouteDoc& d) {
  json::object o{{"seq", d.seq},
                 {"writer", d.writer},
                 {"cause", d.cause},
                 {"time_ms", d.time_ms},
                 {"weight_bp", d.weight_bp}};
  if (d.rollout) o["rollout"] = to_json(*d.rollout);
  return json::serialize(o);
}

RouteDoc route_doc_from_text(std::string_view text) {
  const json::object o = parse_object(text);
  RouteDoc d;
  d.seq = o.at("seq").to_number<std::uint64_t>();
  d.writer = std::string(o.at("writer").as_string());
  d.cause = std::string(o.at("cause").as_string());
  d.time_ms = o.at("time_ms").to_number<std::int64_t>();
  d.weight_bp = o.at("weight_bp").to_number<std::uint32_t>();
  if (d.weight_bp > 10000) throw std::invalid_argument("weight out of range");
  if (auto const* r = o.if_contains("rollout"); r && r->is_object())
    d.rollout = status_from_json(r->as_object());
  return d;
}

}  // namespace gp::proxy
