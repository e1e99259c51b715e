#include "proxy/admin_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <openssl/crypto.h>

#include <fstream>
#include <sstream>

#include "config/percent.hpp"
#include "metrics/gzip.hpp"
#include "proxy/fleet.hpp"
#include "proxy/http/header_util.hpp"
#include "proxy/log.hpp"
#include "proxy/rollout_json.hpp"
#include "proxy/rollout_manager.hpp"
#include "proxy/server.hpp"
#include "proxy/status_page.hpp"

namespace gp::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kAdminTimeout = std::chrono::seconds(30);
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response text(http::status status, std::string body, const Request& req) {
  Response res{status, req.version()};
  res.set(http::field::server, "grayproxy-admin");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

json::object route_status(const RouteRuntime& r, const Snapshot& snap, RolloutManager& rollouts) {
  json::object o;
  o["name"] = r.config->name;
  json::object match;
  match["host"] = r.config->match.host;
  match["path_prefix"] = r.config->match.path_prefix;
  if (r.config->match.header)
    match["header"] = json::object{{"name", r.config->match.header->name},
                                   {"value", r.config->match.header->value}};
  o["match"] = std::move(match);
  o["stable"] = snap.clusters[r.stable].config->name;
  o["canary"] = r.canary >= 0 ? json::value(snap.clusters[r.canary].config->name) : json::value();
  o["weight_percent"] = json_number(r.live->weight_bp.load(std::memory_order_relaxed) / 100.0);
  o["configured_weight_percent"] = json_number(r.live->configured_weight_bp / 100.0);
  if (r.config->split) {
    auto const& s = *r.config->split;
    json::object split;
    split["hash_on"] = json::object{
        {s.hash_on.source == config::KeySource::cookie ? "cookie" : "header", s.hash_on.name}};
    split["salt"] = s.salt;
    split["fallback"] = s.fallback == config::Fallback::cookie      ? "cookie"
                        : s.fallback == config::Fallback::client_ip ? "client_ip"
                                                                    : "random";
    split["canary_unavailable"] = s.fallback_to_stable ? "fallback_to_stable" : "fail";
    o["split"] = std::move(split);
  }
  if (r.config->rollout) {
    json::array steps;
    for (auto bp : r.config->rollout->steps_bp) steps.push_back(json_number(bp / 100.0));
    o["steps_percent"] = std::move(steps);
  }
  if (r.config->retries) {
    static constexpr std::pair<std::uint8_t, const char*> kOn[] = {
        {config::kRetryConnectFailure, "connect-failure"},
        {config::kRetryReset, "reset"},
        {config::kRetryTimeout, "timeout"},
        {config::kRetry502, "502"},
        {config::kRetry503, "503"},
        {config::kRetry504, "504"}};
    json::array on;
    for (auto const& [bit, name] : kOn)
      if (r.config->retries->on & bit) on.push_back(json::value(name));
    o["retries"] = json::object{{"attempts", r.config->retries->attempts}, {"on", std::move(on)}};
  }
  if (r.canary >= 0) o["rollout"] = rollouts.route_status(r.config->name);
  return o;
}

// A cluster's endpoints with their outlier state, its policy and its circuit breakers.
json::object cluster_status(const ClusterRuntime& c) {
  using namespace std::chrono;
  json::array eps;
  for (auto const& a : c.config->endpoints) eps.push_back(json::value(a.str()));
  const auto now = steady_clock::now();
  const auto wall_now = system_clock::now();
  json::array health;
  for (auto const& h : c.health) {
    const routing::EndpointOutlier e = h->load();
    const bool ejected = routing::is_ejected(e, now);
    const auto remaining = duration_cast<milliseconds>(e.ejected_until - now);
    health.push_back(json::object{
        {"endpoint", h->address()},
        {"state", ejected ? "ejected" : "healthy"},
        {"consecutive_failures", e.consecutive_failures},
        {"times_ejected", e.times_ejected},
        {"ejected_until_unix_ms",
         ejected ? json::value(duration_cast<milliseconds>(
                                   (wall_now + duration_cast<system_clock::duration>(remaining))
                                       .time_since_epoch())
                                   .count())
                 : json::value()},
        {"ejection_remaining_ms", ejected ? remaining.count() : 0},
    });
  }
  const routing::OutlierPolicy& p = c.outlier;
  json::object outlier{
      {"configured", c.config->outlier_detection.has_value()},
      {"consecutive_failures", p.consecutive_failures},
      {"ejection_time_ms", duration_cast<milliseconds>(p.ejection_time).count()},
      {"max_ejection_time_ms", duration_cast<milliseconds>(p.max_ejection_time).count()},
      {"max_ejection_percent", p.max_ejection_percent},
      {"counts_responses", p.count_responses},
  };
  auto limit = [](std::uint32_t v) { return v ? json::value(v) : json::value(); };
  return json::object{
      {"name", c.config->name},
      {"endpoints", std::move(eps)},
      {"endpoint_health", std::move(health)},
      {"outlier_detection", std::move(outlier)},
      // Counted only under a limit: null when unlimited.
      {"active_requests",
       c.config->limits.max_active_requests ? json::value(c.state->active.load()) : json::value()},
      {"pending_requests", c.config->limits.max_pending_requests
                               ? json::value(c.state->pending.load())
                               : json::value()},
      {"limits",
       json::object{{"max_active_requests", limit(c.config->limits.max_active_requests)},
                    {"max_pending_requests", limit(c.config->limits.max_pending_requests)}}},
  };
}

std::string status_json(Server& server) {
  auto snap = server.snapshot();
  json::object root;
  root["version"] = GRAYPROXY_VERSION;
  root["draining"] = server.draining();
  root["config"] = snap->config->source;
  json::array routes;
  for (auto const& r : snap->routes) routes.push_back(route_status(r, *snap, server.rollouts()));
  root["routes"] = std::move(routes);
  json::array clusters;
  for (auto const& c : snap->clusters) clusters.push_back(cluster_status(c));
  root["clusters"] = std::move(clusters);
  if (Fleet* fleet = server.fleet()) root["fleet"] = fleet->status();
  return json::serialize(root) + "\n";
}

Response json_response(http::status status, const json::value& v, const Request& req) {
  Response res = text(status, json::serialize(v) + "\n", req);
  res.set(http::field::content_type, "application/json");
  return res;
}

// The weight of POST /routes/NAME/weight: {"weight": 12.5} (number or string) or a bare
// percentage, with at most two decimals.
std::pair<std::optional<std::uint32_t>, std::string> parse_weight(std::string_view body) {
  std::string text(trim(body));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!text.empty() && text.front() == '{') {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    const json::value* w = (!ec && v.is_object()) ? v.as_object().if_contains("weight") : nullptr;
    if (!w) return {std::nullopt, "expected {\"weight\": PERCENT}"};
    if (w->is_string()) {
      text = std::string(w->as_string());
    } else if (w->is_number()) {
      std::ostringstream os;
      os.precision(15);
      os << w->to_number<double>();
      text = os.str();
    } else {
      return {std::nullopt, "weight must be a number"};
    }
  }
  std::string error;
  auto bp = config::parse_percent_bp(text, error);
  if (!bp) return {std::nullopt, "weight: " + error};
  return {bp, ""};
}

