#include "proxy/session.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/container/small_vector.hpp>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

#include "proxy/access_log.hpp"
#include "proxy/cluster_state.hpp"
#include "proxy/error_response.hpp"
#include "proxy/forwarding.hpp"
#include "proxy/http_checks.hpp"
#include "proxy/log.hpp"
#include "proxy/relay.hpp"
#include "proxy/server.hpp"
#include "proxy/worker.hpp"

namespace gp::proxy {

namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using metrics::UpstreamError;
using routing::AttemptResult;

namespace {

// More header fields than this is an abuse of the parser and of the upstream (as HAProxy's
// tune.http.maxhdr and Envoy's max_headers_count, both 100 by default).
constexpr std::ptrdiff_t kMaxHeaderFields = 100;

metrics::Version metric_version(config::Version v) {
  return v == config::Version::canary ? metrics::Version::canary : metrics::Version::stable;
}

// Everything a request needs to know about where it goes.
struct Target {
  const RouteRuntime* route = nullptr;
  metrics::RouteStats* stats = nullptr;
  config::Version version = config::Version::stable;
  int cluster = -1;
};

}  // namespace

// Everything one request carries from its head to the upstream exchange.
struct RequestState {
  std::shared_ptr<const Snapshot> snap;
  std::optional<http::request_parser<http::buffer_body>> req_p;
  Target target;
  Clock::time_point start;
  std::string new_cookie;
  const RouteRuntime* route = nullptr;
  unsigned client_version = 11;
  bool client_keep_alive = false;
  bool expect_continue = false;
  bool can_keep_alive = false;
  bool retryable = false;
  http::verb method = http::verb::get;
  bool fall_back = false;  // forward() found the canary unavailable: stable serves it
};

// Down is the client stream: Stream (plain TCP) or TlsStream.
template <class Down>
class Session final : public SessionBase {
 public:
  static constexpr bool kTls = std::is_same_v<Down, TlsStream>;

  Session(Worker& w, Down down, std::string listener, std::chrono::milliseconds handshake_timeout)
      : w_(w),
        down_(std::move(down)),
        listener_(std::move(listener)),
        handshake_timeout_(handshake_timeout) {
    beast::error_code ec;
    auto ep = lowest().socket().remote_endpoint(ec);
    peer_ip_ = ec ? std::string() : ep.address().to_string();  // empty: split falls back to random
    head_deadline_->stream = &lowest();
    w_.add_session(this);
    w_.metrics().connection_opened(w_.index());
  }
  ~Session() override {
    head_deadline_->stream = nullptr;  // a wait completing later must not touch the socket
    w_.buffers().give_read(std::move(buffer_));
    w_.remove_session(this);
    w_.metrics().connection_closed(w_.index());
  }

