// libFuzzer target for the downstream request path, without sockets. The input is what a
// client sends on one connection. It goes through the proxy's own code, request after request
// while the connection would stay open, on Beast's in-memory test streams:
//   read_head (MessageParser, limits, raw checks) -> check_request_head -> route match ->
//   split decision -> requested_upgrade / rewrite_request_head -> serialize_head ->
//   send_request (the body relayed by relay_message as it is read).
// The client stream hands the input out in reads of a size chosen from the input, so the same
// input always splits the same way.
//
// Oracles (a violation aborts, i.e. is a finding):
//   - the rewritten head re-parses with a fresh parser and carries at most one framing header
//     (never both Content-Length and Transfer-Encoding), the one matching the client's body;
//   - no hop-by-hop field survives the rewrite (but an upgrade's own two);
//   - what is written upstream for a complete request parses as exactly one request whose
//     body has as many bytes as the relay counted, with no bytes left over (a
//     request-smuggling check); for a broken-off body, a prefix of one request;
//   - the read buffer never grows beyond one read past the longest allowed wait.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/dynamic_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "proxy/http/forwarding.hpp"
#include "proxy/http/head_io.hpp"
#include "proxy/http/http_checks.hpp"
#include "proxy/http/message_parser.hpp"
#include "proxy/upstream/send_request.hpp"
#include "routing/random_source.hpp"
#include "routing/route_table.hpp"
#include "routing/split.hpp"
#include "watchdog.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

namespace asio = boost::asio;
using gp::proxy::Task;
using gp::proxy::use_task;
using TestStream = beast::test::basic_stream<gp::proxy::Executor>;

// As proxy/server/session.cpp.
using gp::proxy::kMaxHeaderFields;
constexpr std::size_t kHeaderLimit = 8192;  // limits.max_request_header_bytes
constexpr std::size_t kLineLimit = 8192;    // limits.max_request_line_bytes
constexpr int kMaxRequestsPerConnection = 16;
constexpr const char* kPeer = "192.0.2.7";

[[noreturn]] void finding(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "FINDING: %s\n", what);
  if (!detail.empty())
    std::fprintf(stderr, "---\n%.*s\n---\n", static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// GP_FUZZ_TRACE=1 prints what happens to each request (for reproducing a finding).
const bool kTrace = std::getenv("GP_FUZZ_TRACE") != nullptr;
void trace(const char* what, std::string_view detail = {}) {
  if (kTrace)
    std::fprintf(stderr, "[request_fuzz] %s%s%.*s\n", what, detail.empty() ? "" : ": ",
                 static_cast<int>(detail.size()), detail.data());
}

// Routes and splits the fuzzer runs against; parsed once with the real loader.
constexpr const char* kConfig = R"(
listeners: [ { name: public, address: 127.0.0.1:8080 } ]
clusters:
  - { name: v1, endpoints: [127.0.0.1:9001] }
  - { name: v2, endpoints: [127.0.0.1:9002] }
routes:
  - name: api
    match: { host: "*.example.com", path_prefix: /api/, header: { name: X-Beta, value: "yes" } }
    stable: v1
    canary: v2
    split:
      weight: 50
      hash_on: { header: X-User-ID }
      fallback: random
      overrides:
        - { header: X-Canary, value: always, to: canary }
        - { cookie: force, value: old, to: stable }
      trust_forwarded_for: true
  - name: shop
    match: { host: shop.example.com, path_prefix: / }
    stable: v1
    canary: v2
    split:
      weight: 25
      hash_on: { cookie: uid }
      fallback: cookie
      overrides: [ { header: x-canary, value: always, to: canary },
                   { header: x-canary, value: never, to: stable } ]
  - name: ip
    match: { host: ip.example.com, path_prefix: /v/ }
    stable: v1
    canary: v2
    split: { weight: 75, hash_on: { header: x-user-id }, fallback: client_ip }
  - name: any
    stable: v1
)";

struct Fixture {
  gp::config::Config cfg;
  std::optional<gp::routing::RouteTable> table;
  std::vector<std::optional<gp::routing::Splitter>> splitters;

  Fixture() : cfg(gp::config::parse(kConfig, "request_fuzz")) {
    table.emplace(cfg.routes);
    for (auto const& r : cfg.routes) {
      splitters.emplace_back();
      if (r.split) splitters.back().emplace(*r.split, r.name);
    }
  }
};

const Fixture& fixture() {
  static const Fixture* f = new Fixture();  // never destroyed: no exit-time work
  return *f;
}

