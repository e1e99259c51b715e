// One request's upstream exchange, step by step: pick an endpoint and a connection (pooled or
// new), send the head and body, read the response head, retry when the route's policy allows,
// relay the response (or run a tunnel after a 101), and decide whether the connection may
// serve another request. The session (proxy/server/session.cpp) reads the request head before
// and answers what the exchange could not relay after.
#pragma once

#include <boost/beast/http/field.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "metrics/types.hpp"
#include "proxy/asio_types.hpp"
#include "proxy/http/body_relay.hpp"
#include "proxy/http/forwarding.hpp"
#include "proxy/http/head_io.hpp"
#include "proxy/http/message_parser.hpp"
#include "proxy/http/tunnel.hpp"
#include "proxy/http/wire_error.hpp"
#include "proxy/log.hpp"
#include "proxy/request_info.hpp"
#include "proxy/server/request_log.hpp"
#include "proxy/server/worker.hpp"
#include "proxy/upstream/connect_error.hpp"
#include "proxy/upstream/read_response.hpp"
#include "proxy/upstream/retry_state.hpp"
#include "proxy/upstream/reuse.hpp"
#include "proxy/upstream/send_request.hpp"
#include "proxy/upstream/upstream_pool.hpp"

namespace gp::proxy {

// The client side of an exchange.
template <class Down>
struct ClientSide {
  Down& stream;
  beast::flat_buffer& buffer;  // bytes read from the client beyond the request head
  std::string_view peer_ip;
  std::unique_ptr<TunnelControl>& tunnel;  // created when the exchange becomes a tunnel
};

// The request as the session prepared it.
struct ExchangePlan {
  ExchangePlan(MessageParser<true>& req, std::string& head_bytes)
      : request(&req), head(head_bytes) {}
  MessageParser<true>* request;  // its head rewritten for the upstream
  std::string& head;             // that head, serialized; then the response head for the client
  bool needs_host = false;       // HTTP/1.0 without Host: set per endpoint
  bool expect_continue = false;
  bool client_keep_alive = false;  // the client asked to keep its connection
  bool resendable = false;         // idempotent without a body: may be sent twice
  bool upgrade = false;            // the client asked to switch protocols
  std::string new_cookie;          // the split's cookie to set, if any
};

// What the session does next.
struct ExchangeOutcome {
  enum class Kind : std::uint8_t {
    responded,         // a response (or a tunnel) reached the client; it is recorded
    error,             // nothing reached the client: answer `status` because of `why`
    bad_request_body,  // the client's body broke its framing or a limit: reject it
    client_gone,       // the client's connection failed before the response (recorded)
  };
  Kind kind = Kind::error;
  unsigned status = 0;
  std::string_view why;  // error: a static text
  metrics::RejectReason reject = metrics::RejectReason::invalid_body;
  bool keep_alive = false;  // the client connection may serve another request
};

template <class Down>
class Exchange {
 public:
  Exchange(Worker& w, ClientSide<Down> client, RequestInfo& info, ExchangePlan& plan)
      : w_(w), client_(client), info_(info), plan_(plan) {}

  Task<ExchangeOutcome> run() {
    for (;;) {
      const bool tls = info_.snap->clusters[info_.cluster].tls != nullptr;
      const ExchangeOutcome o =
          tls ? co_await on_cluster<TlsStream>() : co_await on_cluster<Stream>();
      if (!fall_back_) co_return o;
      // `canary_unavailable: fallback_to_stable`: stable serves the request.
      fall_back_ = false;
      info_.version = config::Version::stable;
      info_.cluster = info_.route->stable;
      plan_.request->head().set("x-gray-version", config::to_string(config::Version::stable));
      serialize_head(plan_.request->head(), plan_.head);
    }
  }

 private:
  // A connection to an endpoint of the cluster, or why there is none.
  struct Acquired {
    std::unique_ptr<UpstreamConn> conn;
    tcp::endpoint endpoint;
    std::size_t index = 0;
    bool reused = false;
    bool attempted = false;  // a connection to `index` was tried and failed
    unsigned fail_status = 502;
    metrics::UpstreamError fail_reason = metrics::UpstreamError::connect;
  };

