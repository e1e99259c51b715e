#include "proxy/server/session.hpp"

#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

#include "proxy/http/error_response.hpp"
#include "proxy/http/forwarding.hpp"
#include "proxy/http/head_io.hpp"
#include "proxy/http/http_checks.hpp"
#include "proxy/http/message_parser.hpp"
#include "proxy/log.hpp"
#include "proxy/request_info.hpp"
#include "proxy/server.hpp"
#include "proxy/server/request_log.hpp"
#include "proxy/server/worker.hpp"
#include "proxy/upstream/exchange.hpp"

namespace gp::proxy {

namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using metrics::RejectReason;

namespace {

UnderscoreAction underscore_action(config::Underscores u) {
  switch (u) {
    case config::Underscores::drop:
      return UnderscoreAction::drop;
    case config::Underscores::reject:
      return UnderscoreAction::reject;
    case config::Underscores::allow:
      return UnderscoreAction::allow;
  }
  return UnderscoreAction::drop;
}

}  // namespace

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

  void drain(Clock::time_point deadline) override {
    if (idle_) lowest().socket().cancel();
    if (tunnel_) tunnel_->drain(deadline);
  }

 private:
  // Serves one request; returns whether the connection stays open for another.
  Task<bool> serve_one() {
    RequestInfo info;
    info.snap = w_.snapshot();  // kept for the whole request
    info.start = Clock::now();
    const config::Config& cfg = *info.snap->config;

    MessageParser<true> req(
        ParserLimits{kMaxHeaderFields, underscore_action(cfg.http.headers_with_underscores)});
    if (cfg.limits.max_request_body_bytes) req.body_limit(cfg.limits.max_request_body_bytes);
    if (auto ec = co_await read_request_head(req, cfg)) co_return co_await head_failed(info, ec);

    auto& head = req.head();
    if (w_.access_log_enabled()) {  // copied now: forwarding rewrites the head
      info.method_text = head.method_string();
      const std::string_view t = head.target();
      info.path = t.substr(0, t.find('?'));
    }
    info.method = head.method();
    info.client_version = head.version() == 10 ? 10 : 11;
    if (req.dropped_fields() > 0)
      log::debug("request header fields with '_' dropped")
          .kv("peer", peer_ip_)
          .kv("count", req.dropped_fields());
    // After an early answer the unread body would be parsed as the next request: close.
    const bool can_keep_alive = req.head_keep_alive() && !req.declares_body();

    if (auto verdict = check_request_head(head); !verdict.ok()) {
      const auto reason = verdict.status == http::status::bad_request ? RejectReason::invalid_head
                                                                      : RejectReason::unsupported;
      co_return co_await reject(info, static_cast<unsigned>(verdict.status), verdict.reason,
                                reason);
    }

    const Snapshot& snap = *info.snap;
    const int route_index = snap.table->match(head[http::field::host], head.target(), head);
    if (route_index < 0) co_return co_await reply_error(info, 404, "no route", can_keep_alive);
    const RouteRuntime& route = snap.routes[route_index];
    info.route = &route;

    std::string head_bytes;
    ExchangePlan plan(req, head_bytes);
    if (route.canary >= 0 && route.splitter) {
      routing::SplitInput in{head, peer_ip_};
      auto d = route.splitter->decide(in, route.live->weight_bp.load(std::memory_order_relaxed),
                                      plan.new_cookie, w_.rng());
      info.version = d.version;
      info.bucket = d.bucket;
    }
    info.cluster = info.version == config::Version::canary ? route.canary : route.stable;

    const std::string_view upgrade = requested_upgrade(head, req.head_upgrade());
    plan.upgrade = !upgrade.empty();
    plan.expect_continue = head.count(http::field::expect) > 0;
    plan.client_keep_alive = req.head_keep_alive();
    plan.resendable = !req.declares_body() && is_idempotent(info.method);
    plan.needs_host = head.count(http::field::host) == 0;
    const std::optional<std::uint64_t> length = req.declared_length();
    rewrite_request_head(head, RequestRewrite{peer_ip_, kTls, config::to_string(info.version),
                                              req.chunked(), length, upgrade});
    serialize_head(head, plan.head);

    Exchange<Down> exchange(w_, ClientSide<Down>{down_, buffer_, peer_ip_, tunnel_}, info, plan);
    const ExchangeOutcome o = co_await exchange.run();
    switch (o.kind) {
      case ExchangeOutcome::Kind::responded:
        record_request(w_, info, o.status, peer_ip_);
        co_return o.keep_alive && !w_.draining();
      case ExchangeOutcome::Kind::error:
        co_return co_await reply_error(info, o.status, o.why, o.keep_alive);
      case ExchangeOutcome::Kind::bad_request_body:
        co_return co_await reject(info, o.status, o.why, o.reject);
      case ExchangeOutcome::Kind::client_gone:
        record_request(w_, info, o.status, peer_ip_);
        co_return false;
    }
    co_return false;
  }