// The head as the upstream gets it, re-parsed on its own.
void check_rewritten_head(std::string const& head_bytes, bool chunked,
                          std::optional<std::uint64_t> content_length, bool upgrade,
                          http::request_header<> const& sent) {
  http::request_parser<http::empty_body> p;
  p.header_limit(std::numeric_limits<std::uint32_t>::max());
  // The proxy relays bodies of any declared size; the upstream's own limit is not ours to check.
  p.body_limit(std::numeric_limits<std::uint64_t>::max());
  beast::error_code ec;
  const std::size_t n = p.put(boost::asio::buffer(head_bytes), ec);
  if (ec && ec != http::error::need_more) finding("rewritten head does not re-parse", head_bytes);
  if (!p.is_header_done()) finding("rewritten head is incomplete", head_bytes);
  if (n != head_bytes.size()) finding("rewritten head has bytes after its end", head_bytes);
  auto const& h = p.get();
  const auto cl = h.count(http::field::content_length);
  const auto te = h.count(http::field::transfer_encoding);
  if (cl + te > 1) finding("rewritten head has more than one framing header", head_bytes);
  if (chunked) {
    if (te != 1 || !p.chunked())
      finding("chunked body but no Transfer-Encoding: chunked", head_bytes);
  } else if (content_length) {
    if (cl != 1 || !p.content_length() || *p.content_length() != *content_length)
      finding("Content-Length lost or changed by the rewrite", head_bytes);
  } else if (cl + te != 0) {
    finding("framing header added to a request without a body", head_bytes);
  }
  for (auto f : {http::field::keep_alive, http::field::proxy_connection, http::field::te,
                 http::field::trailer, http::field::expect})
    if (h.count(f) != 0) finding("hop-by-hop field forwarded", head_bytes);
  if (upgrade) {
    if (h.count(http::field::upgrade) != 1 || h[http::field::connection] != "upgrade")
      finding("upgrade request lost its Upgrade or Connection: upgrade", head_bytes);
  } else if (h.count(http::field::upgrade) + h.count(http::field::connection) != 0) {
    finding("Connection or Upgrade forwarded without an upgrade", head_bytes);
  }
  if (h.count(http::field::host) > 1) finding("several Host fields forwarded", head_bytes);
  if (h.count("x-forwarded-for") != 1 || h.count("x-gray-version") != 1)
    finding("X-Forwarded-For / X-Gray-Version not set exactly once", head_bytes);
  if (h.method_string() != sent.method_string() || h.target() != sent.target() || h.version() != 11)
    finding("request line changed by serialization", head_bytes);
}

// One connection: the client's bytes in, what would go upstream out.
struct Connection {
  asio::io_context& ioc;
  TestStream client;
  TestStream upstream;
  TestStream upstream_peer;
  beast::flat_buffer buffer;
  gp::routing::RandomSource rng;
  bool ended = false;

  Connection(asio::io_context& io, std::string_view input, std::size_t read_size,
             std::uint64_t seed)
      : ioc(io), client(io), upstream(io), upstream_peer(io), rng(seed) {
    client.append(input);
    client.close_remote();  // the client's end of stream after its bytes
    client.read_size(read_size);
    upstream.connect(upstream_peer);
  }

  // What the proxy wrote upstream since the last call.
  std::string take_upstream() {
    std::string s(upstream_peer.str());
    upstream_peer.clear();
    return s;
  }
};