  // A read buffer of the worker's for the upstream side, returned when the attempt ends.
  struct UpstreamBuffer {
    Worker& w;
    beast::flat_buffer b;
    explicit UpstreamBuffer(Worker& worker) : w(worker), b(worker.buffers().take_read()) {}
    ~UpstreamBuffer() { w.buffers().give_read(std::move(b)); }
    UpstreamBuffer(const UpstreamBuffer&) = delete;
    UpstreamBuffer& operator=(const UpstreamBuffer&) = delete;
  };

  const config::Config& cfg() const { return *info_.snap->config; }
  const ClusterRuntime& cluster() const { return info_.snap->clusters[info_.cluster]; }

  void upstream_error(metrics::UpstreamError reason) {
    info_.stats().upstream_error(w_.index(), info_.version, reason);
  }

  static ExchangeOutcome error(unsigned status, std::string_view why, bool keep_alive) {
    return {ExchangeOutcome::Kind::error, status, why, {}, keep_alive};
  }

  // Whether the client connection may go on after an answer that left its request's body
  // unread: no (it would be parsed as the next request).
  bool keep_after_error(bool body_started) const {
    return plan_.client_keep_alive && !body_started && plan_.request->is_done();
  }

  template <class Up>
  Task<ExchangeOutcome> on_cluster() {
    const ClusterRuntime& cl = cluster();
    // Circuit breaker: the request holds an active slot until its response is relayed.
    BreakerSlot active_slot;
    if (!ClusterState::take(cl.state->active, cl.config->limits.max_active_requests, active_slot)) {
      upstream_error(metrics::UpstreamError::overflow);
      co_return error(503, "cluster overflow (max_active_requests)", keep_after_error(false));
    }
    RetryState retry(effective_retries(*info_.route->config, cl.endpoints.size()),
                     plan_.resendable);
    bool sent_any = false;      // some attempt sent request bytes (a fallback would repeat them)
    bool body_started = false;  // the client's body was (partly) consumed: no resending
    std::optional<Acquired> last_failure;  // answers when no endpoint is left to try

    for (;;) {
      Acquired up = co_await acquire(cl, !retry.stale_used(), retry.tried());
      if (!up.conn) {
        if (up.fail_reason == metrics::UpstreamError::overflow) {
          upstream_error(up.fail_reason);
          co_return error(503, "cluster overflow (max_pending_requests)", keep_after_error(false));
        }
        if (up.attempted) {
          info_.upstream = up.endpoint;
          retry.tried(up.index);
          upstream_error(up.fail_reason);
          if (retry.may_retry(config::kRetryConnectFailure, false)) {
            use_retry(retry);
            last_failure = std::move(up);
            continue;
          }
        } else if (last_failure && up.fail_reason == metrics::UpstreamError::no_endpoint) {
          up = std::move(*last_failure);  // every endpoint tried: the last failure answers
        } else {
          upstream_error(up.fail_reason);
        }
        const bool unavailable = up.fail_status == 503;
        const auto* split = info_.route->config->split ? &*info_.route->config->split : nullptr;
        if (!sent_any && info_.version == config::Version::canary && split &&
            split->fallback_to_stable && up.fail_reason != metrics::UpstreamError::local_overload) {
          // The rollout judge must still see the canary fail: it counts as a canary request
          // with the status the client would have had; stable's response counts as stable's.
          record_metrics(w_, info_, up.fail_status);
          log::warn("canary unavailable, falling back to stable")
              .kv("route", info_.route->config->name)
              .kv("reason", unavailable ? "no healthy endpoint" : "upstream connect failed");
          fall_back_ = true;
          co_return ExchangeOutcome{};
        }
        const std::string_view why = up.fail_reason == metrics::UpstreamError::local_overload
                                         ? "local_overload: out of file descriptors"
                                     : unavailable ? "no healthy endpoint"
                                                   : "upstream connect failed";
        co_return error(up.fail_status, why, keep_after_error(body_started));
      }
      info_.upstream = up.endpoint;
      Up& us = up.conn->template as<Up>();
      UpstreamBuffer ub(w_);

      // Request head and body.
      if (plan_.needs_host) {
        ensure_host(plan_.request->head(), cluster_authority(cl, up.index));
        serialize_head(plan_.request->head(), plan_.head);
      }
      const auto& to = cfg().timeouts;
      RelaySettings send_settings{to.idle, to.upstream_response,
                                  cfg().limits.max_request_header_bytes};
      sent_any = true;
      const SendResult sent = co_await send_request(
          client_.stream, client_.buffer, *plan_.request, us, plan_.head, plan_.expect_continue,
          info_.client_version, send_settings, info_.bytes_in);
      body_started = body_started || sent.body_started;
      beast::error_code ec = sent.ec;
      if (ec && sent.client_side) co_return client_body_failed(ec);

      // Response head.
      std::optional<MessageParser<false>> res;
      const char* reason = "";
      if (!ec)
        ec = co_await read_response_head(us, ub.b, res, cfg().limits.max_response_header_bytes,
                                         kMaxHeaderFields, to.upstream_response, info_.method,
                                         plan_.upgrade, reason);
      if (!ec) {
        const unsigned code = res->head().result_int();
        report(cl, up.index, routing::AttemptResult::response, code);
        const std::uint8_t condition = code == 502   ? config::kRetry502
                                       : code == 503 ? config::kRetry503
                                       : code == 504 ? config::kRetry504
                                                     : 0;
        if (condition && !body_started && retry.may_retry(condition, true)) {
          use_retry(retry);
          retry.tried(up.index);
          log::info("retrying upstream request")
              .kv("route", info_.route->config->name)
              .kv("endpoint", up.endpoint)
              .kv("status", code);
          // Its body is not relayed: only a complete bodiless answer leaves a reusable
          // connection.
          release(up, *res, ub.b, res->is_done());
          continue;
        }
        co_return co_await respond<Up>(up, us, ub.b, *res);
      }

      // No usable response head.
      if (ec == WireError::invalid_response || ec == WireError::unrequested_upgrade)
        log::warn("invalid upstream response head")
            .kv("endpoint", up.endpoint)
            .kv("reason", ec == WireError::invalid_response ? std::string_view(reason)
                                                            : std::string_view(ec.message()));
      w_.metrics().upstream_connection_closed(metrics::UpstreamClose::aborted);
      // A pooled connection the upstream had closed is retried once on a fresh connection
      // when the request can be sent twice (not a retry of the policy, and no sign of the
      // endpoint's health).
      const bool stale = ec == WireError::closed_before_response ||
                         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
                         ec == asio::error::eof;
      if (up.reused && stale && !body_started && retry.may_retry_stale() && ub.b.size() == 0) {
        log::debug("retrying on a fresh upstream connection").kv("error", ec.message());
        retry.use_stale_retry();
        continue;
      }
      retry.tried(up.index);
      if (ec == beast::error::timeout) {
        report(cl, up.index, routing::AttemptResult::timeout);
        upstream_error(metrics::UpstreamError::timeout);
        if (!body_started && retry.may_retry(config::kRetryTimeout, true)) {
          use_retry(retry);
          log::info("retrying upstream request")
              .kv("route", info_.route->config->name)
              .kv("endpoint", up.endpoint)
              .kv("error", "timeout");
          continue;
        }
        co_return error(504, "upstream response timeout", keep_after_error(body_started));
      }
      const bool protocol = ec.category() == wire_error_category()
                                ? ec != WireError::closed_before_response
                                : is_parse_error(ec);
      report(cl, up.index, routing::AttemptResult::reset);
      upstream_error(protocol ? metrics::UpstreamError::protocol : metrics::UpstreamError::reset);
      log::warn("upstream failed before response")
          .kv("endpoint", up.endpoint)
          .kv("error", ec.message());
      if (!protocol && !body_started && retry.may_retry(config::kRetryReset, true)) {
        use_retry(retry);
        log::info("retrying upstream request")
            .kv("route", info_.route->config->name)
            .kv("endpoint", up.endpoint)
            .kv("error", "reset");
        continue;
      }
      co_return error(502, protocol ? "invalid upstream response" : "upstream reset",
                      keep_after_error(body_started));
    }
  }