// Constant-time comparison of the bearer token, so timing does not leak a prefix.
bool authorized(const std::string& token, const Request& req) {
  if (token.empty()) return true;
  std::string_view auth = req[http::field::authorization];
  if (!istarts_with(auth, "Bearer ")) return false;
  auto given = trim(auth.substr(7));
  return given.size() == token.size() &&
         CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Writes are POST only and, with a token configured, need it: the refusal, or nothing.
std::optional<Response> refuse_write(const std::string& token, const Request& req) {
  if (req.method() != http::verb::post) {
    auto res = text(http::status::method_not_allowed, "method not allowed\n", req);
    res.set(http::field::allow, "POST");
    return res;
  }
  if (!authorized(token, req)) {
    auto res =
        json_response(http::status::unauthorized, json::object{{"error", "unauthorized"}}, req);
    res.set(http::field::www_authenticate, "Bearer");
    return res;
  }
  return std::nullopt;
}

Response handle(Server& server, const std::string& token, const History& history,
                const Request& req) {
  std::string_view target = req.target();
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;

  auto only_get = [&]() {
    auto res = text(http::status::method_not_allowed, "method not allowed\n", req);
    res.set(http::field::allow, "GET, HEAD");
    return res;
  };

  if (target == "/reload") {
    if (auto refused = refuse_write(token, req)) return std::move(*refused);
    auto result = server.reload();
    if (result.ok) return json_response(http::status::ok, json::object{{"result", "success"}}, req);
    return json_response(http::status::bad_request,
                         json::object{{"result", "failure"}, {"error", result.error}}, req);
  }
  // POST /routes/NAME/weight and POST /routes/NAME/rollout/{pause,resume,promote,abort}
  if (target.starts_with("/routes/")) {
    std::string_view rest = target.substr(8);
    const auto slash = rest.find('/');
    const std::string route(rest.substr(0, slash));
    const std::string_view what = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    std::string action;
    if (what == "weight")
      action = "weight";
    else if (what.starts_with("rollout/"))
      action = std::string(what.substr(8));
    if (route.empty() || action.empty() ||
        (action != "weight" && action != "pause" && action != "resume" && action != "promote" &&
         action != "abort"))
      return text(http::status::not_found, "not found\n", req);
    if (auto refused = refuse_write(token, req)) return std::move(*refused);
    std::optional<std::uint32_t> weight_bp;
    if (action == "weight") {
      auto parsed = parse_weight(req.body());
      if (!parsed.first)
        return json_response(http::status::bad_request, json::object{{"error", parsed.second}},
                             req);
      weight_bp = parsed.first;
    }
    auto result = server.rollouts().act(route, action, weight_bp);
    log::info("admin action")
        .kv("route", route)
        .kv("action", action)
        .kv("status", result.http_status);
    return json_response(static_cast<http::status>(result.http_status), result.body, req);
  }
  if (target == "/metrics") {
    if (!get) return only_get();
    std::string body = server.metrics().serialize();
    const bool gzip = metrics::accepts_gzip(req[http::field::accept_encoding]);
    Response res = text(http::status::ok, gzip ? metrics::gzip(body) : std::move(body), req);
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    if (gzip) res.set(http::field::content_encoding, "gzip");
    res.set(http::field::vary, "Accept-Encoding");
    return res;
  }
  if (target == "/healthz") {
    if (!get) return only_get();
    return text(http::status::ok, "ok\n", req);
  }
  if (target == "/ready") {
    if (!get) return only_get();
    return server.draining() ? text(http::status::service_unavailable, "draining\n", req)
                             : text(http::status::ok, "ready\n", req);
  }
  if (target == "/status") {
    if (!get) return only_get();
    Response res = text(http::status::ok, status_json(server), req);
    res.set(http::field::content_type, "application/json");
    return res;
  }
  if (target == "/history") {
    if (!get) return only_get();
    Response res = json_response(http::status::ok, history.to_json(unix_ms()), req);
    res.set(http::field::cache_control, "no-store");
    return res;
  }
  if (target == "/" || target == "/index.html") {
    if (!get) return only_get();
    Response res = text(http::status::ok, std::string(status_page_html()), req);
    res.set(http::field::content_type, "text/html; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    res.set("Content-Security-Policy", status_page_csp());
    res.set("X-Content-Type-Options", "nosniff");
    return res;
  }
  return text(http::status::not_found, "not found\n", req);
}

// One history sample per second at most; History::tick decides which routes are due.
asio::awaitable<void> sample_history(Server& server, History& history) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    if (auto snap = server.snapshot())
      history.tick(*snap, server.metrics(), History::Clock::now(), unix_ms());
    timer.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await timer.async_wait(use_tuple);
    if (ec) co_return;
  }
}