// Serves one request; returns whether the connection would stay open for another.
Task<bool> serve_one(Connection& c) {
  const Fixture& fx = fixture();
  gp::proxy::MessageParser<true> req(
      gp::proxy::ParserLimits{kMaxHeaderFields, gp::proxy::UnderscoreAction::drop});
  const char* reason = "";
  if (auto ec = co_await gp::proxy::read_head(
          c.client, c.buffer, req, kHeaderLimit, kLineLimit, [] {}, reason)) {
    trace("head rejected", ec.message());
    co_return false;  // error reply (or nothing), close
  }

  auto& head = req.head();
  const bool can_keep_alive = req.head_keep_alive() && !req.declares_body();
  if (auto verdict = gp::proxy::check_request_head(head); !verdict.ok()) {
    trace("check_request_head", verdict.reason);
    co_return false;
  }

  const int route_index = fx.table->match(head[http::field::host], head.target(), head);
  if (route_index < -1 || route_index >= static_cast<int>(fx.cfg.routes.size()))
    finding("route index out of range");
  if (route_index < 0) {
    trace("no route");
    co_return can_keep_alive;  // 404
  }
  auto const& route = fx.cfg.routes[route_index];
  const auto& splitter = fx.splitters[route_index];

  std::string new_cookie;
  gp::config::Version version = gp::config::Version::stable;
  if (!route.canary.empty() && splitter) {
    gp::routing::SplitInput in{head, kPeer};
    auto d = splitter->decide(in, route.split->weight_bp, new_cookie, c.rng);
    if (d.bucket > 10000) finding("bucket out of range");
    version = d.version;
    if (!new_cookie.empty()) {
      const std::string set_cookie = splitter->set_cookie_value(new_cookie);
      if (set_cookie.find_first_of("\r\n") != std::string::npos) finding("CRLF in Set-Cookie");
    }
  }

  // The rewrite, as in the session.
  const std::string_view upgrade = gp::proxy::requested_upgrade(head, req.head_upgrade());
  const bool is_upgrade = !upgrade.empty();
  const bool expect_continue = head.count(http::field::expect) > 0;
  const bool client_keep_alive = req.head_keep_alive();
  const auto length = req.declared_length();
  gp::proxy::rewrite_request_head(
      head, gp::proxy::RequestRewrite{kPeer, false, gp::config::to_string(version), req.chunked(),
                                      length, upgrade});
  if (head.count(http::field::host) == 0) gp::proxy::ensure_host(head, "127.0.0.1:9001");
  std::string head_bytes;
  gp::proxy::serialize_head(head, head_bytes);
  check_rewritten_head(head_bytes, req.chunked(), length, is_upgrade, head);

  // What goes upstream: the head, then the body as the relay streams it.
  const gp::proxy::RelaySettings settings{std::chrono::seconds(10), std::chrono::seconds(10),
                                          kHeaderLimit};
  std::uint64_t body_bytes = 0;
  const auto sent = co_await gp::proxy::send_request(
      c.client, c.buffer, req, c.upstream, head_bytes, expect_continue, 11, settings, body_bytes);
  if (c.buffer.capacity() > gp::proxy::relay_buffer_limit(settings))
    finding("read buffer over its bound");
  if (sent.ec && !sent.client_side) finding("upstream write failed", sent.ec.message());
  const bool body_complete = !sent.ec;
  const std::string upstream = c.take_upstream();

  // The upstream's view of the bytes: exactly one request, with the body the proxy counted.
  {
    // dynamic_body, not string_body: string_body reserves the declared Content-Length up
    // front, which for a truncated request can be far more than could ever arrive.
    http::request_parser<http::dynamic_body> up;
    up.header_limit(std::numeric_limits<std::uint32_t>::max());
    up.body_limit(boost::none);
    up.eager(true);
    beast::error_code ec;
    const std::size_t n = up.put(boost::asio::buffer(upstream), ec);
    if (body_complete) {
      if (ec || !up.is_done()) finding("upstream bytes are not one whole request", upstream);
      if (n != upstream.size()) finding("upstream bytes hold more than one request", upstream);
      if (up.get().body().size() != body_bytes)
        finding("upstream body differs from what the relay counted", upstream);
    } else {
      if (ec && ec != http::error::need_more)
        finding("truncated upstream request does not parse", upstream);
      if (up.is_done() && n != upstream.size())
        finding("truncated upstream request holds a second request", upstream);
    }
  }
  trace(body_complete ? "forwarded" : "forwarded, body broken off", upstream);
  if (!body_complete || is_upgrade) co_return false;
  co_return client_keep_alive;
}

Task<void> serve_connection(Connection& c) {
  for (int i = 0; i < kMaxRequestsPerConnection; ++i) {
    if (!co_await serve_one(c)) break;
  }
  c.ended = true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  gp::fuzz::Watchdog::start(argc, argv);
  fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const gp::fuzz::Watchdog::Scope watch(data, size);
  std::uint64_t seed = 0xcbf29ce484222325ULL;  // FNV-1a of the input: the read schedule
  for (std::size_t i = 0; i < size; ++i) seed = (seed ^ data[i]) * 0x100000001b3ULL;
  static constexpr std::size_t kReadSizes[] = {1, 3, 16, 512, 16384};
  asio::io_context ioc;
  Connection c(ioc, std::string_view(reinterpret_cast<const char*>(data), size),
               kReadSizes[seed % 5], seed);
  asio::co_spawn(ioc, serve_connection(c), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  ioc.run();
  if (!c.ended) finding("the connection's coroutine did not finish");
  return 0;
}