  // The client's side failed while its body went upstream: a body that broke its framing or
  // a limit is rejected; a client that went away is logged. The upstream connection carries
  // a truncated request: it is closed.
  ExchangeOutcome client_body_failed(const beast::error_code& ec) {
    w_.metrics().upstream_connection_closed(metrics::UpstreamClose::aborted);
    if (ec == beast::http::error::body_limit)
      return {ExchangeOutcome::Kind::bad_request_body, 413, "request body too large",
              metrics::RejectReason::body_too_large, false};
    if (ec == WireError::chunk_line_too_long)
      return {ExchangeOutcome::Kind::bad_request_body, 400, "request chunk line too long",
              metrics::RejectReason::chunk_line_too_long, false};
    if (ec == WireError::trailers_too_large)
      return {ExchangeOutcome::Kind::bad_request_body, 400, "request trailers too large",
              metrics::RejectReason::trailers_too_large, false};
    if (is_parse_error(ec))
      return {ExchangeOutcome::Kind::bad_request_body, 400, "malformed request body",
              metrics::RejectReason::invalid_body, false};
    log::info("client body aborted").kv("peer", client_.peer_ip).kv("error", ec.message());
    return {ExchangeOutcome::Kind::client_gone, 499, {}, {}, false};
  }

  // The response head is in: relay it (or run the tunnel after a 101), then decide whether
  // the connection may be reused.
  template <class Up>
  Task<ExchangeOutcome> respond(Acquired& up, Up& us, beast::flat_buffer& up_buf,
                                MessageParser<false>& res) {
    auto& head = res.head();
    const unsigned status = head.result_int();
    const auto& to = cfg().timeouts;
    if (status == 101) co_return co_await tunnel(up, us, up_buf, res);

    const BodyFraming framing = response_framing(info_.method, status, res.chunked(),
                                                 res.declared_length(), info_.client_version);
    const bool keep_alive =
        plan_.client_keep_alive && !w_.draining() && framing != BodyFraming::close;
    rewrite_response_head(
        head,
        ResponseRewrite{info_.client_version, keep_alive, framing, res.declared_length(), {}});
    const RouteRuntime& route = *info_.route;
    if (route.splitter && route.config->split->expose_version)
      head.set("x-gray-version", config::to_string(info_.version));
    if (!plan_.new_cookie.empty())
      head.insert(beast::http::field::set_cookie,
                  route.splitter->set_cookie_value(plan_.new_cookie));
    std::string& out_head = plan_.head;  // the request's head is sent: reuse its buffer
    serialize_head(head, out_head);

    const RelaySettings s{to.upstream_response, to.idle, cfg().limits.max_response_header_bytes};
    const RelayResult r = framing == BodyFraming::none
                              ? co_await write_head_only(out_head)
                              : co_await relay_message(us, up_buf, res, client_.stream, out_head,
                                                       framing, s, info_.bytes_out);
    if (!r.ok() && r.side == RelaySide::read) {
      const bool protocol = r.ec.category() == wire_error_category() || is_parse_error(r.ec);
      upstream_error(r.ec == beast::error::timeout ? metrics::UpstreamError::timeout
                     : protocol                    ? metrics::UpstreamError::protocol
                                                   : metrics::UpstreamError::reset);
      log::warn(protocol ? "invalid upstream response body"
                         : "upstream failed during response body")
          .kv("endpoint", up.endpoint)
          .kv("error", r.ec.message());
      w_.metrics().upstream_connection_closed(metrics::UpstreamClose::aborted);
      // Nothing reached the client yet: it can still be told (502, as for a bad head).
      if (protocol && info_.bytes_out == 0 && !r.head_sent)
        co_return error(502, "invalid upstream response", false);
      // Else the client cannot tell a truncated body from a whole one but by the close.
      co_return ExchangeOutcome{ExchangeOutcome::Kind::responded, status, {}, {}, false};
    }
    if (!r.ok()) {
      w_.metrics().upstream_connection_closed(metrics::UpstreamClose::aborted);
      co_return ExchangeOutcome{ExchangeOutcome::Kind::responded, status, {}, {}, false};
    }
    release(up, res, up_buf, true);
    co_return ExchangeOutcome{ExchangeOutcome::Kind::responded, status, {}, {}, keep_alive};
  }

