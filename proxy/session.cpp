#include "proxy/session.hpp"

#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

#include "proxy/access_log.hpp"
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

namespace {

// How long an endpoint that refused a connection is skipped by this worker.
constexpr auto kEjectFor = std::chrono::seconds(5);
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
    w_.add_session(this);
    w_.metrics().connection_opened(w_.index());
  }
  ~Session() override {
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
    lowest().expires_after(to.request_header);  // one deadline for the whole head
    {
      auto ec = co_await read_head(*req_p, cfg.limits.max_request_header_bytes);
      if (ec) {
        if (ec == http::error::header_limit)
          co_return co_await reply_error(target, http::status::request_header_fields_too_large,
                                         "request head too large", start, false, 11);
        if (ec == beast::error::timeout)
          co_return co_await reply_error(target, http::status::request_timeout,
                                         "request head timeout", start, false, 11);
        if (ec == http::error::body_limit)
          co_return co_await reply_error(target, http::status::payload_too_large,
                                         "request body too large", start, false, 11);
        if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
            ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
          co_return false;
        co_return co_await reply_error(target, http::status::bad_request, ec.message(), start,
                                       false, 11);
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

    if (auto verdict = check_request_head(req.base()); !verdict.ok())
      co_return co_await reply_error(target, verdict.status, verdict.reason, start, false,
                                     client_version);

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
    if (snap->clusters[target.cluster].tls) co_return co_await forward<TlsStream>(st);
    co_return co_await forward<Stream>(st);
  }

  // The upstream exchange: connect or reuse, send the request, read the response head
  // (retrying once on a stale pooled connection), stream the response back.
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
    Upstream up;
    std::optional<http::response_parser<http::buffer_body>> res_p;
    bool request_body_started = false;
    for (int attempt = 0;; ++attempt) {
      up = co_await acquire(*snap, target.cluster, attempt == 0);
      cur_.upstream = up.conn ? up.endpoint : tcp::endpoint{};
      if (!up.conn) {
        upstream_error(target, up.fail_reason);
        co_return co_await reply_error(target, up.fail_status,
                                       up.fail_status == http::status::service_unavailable
                                           ? "no healthy endpoint"
                                           : "upstream connect failed",
                                       start, can_keep_alive, client_version);
      }
      Up& us = up.conn->template as<Up>();

      // Request head, then (after 100 Continue if the client waits for it) the body.
      http::serializer<true, http::buffer_body> sr{req};
      beast::error_code ec;
      RelaySide side = RelaySide::none;
      beast::get_lowest_layer(us).expires_after(to.upstream_response);
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
          auto [rec, n] = co_await http::async_read_header(us, up.conn->buffer, *res_p, use_task);
          ec = rec;
          side = RelaySide::read;
          if (ec) break;
          const unsigned code = res_p->get().result_int();
          if (code < 100 || code >= 200 || code == 101) break;
        }
      }
      if (!ec) break;

      // Nothing came back. A reused connection the upstream had closed is retried once on
      // a fresh connection when the request can be sent twice.
      const bool stale = ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                         ec == asio::error::broken_pipe || ec == asio::error::eof;
      if (up.reused && stale && retryable && !request_body_started && attempt == 0 &&
          (up.conn->buffer.size() == 0)) {
        log::debug("retrying on a fresh upstream connection").kv("error", ec.message());
        continue;
      }
      if (ec == beast::error::timeout) {
        upstream_error(target, UpstreamError::timeout);
        co_return co_await reply_error(target, http::status::gateway_timeout,
                                       "upstream response timeout", start, can_keep_alive,
                                       client_version);
      }
      const bool protocol =
          ec.category() == http::make_error_code(http::error::bad_version).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message;
      upstream_error(target, protocol ? UpstreamError::protocol : UpstreamError::reset);
      log::warn("upstream failed before response")
          .kv("endpoint", up.endpoint)
          .kv("error", ec.message());
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
    record(target, status, start);
    if (ec) {
      if (side == RelaySide::read) {
        upstream_error(target,
                       ec == beast::error::timeout ? UpstreamError::timeout : UpstreamError::reset);
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

  void record(Target const& t, unsigned status, Clock::time_point start) {
    auto* stats = t.stats ? t.stats : w_.snapshot()->unmatched;
    const auto elapsed = Clock::now() - start;
    stats->record(w_.index(), metric_version(t.version), status, elapsed);
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

  void upstream_error(Target const& t, UpstreamError reason) {
    auto* stats = t.stats ? t.stats : w_.snapshot()->unmatched;
    stats->upstream_error(w_.index(), metric_version(t.version), reason);
  }

  // Reads a request head into the parser. Beast applies header_limit to each put() on
  // what is still unparsed, so a head arriving in several reads could exceed it; the
  // limit is enforced here on the bytes of the whole head.
  Task<beast::error_code> read_head(http::request_parser<http::buffer_body>& p, std::size_t limit) {
    std::size_t consumed = 0;
    for (;;) {
      if (buffer_.size() > 0) {
        beast::error_code ec;
        const std::size_t n = p.put(buffer_.data(), ec);
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
      auto [ec, n] = co_await down_.async_read_some(
          buffer_.prepare(std::min<std::size_t>(limit - consumed - buffer_.size(), 16384)),
          use_task);
      if (ec) {
        if (ec == asio::error::eof)
          co_return consumed + buffer_.size() == 0 ? http::error::end_of_stream
                                                   : http::error::partial_message;
        co_return ec;
      }
      buffer_.commit(n);
    }
  }

  // Picks an endpoint of the cluster (round robin, skipping ejected ones) and returns a
  // pooled or new connection. On failure sets status/reason.
  struct Upstream {
    std::unique_ptr<UpstreamConn> conn;
    tcp::endpoint endpoint;
    bool reused = false;
    http::status fail_status = http::status::ok;
    UpstreamError fail_reason = UpstreamError::connect;
  };
  Task<Upstream> acquire(const Snapshot& snap, int cluster, bool allow_pooled) {
    Upstream up;
    auto const& cl = snap.clusters[cluster];
    auto const& endpoints = cl.endpoints;
    const auto n = endpoints.size();
    const auto now = Clock::now();
    bool any_tried = false;
    const std::uint32_t start = w_.next_rr(cluster);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t index = (start + i) % n;
      auto const& ep = endpoints[index];
      if (w_.pool().ejected(ep, now)) continue;
      if (allow_pooled) {
        if (auto conn = w_.pool().take(ep, cl.tls.get())) {
          up.conn = std::move(conn);
          up.endpoint = ep;
          up.reused = true;
          co_return up;
        }
      }
      any_tried = true;
      // A named local, not a temporary in the co_await operand: g++ 12 destroys such
      // temporaries of a conditional expression too early.
      const std::string server_name = cl.tls ? cl.server_names[index] : std::string();
      const bool verify = !cl.config->tls || cl.config->tls->verify;
      auto [ec, conn] = co_await w_.pool().connect(ep, snap.config->timeouts.upstream_connect,
                                                   cl.tls.get(), server_name, verify);
      if (!ec) {
        up.conn = std::move(conn);
        up.endpoint = ep;
        co_return up;
      }
      if (cl.tls && ec != beast::error::timeout &&
          ec.category() != asio::error::get_system_category()) {
        // The endpoint answers but its TLS is wrong (certificate, name, protocol): a
        // configuration problem, not a dead endpoint, so it is not ejected.
        log::warn("upstream TLS handshake failed")
            .kv("cluster", cl.config->name)
            .kv("endpoint", ep)
            .kv("error", ec.message());
        any_tried = true;
        up.fail_reason = UpstreamError::connect;
        continue;
      }
      log::warn("upstream connect failed")
          .kv("cluster", snap.clusters[cluster].config->name)
          .kv("endpoint", ep)
          .kv("error", ec.message());
      w_.pool().eject(ep, Clock::now() + kEjectFor);
      up.fail_reason =
          ec == beast::error::timeout ? UpstreamError::timeout : UpstreamError::connect;
    }
    if (!any_tried) {
      up.fail_status = http::status::service_unavailable;
      up.fail_reason = UpstreamError::no_endpoint;
    } else {
      up.fail_status = up.fail_reason == UpstreamError::timeout ? http::status::gateway_timeout
                                                                : http::status::bad_gateway;
    }
    co_return up;
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