using WriteExecutor = asio::thread_pool::executor_type;

asio::awaitable<void> admin_session(Server& server, const std::string& token,
                                    const History& history, WriteExecutor writes,
                                    tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    stream.expires_after(kAdminTimeout);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (ec == http::error::end_of_stream) break;
    if (ec) {
      if (ec != beast::error::timeout) {
        Request dummy;
        dummy.version(11);
        dummy.keep_alive(false);
        auto res = text(http::status::bad_request, "bad request\n", dummy);
        co_await http::async_write(stream, res, use_tuple);
      }
      break;
    }
    Request req = parser.release();
    Response res;
    if (req.method() == http::verb::post) {
      auto write = [&]() -> asio::awaitable<Response> {
        co_return handle(server, token, history, req);
      };
      res = co_await asio::co_spawn(writes, write, asio::use_awaitable);
    } else {
      res = handle(server, token, history, req);
    }
    if (req.method() == http::verb::head) res.body().clear();  // keeps Content-Length
    const bool keep = res.keep_alive();
    auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
    if (wec || !keep) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> admin_accept(Server& server, const std::string& token, const History& history,
                                   WriteExecutor writes, tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (ec) {
      if (!acceptor.is_open()) co_return;
      continue;
    }
    asio::co_spawn(acceptor.get_executor(),
                   admin_session(server, token, history, writes, std::move(socket)),
                   asio::detached);
  }
}

}  // namespace

AdminServer::AdminServer(Server& server, const config::Admin& config)
    : server_(server), acceptor_(ioc_) {
  if (!config.token_file.empty()) {
    std::ifstream in(config.token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) throw config::Error(config.token_file + ": cannot read the admin token");
    token_ = std::string(trim(ss.str()));
    while (!token_.empty() && (token_.back() == '\n' || token_.back() == '\r')) token_.pop_back();
    if (token_.empty()) throw config::Error(config.token_file + ": the admin token is empty");
  }
  auto results =
      tcp::resolver(ioc_).resolve(config.address.host, std::to_string(config.address.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service);
  auto endpoint = results.begin()->endpoint();
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  asio::co_spawn(ioc_, admin_accept(server_, token_, history_, writes_.get_executor(), acceptor_),
                 asio::detached);
  asio::co_spawn(ioc_, sample_history(server_, history_), asio::detached);
  thread_ = std::thread([this] { ioc_.run(); });
}

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  ioc_.stop();
  thread_.join();
  writes_.join();  // a write in progress finishes (at most the fleet's bounded wait)
}

}  // namespace gp::proxy