  Task<RelayResult> write_head_only(std::string_view head) {
    expire_after(client_.stream, cfg().timeouts.idle);
    auto [ec, n] = co_await asio::async_write(client_.stream,
                                              asio::buffer(head.data(), head.size()), use_task);
    co_return RelayResult{ec, ec ? RelaySide::write : RelaySide::none, !ec};
  }

  // Gives the connection back to the pool when decide_reuse() allows, else closes it and
  // counts why.
  void release(Acquired& up, MessageParser<false>& res, const beast::flat_buffer& up_buf,
               bool exchange_ok) {
    ReuseFacts f;
    f.exchange_ok = exchange_ok;
    f.response_complete = res.is_done();
    f.method = info_.method;
    f.status = res.head().result_int();
    f.version = res.head().version();
    f.keep_alive = res.head_keep_alive();
    f.close_delimited = res.need_eof();
    f.declared_body = res.declares_body();
    f.leftover = up_buf.size();
    const ReuseVerdict v = decide_reuse(f);
    // A reload during the request may have removed the endpoint: only a connection made
    // under the current configuration goes back to the pool.
    if (v == ReuseVerdict::reuse && w_.snapshot().get() == info_.snap.get()) {
      w_.pool().give_back(up.endpoint, std::move(up.conn));
      return;
    }
    if (v == ReuseVerdict::stray_bytes)
      log::warn("upstream sent bytes after its response")
          .kv("endpoint", up.endpoint)
          .kv("bytes", f.leftover)
          .kv("status", f.status);
    w_.metrics().upstream_connection_closed(
        v == ReuseVerdict::stray_bytes ? metrics::UpstreamClose::stray_bytes
        : v == ReuseVerdict::unframed  ? metrics::UpstreamClose::unframed
                                       : metrics::UpstreamClose::aborted);
    up.conn.reset();
  }