  // A request head that could not be read: answered (and counted) by what went wrong, or the
  // connection just closes when the client went away.
  Task<bool> head_failed(RequestInfo& info, const beast::error_code& ec) {
    if (ec == WireError::request_line_too_long)
      co_return co_await reject(info, 414, "request line too long",
                                RejectReason::request_line_too_long);
    if (ec == WireError::invalid_head)
      co_return co_await reject(info, 400, raw_reject_, RejectReason::invalid_head);
    if (ec == WireError::unsupported_version)
      co_return co_await reject(info, 505, "unsupported HTTP version", RejectReason::unsupported);
    if (ec == WireError::underscore_header)
      co_return co_await reject(info, 400, "header name with underscore",
                                RejectReason::underscore_header);
    if (ec == http::error::header_limit || ec == WireError::too_many_fields)
      co_return co_await reject(info, 431, "request head too large", RejectReason::head_too_large);
    if (ec == beast::error::timeout)
      co_return co_await reject(info, 408, "request head timeout", RejectReason::head_timeout);
    if (ec == http::error::body_limit)
      co_return co_await reject(info, 413, "request body too large", RejectReason::body_too_large);
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::error::eof)
      co_return false;
    const std::string why = ec.message();
    co_return co_await reject(info, 400, why, RejectReason::invalid_head);
  }

  // The request head, within limits.max_request_header_bytes and timeouts.request_header for
  // all of it. The deadline's timer is armed only when a read is needed: most heads arrive
  // whole with the connection's first bytes and cost no timer operation.
  Task<beast::error_code> read_request_head(MessageParser<true>& req, const config::Config& cfg) {
    struct Disarm {
      Session* s;
      bool armed = false;
      ~Disarm() {
        if (armed) s->disarm_head_deadline();
      }
    } disarm{this};
    const auto deadline = Clock::now() + cfg.timeouts.request_header;
    auto arm = [&] {
      if (disarm.armed) return;
      arm_head_deadline(deadline);
      disarm.armed = true;
    };
    auto ec = co_await read_head(down_, buffer_, req, cfg.limits.max_request_header_bytes,
                                 cfg.limits.max_request_line_bytes, arm, raw_reject_);
    if (ec && head_deadline_->fired) co_return beast::error::timeout;
    co_return ec;
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

  // Answers the request with the proxy's own response, logged with its reason.
  Task<bool> reply_error(RequestInfo& info, unsigned status, std::string_view why,
                         bool keep_alive) {
    record_request(w_, info, status, peer_ip_);
    log::warn("request rejected")
        .kv("status", status)
        .kv("reason", why)
        .kv("peer", peer_ip_)
        .kv("route", info.route ? info.route->config->name : std::string("none"));
    keep_alive = keep_alive && !w_.draining();
    const std::string res =
        error_response_bytes(static_cast<http::status>(status), why, keep_alive,
                             info.client_version, info.method == http::verb::head);
    lowest().expires_after(w_.snapshot()->config->timeouts.idle);
    auto [ec, n] = co_await asio::async_write(down_, asio::buffer(res), use_task);
    co_return !ec && keep_alive;
  }

  // A request refused for what the client sent: counted by reason, answered, and the
  // connection closed (nothing after it is read).
  Task<bool> reject(RequestInfo& info, unsigned status, std::string_view why, RejectReason reason) {
    w_.metrics().request_rejected(reason);
    co_return co_await reply_error(info, status, why, false);
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
    head_deadline_->fired = false;
    head_timer_.cancel();
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
  // While the connection is a tunnel (after a 101); a pointer, so other connections do not
  // carry its timer.
  std::unique_ptr<TunnelControl> tunnel_;
  std::shared_ptr<HeadDeadline> head_deadline_ = std::make_shared<HeadDeadline>();
  Timer head_timer_{w_.executor()};
  const char* raw_reject_ = "";  // check_raw_head's reason for WireError::invalid_head
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