  Task<void> run() {
    if constexpr (kTls) {
      lowest().expires_after(handshake_timeout_);
      auto [ec] = co_await down_.async_handshake(asio::ssl::stream_base::server, use_task);
      if (ec) {
        w_.server().tls_handshake_failed(listener_, ec);
        co_return;
      }
    }
    bool first = true;
    for (;;) {
      if (buffer_.size() == 0) {
        // Waiting for the next request holds no buffer: it goes back to the worker.
        w_.buffers().give_read(std::move(buffer_));
        const auto& to = w_.snapshot()->config->timeouts;
        if (co_await wait_request(first ? to.request_header : to.idle)) break;
      }
      if (!co_await serve_one()) break;
      first = false;
      if (w_.draining()) break;
    }
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::seconds(1));  // close_notify, briefly
      co_await down_.async_shutdown(use_task);
    }
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest().socket().close(ec);
  }

  // Drain: a connection waiting for its next request is closed now; one in the middle of
  // a request finishes it and then closes (Connection: close).
  void cancel_if_idle() override {
    if (idle_) lowest().socket().cancel();
  }

 private:
  // Serves one request; returns whether the connection stays open for another.
  Task<bool> serve_one() {
    RequestState st;
    cur_ = {};
    st.snap = w_.snapshot();  // kept for the whole request
    auto& snap = st.snap;
    const config::Config& cfg = *snap->config;
    const auto& to = cfg.timeouts;

    const auto start = st.start = Clock::now();
    Target& target = st.target;

    auto& req_p = st.req_p;
    req_p.emplace();
    req_p->header_limit(cfg.limits.max_request_header_bytes);
    req_p->body_limit(cfg.limits.max_request_body_bytes
                          ? cfg.limits.max_request_body_bytes
                          : std::numeric_limits<std::uint64_t>::max());
    {
      const auto deadline = start + to.request_header;  // one deadline for the whole head
      auto ec = co_await read_head(*req_p, cfg.limits.max_request_header_bytes,
                                   cfg.limits.max_request_line_bytes, deadline);
      if (ec) {
        using R = metrics::RejectReason;
        if (ec == HeadError::request_line_too_long)
          co_return co_await reject(target, http::status::uri_too_long, "request line too long",
                                    R::request_line_too_long, start, 11);
        if (ec == HeadError::invalid_head)
          co_return co_await reject(target, http::status::bad_request, raw_reject_, R::invalid_head,
                                    start, 11);
        if (ec == HeadError::unsupported_version)
          co_return co_await reject(target, http::status::http_version_not_supported,
                                    "unsupported HTTP version", R::unsupported, start, 11);
        if (ec == http::error::header_limit)
          co_return co_await reject(target, http::status::request_header_fields_too_large,
                                    "request head too large", R::head_too_large, start, 11);
        if (ec == beast::error::timeout)
          co_return co_await reject(target, http::status::request_timeout, "request head timeout",
                                    R::head_timeout, start, 11);
        if (ec == http::error::body_limit)
          co_return co_await reject(target, http::status::payload_too_large,
                                    "request body too large", R::body_too_large, start, 11);
        if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
            ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
          co_return false;
        const std::string why = ec.message();
        co_return co_await reject(target, http::status::bad_request, why, R::invalid_head, start,
                                  11);
      }
    }

    auto& req = req_p->get();
    if (w_.access_log_enabled()) {  // copied now: forwarding rewrites the head
      cur_.method = req.method_string();
      const std::string_view t = req.target();
      cur_.path = t.substr(0, t.find('?'));
    }
    const unsigned client_version = req.version() == 10 ? 10 : 11;
    const bool has_body = req_p->chunked() || req_p->content_length().value_or(0) > 0;
    // After an early error the unread body would be parsed as the next request: close.
    const bool can_keep_alive = req.keep_alive() && !has_body;

    if (auto verdict = check_request_head(req.base()); !verdict.ok()) {
      const auto reason = verdict.status == http::status::bad_request
                              ? metrics::RejectReason::invalid_head
                              : metrics::RejectReason::unsupported;
      co_return co_await reject(target, verdict.status, verdict.reason, reason, start,
                                client_version);
    }

    const int route_index = snap->table->match(req[http::field::host], req.target(), req.base());
    if (route_index < 0)
      co_return co_await reply_error(target, http::status::not_found, "no route", start,
                                     can_keep_alive, client_version);
    const RouteRuntime& route = snap->routes[route_index];
    st.route = &route;
    target.route = &route;
    target.stats = route.stats;

    std::string& new_cookie = st.new_cookie;
    if (route.canary >= 0 && route.splitter) {
      routing::SplitInput in{req.base(), peer_ip_};
      auto d = route.splitter->decide(in, route.live->weight_bp.load(std::memory_order_relaxed),
                                      new_cookie, w_.rng());
      target.version = d.version;
      cur_.bucket = d.bucket;
    }
    target.cluster = target.version == config::Version::canary ? route.canary : route.stable;

    // Rewrite the head for the upstream: hop-by-hop fields out, one framing header back in.
    const bool client_keep_alive = req.keep_alive();
    const bool expect_continue = req.count(http::field::expect) > 0;
    const auto method = req.method();
    const bool body_chunked = req_p->chunked();
    const auto content_length = req_p->content_length();
    strip_hop_by_hop(req);
    req.erase(http::field::expect);
    add_forwarded(req, peer_ip_, kTls);
    req.set("x-gray-version", config::to_string(target.version));
    req.version(11);
    if (body_chunked)
      req.chunked(true);
    else if (content_length)
      req.content_length(*content_length);

    st.client_version = client_version;
    st.client_keep_alive = client_keep_alive;
    st.expect_continue = expect_continue;
    st.can_keep_alive = can_keep_alive;
    st.retryable = !has_body && is_idempotent(method);
    st.method = method;
    co_return co_await dispatch(st);
  }

  // Forwards with the target cluster's stream type. A canary found unavailable under
  // `canary_unavailable: fallback_to_stable` goes once more, to stable.
  Task<bool> dispatch(RequestState& st) {
    for (;;) {
      bool keep = false;
      if (st.snap->clusters[st.target.cluster].tls)
        keep = co_await forward<TlsStream>(st);
      else
        keep = co_await forward<Stream>(st);
      if (!st.fall_back) co_return keep;
      st.fall_back = false;
      st.target.version = config::Version::stable;
      st.target.cluster = st.route->stable;
      st.req_p->get().set("x-gray-version", config::to_string(config::Version::stable));
    }
  }

  // The upstream exchange: connect or reuse, send the request, read the response head
  // (retrying per the route's policy, and once on a stale pooled connection), stream the
  // response back.
  template <class Up>
  Task<bool> forward(RequestState& st) {
    auto& snap = st.snap;
    const config::Config& cfg = *snap->config;
    const auto& to = cfg.timeouts;
    auto& req_p = st.req_p;
    auto& req = req_p->get();
    Target& target = st.target;
    const auto start = st.start;
    const RouteRuntime& route = *st.route;
    const std::string& new_cookie = st.new_cookie;
    const unsigned client_version = st.client_version;
    const bool client_keep_alive = st.client_keep_alive;
    const bool expect_continue = st.expect_continue;
    const bool can_keep_alive = st.can_keep_alive;
    const auto method = st.method;
    const bool retryable = st.retryable;
    const ClusterRuntime& cl = snap->clusters[target.cluster];

    // Circuit breaker: the request holds an active slot until its response is relayed.
    BreakerSlot active_slot;
    if (!ClusterState::take(cl.state->active, cl.config->limits.max_active_requests, active_slot))
      co_return co_await overflow(target, "cluster overflow (max_active_requests)", start,
                                  can_keep_alive, client_version);

    // Without a policy on the route, a failed connection moves on to each other endpoint.
    const config::Retries policy =
        route.config->retries ? *route.config->retries
                              : config::Retries{static_cast<std::uint32_t>(cl.endpoints.size() - 1),
                                                config::kRetryConnectFailure};
    std::uint32_t retries_left = policy.attempts;
    // Whether the request may be sent once more after `condition` (nothing relayed yet).
    auto may_retry = [&](std::uint8_t condition, bool sent) {
      return (policy.on & condition) && retries_left > 0 && (!sent || retryable);
    };
    auto take_retry = [&] {
      --retries_left;
      stats_of(target).retry(w_.index(), metric_version(target.version));
    };
    boost::container::small_vector<std::size_t, 4> tried;  // endpoint indexes, this request
    bool stale_retried = false;
    bool sent_any = false;  // some attempt sent request bytes (a fallback would repeat them)
    std::optional<Upstream> last_failure;  // answers when no endpoint is left to try

    Upstream up;
    std::optional<http::response_parser<http::buffer_body>> res_p;
    bool request_body_started = false;
    for (;;) {
      up = co_await acquire(*snap, target.cluster, !stale_retried, tried);
      cur_.upstream = up.conn ? up.endpoint : tcp::endpoint{};
      if (!up.conn) {
        if (up.fail_reason == UpstreamError::overflow)
          co_return co_await overflow(target, "cluster overflow (max_pending_requests)", start,
                                      can_keep_alive, client_version);
        if (up.attempted) {
          tried.push_back(up.index);
          upstream_error(target, up.fail_reason);
          if (may_retry(config::kRetryConnectFailure, false)) {
            take_retry();
            last_failure = std::move(up);
            continue;
          }
        } else if (last_failure) {
          up = std::move(*last_failure);  // every endpoint tried: the last failure answers
        } else {
          upstream_error(target, up.fail_reason);
        }
        const bool unavailable = up.fail_status == http::status::service_unavailable;
        if (!sent_any && target.version == config::Version::canary && route.config->split &&
            route.config->split->fallback_to_stable) {
          // The rollout judge must still see the canary fail: it counts as a canary request
          // with the status the client would have had; stable's response counts as stable's.
          record_metrics(target, static_cast<unsigned>(up.fail_status), start);
          log::warn("canary unavailable, falling back to stable")
              .kv("route", route.config->name)
              .kv("reason", unavailable ? "no healthy endpoint" : "upstream connect failed");
          st.fall_back = true;
          co_return false;
        }
        // Named, not a conditional in the co_await operand (the g++ 12 bug noted in acquire).
        const std::string_view why =
            unavailable ? "no healthy endpoint" : "upstream connect failed";
        co_return co_await reply_error(target, up.fail_status, why, start, can_keep_alive,
                                       client_version);
      }
      Up& us = up.conn->template as<Up>();

      // Request head, then (after 100 Continue if the client waits for it) the body.
      http::serializer<true, http::buffer_body> sr{req};
      beast::error_code ec;
      RelaySide side = RelaySide::none;
      beast::get_lowest_layer(us).expires_after(to.upstream_response);
      sent_any = true;
      if (req_p->is_done()) {
        req.body().data = nullptr;
        req.body().size = 0;
        req.body().more = false;
        auto [wec, n] = co_await http::async_write(us, sr, use_task);
        ec = wec;
        side = RelaySide::write;
      } else {
        if (buffer_.size() == 0 || expect_continue) {  // else: head and first body piece together
          auto [wec, n] = co_await http::async_write_header(us, sr, use_task);
          ec = wec;
          side = RelaySide::write;
        }
        if (!ec) {
          if (expect_continue && client_version == 11) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            lowest().expires_after(to.idle);
            auto [cec, cn] = co_await asio::async_write(
                down_, asio::buffer(kContinue.data(), kContinue.size()), use_task);
            if (cec) co_return false;
          }
          request_body_started = true;
          RelayBuffer relay(w_);
          auto r = co_await relay_body(down_, buffer_, *req_p, us, sr, relay.p.get(),
                                       BufferPool::kRelayBytes, to.idle, to.upstream_response,
                                       cur_.bytes_in);
          ec = r.first;
          side = r.second;
          if (ec && side == RelaySide::read && is_parse_error(ec))
            co_return co_await reply_bad_body(target, ec, start, client_version);
          if (ec && side == RelaySide::read) {
            // The client's body broke off: the upstream saw a truncated request; drop both.
            log::info("client body aborted").kv("peer", peer_ip_).kv("error", ec.message());
            record(target, 499, start);
            co_return false;
          }
        }
      }

      if (!ec) {
        // Response head; interim 1xx responses (other than 101) are consumed here.
        for (;;) {
          res_p.emplace();
          res_p->header_limit(cfg.limits.max_response_header_bytes);
          res_p->body_limit(std::numeric_limits<std::uint64_t>::max());
          if (method == http::verb::head) res_p->skip(true);
          beast::get_lowest_layer(us).expires_after(to.upstream_response);
          auto rec = co_await read_response_head(us, up.conn->buffer, *res_p,
                                                 cfg.limits.max_response_header_bytes, up.endpoint);
          ec = rec;
          side = RelaySide::read;
          if (ec) break;
          const unsigned code = res_p->get().result_int();
          if (code < 100 || code >= 200 || code == 101) break;
        }
      }
      if (!ec) {
        const unsigned code = res_p->get().result_int();
        report(cl, up.index, AttemptResult::response, code);
        const std::uint8_t condition = code == 502   ? config::kRetry502
                                       : code == 503 ? config::kRetry503
                                       : code == 504 ? config::kRetry504
                                                     : 0;
        if (condition && !request_body_started && may_retry(condition, true)) {
          take_retry();
          tried.push_back(up.index);
          log::info("retrying upstream request")
              .kv("route", route.config->name)
              .kv("endpoint", up.endpoint)
              .kv("status", code);
          // Its body is not relayed: a complete bodiless answer keeps the connection, any
          // other closes it (the destructor of up.conn).
          if (res_p->is_done() && res_p->get().keep_alive() && w_.snapshot().get() == snap.get())
            w_.pool().give_back(up.endpoint, std::move(up.conn));
          continue;
        }
        break;
      }

      // Nothing came back. A reused connection the upstream had closed is retried once on
      // a fresh connection when the request can be sent twice (not a retry of the policy,
      // and no sign of the endpoint's health).
      const bool stale = ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                         ec == asio::error::broken_pipe || ec == asio::error::eof;
      if (up.reused && stale && retryable && !request_body_started && !stale_retried &&
          (up.conn->buffer.size() == 0)) {
        log::debug("retrying on a fresh upstream connection").kv("error", ec.message());
        stale_retried = true;
        continue;
      }
      tried.push_back(up.index);
      if (ec == beast::error::timeout) {
        report(cl, up.index, AttemptResult::timeout);
        upstream_error(target, UpstreamError::timeout);
        if (!request_body_started && may_retry(config::kRetryTimeout, true)) {
          take_retry();
          log::info("retrying upstream request")
              .kv("route", route.config->name)
              .kv("endpoint", up.endpoint)
              .kv("error", "timeout");
          continue;
        }
        co_return co_await reply_error(target, http::status::gateway_timeout,
                                       "upstream response timeout", start, can_keep_alive,
                                       client_version);
      }
      const bool protocol = is_parse_error(ec) || ec.category() == head_error_category();
      report(cl, up.index, AttemptResult::reset);
      upstream_error(target, protocol ? UpstreamError::protocol : UpstreamError::reset);
      log::warn("upstream failed before response")
          .kv("endpoint", up.endpoint)
          .kv("error", ec.message());
      if (!protocol && !request_body_started && may_retry(config::kRetryReset, true)) {
        take_retry();
        log::info("retrying upstream request")
            .kv("route", route.config->name)
            .kv("endpoint", up.endpoint)
            .kv("error", "reset");
        continue;
      }
      co_return co_await reply_error(target, http::status::bad_gateway,
                                     protocol ? "invalid upstream response" : "upstream reset",
                                     start, can_keep_alive && !request_body_started,
                                     client_version);
    }

    // Response head for the client.
    auto& res = res_p->get();
    const unsigned status = res.result_int();
    const bool upstream_keep_alive = res.keep_alive();
    const bool no_body = method == http::verb::head || status == 204 || status == 304 ||
                         (status >= 100 && status < 200);
    const bool res_chunked = res_p->chunked();
    const auto res_length = res_p->content_length();
    bool keep_alive = client_keep_alive && !w_.draining();
    strip_hop_by_hop(res);
    if (no_body) {
      if (res_length && status != 204) res.content_length(*res_length);
    } else if (res_length && !res_chunked) {
      res.content_length(*res_length);
    } else if (client_version == 11) {
      res.chunked(true);
    } else {
      keep_alive = false;  // HTTP/1.0 client: the body ends when the connection does
    }
    if (route.splitter && route.config->split->expose_version)
      res.set("x-gray-version", config::to_string(target.version));
    if (!new_cookie.empty())
      res.insert(http::field::set_cookie, route.splitter->set_cookie_value(new_cookie));
    res.version(client_version);
    res.keep_alive(keep_alive);

    http::serializer<false, http::buffer_body> rsr{res};
    lowest().expires_after(to.idle);
    beast::error_code ec;
    RelaySide side = RelaySide::none;
    if (res_p->is_done()) {
      res.body().data = nullptr;
      res.body().size = 0;
      res.body().more = false;
      auto [wec, n] = co_await http::async_write(down_, rsr, use_task);
      ec = wec;
      side = RelaySide::write;
    } else {
      // With body bytes already received, the head waits for them and both leave in one
      // write; otherwise the head goes now, so a slow or streaming body does not hold it.
      if (up.conn->buffer.size() == 0) {
        auto [wec, n] = co_await http::async_write_header(down_, rsr, use_task);
        ec = wec;
        side = RelaySide::write;
      }
      if (!ec) {
        RelayBuffer relay(w_);
        auto r = co_await relay_body(up.conn->template as<Up>(), up.conn->buffer, *res_p, down_,
                                     rsr, relay.p.get(), BufferPool::kRelayBytes,
                                     to.upstream_response, to.idle, cur_.bytes_out);
        ec = r.first;
        side = r.second;
      }
    }
    if (ec && side == RelaySide::read && is_parse_error(ec) && !rsr.is_header_done()) {
      // Nothing reached the client yet: it can still be told (502, as for a bad head).
      upstream_error(target, UpstreamError::protocol);
      log::warn("invalid upstream response body")
          .kv("endpoint", up.endpoint)
          .kv("error", ec.message());
      co_return co_await reply_error(target, http::status::bad_gateway, "invalid upstream response",
                                     start, false, client_version);
    }
    record(target, status, start);
    if (ec) {
      if (side == RelaySide::read) {
        upstream_error(target, ec == beast::error::timeout ? UpstreamError::timeout
                               : is_parse_error(ec)        ? UpstreamError::protocol
                                                           : UpstreamError::reset);
        log::warn("upstream failed during response body")
            .kv("endpoint", up.endpoint)
            .kv("error", ec.message());
      }
      co_return false;  // the client cannot tell a truncated body from a whole one otherwise
    }
    // A reload during the request may have removed the endpoint: only a connection made
    // under the current configuration goes back to the pool.
    if (upstream_keep_alive && res_p->is_done() && w_.snapshot().get() == snap.get())
      w_.pool().give_back(up.endpoint, std::move(up.conn));
    co_return keep_alive;
  }

  // Waits for the first bytes of the next request into a small buffer of the session's
  // own (a socket wait without a read costs an epoll_ctl per request in Asio), then moves
  // them into a read buffer from the worker's pool.
  Task<beast::error_code> wait_request(std::chrono::milliseconds timeout) {
    idle_ = true;
    lowest().expires_after(timeout);
    auto [ec, n] = co_await down_.async_read_some(asio::buffer(first_bytes_), use_task);
    idle_ = false;
    if (ec) co_return ec;
    buffer_ = w_.buffers().take_read();
    auto dst = buffer_.prepare(n);
    std::memcpy(dst.data(), first_bytes_.data(), n);
    buffer_.commit(n);
    co_return ec;
  }

  // A relay buffer from the worker's pool, returned when the body has streamed.
  struct RelayBuffer {
    Worker& w;
    std::unique_ptr<char[]> p;
    explicit RelayBuffer(Worker& worker) : w(worker), p(worker.buffers().take_relay()) {}
    ~RelayBuffer() { w.buffers().give_relay(std::move(p)); }
    RelayBuffer(const RelayBuffer&) = delete;
    RelayBuffer& operator=(const RelayBuffer&) = delete;
  };

  Task<bool> reply_error(Target const& t, http::status status, std::string_view why,
                         Clock::time_point start, bool keep_alive, unsigned version) {
    record(t, static_cast<unsigned>(status), start);
    log::warn("request rejected")
        .kv("status", static_cast<unsigned>(status))
        .kv("reason", why)
        .kv("peer", peer_ip_)
        .kv("route", t.route ? t.route->config->name : std::string("none"));
    auto res = make_error_response(status, why, keep_alive && !w_.draining(), version);
    lowest().expires_after(w_.snapshot()->config->timeouts.idle);
    auto [ec, n] = co_await http::async_write(down_, res, use_task);
    co_return !ec && keep_alive && !w_.draining();
  }

  // A request refused for what the client sent: counted by reason, answered, and the
  // connection closed (nothing after it is read).
  Task<bool> reject(Target const& t, http::status status, std::string_view why,
                    metrics::RejectReason reason, Clock::time_point start, unsigned version) {
    w_.metrics().request_rejected(reason);
    co_return co_await reply_error(t, status, why, start, false, version);
  }

  // The request's metrics only (no access log line): a canary attempt that stable served.
  void record_metrics(Target const& t, unsigned status, Clock::time_point start) {
    stats_of(t).record(w_.index(), metric_version(t.version), status, Clock::now() - start);
  }

  void record(Target const& t, unsigned status, Clock::time_point start) {
    const auto elapsed = Clock::now() - start;
    stats_of(t).record(w_.index(), metric_version(t.version), status, elapsed);
    if (w_.access_log_enabled()) {
      const std::string upstream =
          cur_.upstream.port()
              ? cur_.upstream.address().to_string() + ":" + std::to_string(cur_.upstream.port())
              : std::string();
      AccessEntry e;
      e.time = std::chrono::system_clock::now();
      e.route = t.route ? std::string_view(t.route->config->name) : std::string_view("none");
      e.version = config::to_string(t.version);
      e.method = cur_.method.empty() ? std::string_view("-") : std::string_view(cur_.method);
      e.path = cur_.path.empty() ? std::string_view("-") : std::string_view(cur_.path);
      e.status = status;
      e.duration = elapsed;
      e.upstream = upstream;
      e.bytes_in = cur_.bytes_in;
      e.bytes_out = cur_.bytes_out;
      e.bucket = cur_.bucket;
      e.peer = peer_ip_;
      w_.access(e);
    }
  }

  // What the access log says of the request in progress.
  struct Current {
    std::string method;
    std::string path;
    tcp::endpoint upstream;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint32_t bucket = 10000;
  };
  Current cur_;

  // The stats of the request's route; route "none" before one matched.
  metrics::RouteStats& stats_of(Target const& t) {
    return t.stats ? *t.stats : *w_.snapshot()->unmatched;
  }

  void upstream_error(Target const& t, UpstreamError reason) {
    stats_of(t).upstream_error(w_.index(), metric_version(t.version), reason);
  }

  // Reads a request head into the parser. Beast applies header_limit to each put() on
  // what is still unparsed, so a head arriving in several reads could exceed it; the
  // limit is enforced here on the bytes of the whole head. Beast consumes nothing until
  // the whole head is buffered, so the buffer starts with the request line until then:
  // its length is checked as it arrives, and the raw head as a whole once it is complete.
  Task<beast::error_code> read_head(http::request_parser<http::buffer_body>& p, std::size_t limit,
                                    std::size_t line_limit, Clock::time_point deadline) {
    // The deadline's timer is armed only when a read is needed: most heads arrive whole
    // with the connection's first bytes and cost no timer operation.
    struct Disarm {
      Session* s;
      bool armed = false;
      ~Disarm() {
        if (armed) s->disarm_head_deadline();
      }
    } disarm{this};
    std::size_t consumed = 0;
    for (;;) {
      if (buffer_.size() > 0) {
        char* data = static_cast<char*>(buffer_.data().data());
        const std::string_view received(data, buffer_.size());
        if (consumed == 0) {
          if (auto ec = precheck_request_line(data, buffer_.size(), line_limit)) co_return ec;
        }
        beast::error_code ec;
        const std::size_t n = p.put(buffer_.data(), ec);
        if (!ec && p.is_header_done() && consumed == 0) {
          if (auto v = check_raw_head(received.substr(0, n)); !v.ok()) {
            raw_reject_ = v.reason;
            co_return HeadError::invalid_head;
          }
        }
        buffer_.consume(n);
        consumed += n;
        if (!ec && p.is_header_done()) {
          if (std::distance(p.get().begin(), p.get().end()) > kMaxHeaderFields)
            co_return http::error::header_limit;
          co_return beast::error_code{};
        }
        if (ec && ec != http::error::need_more) co_return ec;
      }
      if (consumed + buffer_.size() >= limit) co_return http::error::header_limit;
      if (!disarm.armed) {
        arm_head_deadline(deadline);
        disarm.armed = true;
      }
      auto [ec, n] = co_await down_.async_read_some(
          buffer_.prepare(std::min<std::size_t>(limit - consumed - buffer_.size(), 16384)),
          use_task);
      if (ec) {
        if (head_deadline_->fired) co_return beast::error::timeout;
        if (ec == asio::error::eof)
          co_return consumed + buffer_.size() == 0 ? http::error::end_of_stream
                                                   : http::error::partial_message;
        co_return ec;
      }
      buffer_.commit(n);
    }
  }

  // Reads an upstream response head like read_head (the same raw checks), then checks its
  // framing. A rejected head is logged with its reason and reported as HeadError::
  // invalid_response (a protocol error: 502, the connection is not reused). Errors
  // otherwise as http::async_read_header's.
  template <class Up>
  Task<beast::error_code> read_response_head(Up& us, beast::flat_buffer& buffer,
                                             http::response_parser<http::buffer_body>& p,
                                             std::size_t limit, const tcp::endpoint& endpoint) {
    const char* reason = nullptr;
    for (;;) {
      if (buffer.size() > 0) {
        const std::string_view received(static_cast<const char*>(buffer.data().data()),
                                        buffer.size());
        beast::error_code ec;
        const std::size_t n = p.put(buffer.data(), ec);
        if (!ec && p.is_header_done()) {
          auto v = check_raw_head(received.substr(0, n));
          if (v.ok()) v = check_response_head(p.get().base());
          buffer.consume(n);
          if (v.ok()) co_return beast::error_code{};
          reason = v.reason;
          break;
        }
        buffer.consume(n);
        if (ec && ec != http::error::need_more) co_return ec;
      }
      if (buffer.size() >= limit) co_return http::error::header_limit;
      auto [ec, n] = co_await us.async_read_some(
          buffer.prepare(std::min<std::size_t>(limit - buffer.size(), 16384)), use_task);
      if (ec) {
        if (ec == asio::error::eof)
          co_return buffer.size() == 0 ? http::error::end_of_stream : http::error::partial_message;
        co_return ec;
      }
      buffer.commit(n);
    }
    log::warn("invalid upstream response head").kv("endpoint", endpoint).kv("reason", reason);
    co_return HeadError::invalid_response;
  }

  // A parse error of Beast's (malformed framing or syntax), not an I/O outcome.
  static bool is_parse_error(const beast::error_code& ec) {
    return ec.category() == http::make_error_code(http::error::bad_version).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message &&
           ec != http::error::need_more && ec != http::error::need_buffer;
  }

  // A request body that broke the framing (bad chunk size or line ending) or the body
  // limit, after its head went upstream: the upstream connection is dropped with the
  // truncated request, the client is told, and nothing after it is read.
  Task<bool> reply_bad_body(Target const& t, const beast::error_code& ec, Clock::time_point start,
                            unsigned version) {
    if (ec == http::error::body_limit)
      co_return co_await reject(t, http::status::payload_too_large, "request body too large",
                                metrics::RejectReason::body_too_large, start, version);
    const std::string why = "malformed request body: " + ec.message();
    co_return co_await reject(t, http::status::bad_request, why,
                              metrics::RejectReason::invalid_body, start, version);
  }

  // The request head deadline cancels the pending read instead of closing the socket as a
  // basic_stream expiry does, so the client can still be answered 408. The state is shared
  // with the timer's handler, which may run after the session is gone.
  struct HeadDeadline {
    Stream* stream = nullptr;
    std::uint64_t generation = 0;
    bool armed = false;
    bool fired = false;
  };
  void arm_head_deadline(Clock::time_point deadline) {
    lowest().expires_never();
    auto& d = *head_deadline_;
    d.armed = true;
    d.fired = false;
    const std::uint64_t gen = ++d.generation;
    head_timer_.expires_at(deadline);
    head_timer_.async_wait([state = head_deadline_, gen](const beast::error_code& ec) {
      if (ec || !state->armed || state->generation != gen || !state->stream) return;
      state->fired = true;
      beast::error_code ignored;
      state->stream->socket().cancel(ignored);
    });
  }
  void disarm_head_deadline() {
    head_deadline_->armed = false;
    head_timer_.cancel();
  }

  // Picks an endpoint of the cluster (round robin, skipping ejected ones and, while others
  // are left, the ones this request already tried) and returns a pooled or new connection.
  // On failure sets status/reason; `attempted` when a connection to `index` failed.
  struct Upstream {
    std::unique_ptr<UpstreamConn> conn;
    tcp::endpoint endpoint;
    std::size_t index = 0;
    bool reused = false;
    bool attempted = false;
    http::status fail_status = http::status::ok;
    UpstreamError fail_reason = UpstreamError::connect;
  };
  Task<Upstream> acquire(const Snapshot& snap, int cluster, bool allow_pooled,
                         std::span<const std::size_t> tried) {
    Upstream up;
    auto const& cl = snap.clusters[cluster];
    auto const& endpoints = cl.endpoints;
    const auto n = endpoints.size();
    const auto now = Clock::now();
    const std::uint32_t start = w_.next_rr(cluster);
    std::optional<std::size_t> pick;
    for (int pass = 0; pass < 2 && !pick; ++pass) {
      for (std::size_t i = 0; i < n && !pick; ++i) {
        const std::size_t index = (start + i) % n;
        if (cl.health[index]->ejected(now)) continue;
        if (pass == 0 && std::find(tried.begin(), tried.end(), index) != tried.end()) continue;
        pick = index;
      }
    }
    if (!pick) {
      up.fail_status = http::status::service_unavailable;
      up.fail_reason = UpstreamError::no_endpoint;
      co_return up;
    }
    const std::size_t index = *pick;
    auto const& ep = endpoints[index];
    up.index = index;
    up.endpoint = ep;
    if (allow_pooled) {
      if (auto conn = w_.pool().take(ep, cl.tls.get())) {
        up.conn = std::move(conn);
        up.reused = true;
        co_return up;
      }
    }
    // Circuit breaker: requests waiting for a new connection.
    BreakerSlot pending;
    if (!ClusterState::take(cl.state->pending, cl.config->limits.max_pending_requests, pending)) {
      up.fail_status = http::status::service_unavailable;
      up.fail_reason = UpstreamError::overflow;
      co_return up;
    }
    // A named local, not a temporary in the co_await operand: g++ 12 destroys such
    // temporaries of a conditional expression too early.
    const std::string server_name = cl.tls ? cl.server_names[index] : std::string();
    const bool verify = !cl.config->tls || cl.config->tls->verify;
    auto [ec, conn] = co_await w_.pool().connect(ep, snap.config->timeouts.upstream_connect,
                                                 cl.tls.get(), server_name, verify);
    pending.release();
    if (!ec) {
      up.conn = std::move(conn);
      co_return up;
    }
    up.attempted = true;
    up.fail_reason = ec == beast::error::timeout ? UpstreamError::timeout : UpstreamError::connect;
    up.fail_status =
        ec == beast::error::timeout ? http::status::gateway_timeout : http::status::bad_gateway;
    if (cl.tls && ec != beast::error::timeout &&
        ec.category() != asio::error::get_system_category()) {
      // The endpoint answers but its TLS is wrong (certificate, name, protocol): a
      // configuration problem, not a dead endpoint, so it is not ejected.
      log::warn("upstream TLS handshake failed")
          .kv("cluster", cl.config->name)
          .kv("endpoint", ep)
          .kv("error", ec.message());
      up.fail_reason = UpstreamError::connect;
      up.fail_status = http::status::bad_gateway;
      co_return up;
    }
    log::warn("upstream connect failed")
        .kv("cluster", cl.config->name)
        .kv("endpoint", ep)
        .kv("error", ec.message());
    report(cl, index, AttemptResult::connect_failure);
    co_return up;
  }

  // Outlier detection: one attempt's outcome on an endpoint; an ejection is logged.
  void report(const ClusterRuntime& cl, std::size_t index, AttemptResult result,
              unsigned status = 0) {
    const auto now = Clock::now();
    if (!cl.state->report(cl.outlier, cl.health, index, result, status, now)) return;
    const routing::EndpointOutlier e = cl.health[index]->load();
    log::warn("upstream endpoint ejected")
        .kv("cluster", cl.config->name)
        .kv("endpoint", cl.health[index]->address())
        .kv("for_ms",
            std::chrono::duration_cast<std::chrono::milliseconds>(e.ejected_until - now).count())
        .kv("times_ejected", e.times_ejected);
  }

  // A circuit breaker refused the request: 503 at once, nothing sent upstream.
  Task<bool> overflow(Target const& t, std::string_view why, Clock::time_point start,
                      bool keep_alive, unsigned version) {
    upstream_error(t, UpstreamError::overflow);
    co_return co_await reply_error(t, http::status::service_unavailable, why, start, keep_alive,
                                   version);
  }

  Stream& lowest() { return beast::get_lowest_layer(down_); }

  Worker& w_;
  Down down_;
  std::string listener_;
  std::chrono::milliseconds handshake_timeout_;
  beast::flat_buffer buffer_;
  std::array<char, 512> first_bytes_;
  std::string peer_ip_;
  bool idle_ = false;
  std::shared_ptr<HeadDeadline> head_deadline_ = std::make_shared<HeadDeadline>();
  Timer head_timer_{w_.executor()};
  const char* raw_reject_ = "";  // check_raw_head's reason for HeadError::invalid_head
};

Task<void> run_session(Worker& worker, Socket socket, std::string listener) {
  Session<Stream> session(worker, Stream(std::move(socket)), std::move(listener), {});
  co_await session.run();
}

Task<void> run_tls_session(Worker& worker, Socket socket, std::string listener,
                           std::shared_ptr<asio::ssl::context> ctx,
                           std::chrono::milliseconds handshake_timeout) {
  Session<TlsStream> session(worker, TlsStream(Stream(std::move(socket)), *ctx),
                             std::move(listener), handshake_timeout);
  co_await session.run();
}

}  // namespace gp::proxy