  // After a 101 to an upgrade request: the response head goes to the client and the
  // connection becomes a byte tunnel; the request is recorded when the tunnel ends.
  template <class Up>
  Task<ExchangeOutcome> tunnel(Acquired& up, Up& us, beast::flat_buffer& up_buf,
                               MessageParser<false>& res) {
    auto& head = res.head();
    const std::string upgrade(head[beast::http::field::upgrade]);
    rewrite_response_head(head, ResponseRewrite{info_.client_version, false, BodyFraming::none,
                                                std::nullopt, upgrade});
    serialize_head(head, plan_.head);
    const RelayResult r = co_await write_head_only(plan_.head);
    if (!r.ok()) {
      w_.metrics().upstream_connection_closed(metrics::UpstreamClose::aborted);
      co_return ExchangeOutcome{ExchangeOutcome::Kind::responded, 101, {}, {}, false};
    }
    beast::get_lowest_layer(client_.stream).expires_never();
    beast::get_lowest_layer(us).expires_never();
    client_.tunnel = std::make_unique<TunnelControl>(w_.executor());
    if (w_.draining()) client_.tunnel->drain(std::chrono::steady_clock::now());
    const TunnelResult t = co_await run_tunnel(client_.stream, client_.buffer, us, up_buf,
                                               cfg().timeouts.idle, *client_.tunnel);
    info_.bytes_in += t.client_to_upstream;
    info_.bytes_out += t.upstream_to_client;
    client_.tunnel.reset();
    w_.metrics().upstream_connection_closed(metrics::UpstreamClose::unframed);
    up.conn.reset();
    co_return ExchangeOutcome{ExchangeOutcome::Kind::responded, 101, {}, {}, false};
  }

  void use_retry(RetryState& retry) {
    retry.use_retry();
    info_.stats().retry(w_.index(), info_.version);
  }

  // Host for a request that had none: the TLS server name, else the endpoint's address.
  static std::string cluster_authority(const ClusterRuntime& cl, std::size_t index) {
    if (cl.tls && !cl.server_names[index].empty()) return cl.server_names[index];
    const auto& ep = cl.endpoints[index];
    const auto addr = ep.address();
    return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" +
           std::to_string(ep.port());
  }

  // A parse error of Beast's (malformed framing or syntax), not an I/O outcome.
  static bool is_parse_error(const beast::error_code& ec) {
    namespace http = beast::http;
    return ec.category() == http::make_error_code(http::error::bad_version).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message &&
           ec != http::error::need_more && ec != http::error::need_buffer;
  }

  // Picks an endpoint of the cluster (round robin, skipping ejected ones and, while others
  // are left, the ones this request already tried) and returns a pooled or new connection.
  Task<Acquired> acquire(const ClusterRuntime& cl, bool allow_pooled,
                         std::span<const std::size_t> tried) {
    Acquired up;
    const auto now = std::chrono::steady_clock::now();
    const auto pick = pick_endpoint(
        cl.endpoints.size(), w_.next_rr(info_.cluster),
        [&](std::size_t i) { return cl.health[i]->ejected(now); }, tried);
    if (!pick) {
      up.fail_status = 503;
      up.fail_reason = metrics::UpstreamError::no_endpoint;
      co_return up;
    }
    const std::size_t index = *pick;
    const auto& ep = cl.endpoints[index];
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
      up.fail_status = 503;
      up.fail_reason = metrics::UpstreamError::overflow;
      co_return up;
    }
    // A named local, not a temporary in the co_await operand: g++ 12 destroys such
    // temporaries of a conditional expression too early.
    const std::string server_name = cl.tls ? cl.server_names[index] : std::string();
    const bool verify = !cl.config->tls || cl.config->tls->verify;
    auto [ec, conn] = co_await w_.pool().connect(ep, cfg().timeouts.upstream_connect, cl.tls.get(),
                                                 server_name, verify);
    pending.release();
    if (!ec) {
      up.conn = std::move(conn);
      co_return up;
    }
    if (is_local_overload(ec)) {
      // The proxy is out of descriptors, not the endpoint out of service: no ejection, no
      // other endpoint tried (it would fail the same way).
      log::warn("upstream connect failed: out of file descriptors")
          .kv("cluster", cl.config->name)
          .kv("endpoint", ep)
          .kv("error", ec.message());
      up.fail_status = 503;
      up.fail_reason = metrics::UpstreamError::local_overload;
      co_return up;
    }
    up.attempted = true;
    up.fail_reason = ec == beast::error::timeout ? metrics::UpstreamError::timeout
                                                 : metrics::UpstreamError::connect;
    up.fail_status = ec == beast::error::timeout ? 504 : 502;
    if (cl.tls && ec != beast::error::timeout &&
        ec.category() != asio::error::get_system_category()) {
      // The endpoint answers but its TLS is wrong (certificate, name, protocol): a
      // configuration problem, not a dead endpoint, so it is not ejected.
      log::warn("upstream TLS handshake failed")
          .kv("cluster", cl.config->name)
          .kv("endpoint", ep)
          .kv("error", ec.message());
      up.fail_reason = metrics::UpstreamError::connect;
      up.fail_status = 502;
      co_return up;
    }
    log::warn("upstream connect failed")
        .kv("cluster", cl.config->name)
        .kv("endpoint", ep)
        .kv("error", ec.message());
    report(cl, index, routing::AttemptResult::connect_failure);
    co_return up;
  }

  // Outlier detection: one attempt's outcome on an endpoint; an ejection is logged.
  void report(const ClusterRuntime& cl, std::size_t index, routing::AttemptResult result,
              unsigned status = 0) {
    const auto now = std::chrono::steady_clock::now();
    if (!cl.state->report(cl.outlier, cl.health, index, result, status, now)) return;
    const routing::EndpointOutlier e = cl.health[index]->load();
    log::warn("upstream endpoint ejected")
        .kv("cluster", cl.config->name)
        .kv("endpoint", cl.health[index]->address())
        .kv("for_ms",
            std::chrono::duration_cast<std::chrono::milliseconds>(e.ejected_until - now).count())
        .kv("times_ejected", e.times_ejected);
  }

  Worker& w_;
  ClientSide<Down> client_;
  RequestInfo& info_;
  ExchangePlan& plan_;
  bool fall_back_ = false;
};

}  // namespace gp::proxy
