// libFuzzer target for the downstream request path, without sockets. The input is what a
// client sends on one connection. It goes through the same steps as proxy/session.cpp's
// serve_one, request after request while the connection would stay open:
//   read_head (header_limit, put() loop, kMaxHeaderFields) -> check_request_head -> route
//   match -> split decision -> strip_hop_by_hop / add_forwarded / framing rewrite ->
//   serializer (head, then the body streamed through a small buffer_body buffer as
//   proxy/relay.hpp does).
// Socket reads are simulated: each "read_some" returns a piece whose size is chosen by a
// PRNG seeded from the input, so the same input always splits the same way.
//
// Oracles (a violation aborts, i.e. is a finding):
//   - the rewritten head re-parses with a fresh parser and carries at most one framing header
//     (never both Content-Length and Transfer-Encoding), the one matching the client's body;
//   - no hop-by-hop field survives the rewrite;
//   - what would be written upstream for a complete request parses as exactly one request
//     whose body is the body the proxy read from the client, with no bytes left over
//     (a request-smuggling check); for a broken-off body, a prefix of one request.
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/dynamic_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "proxy/forwarding.hpp"
#include "proxy/http_checks.hpp"
#include "routing/random_source.hpp"
#include "routing/route_table.hpp"
#include "routing/split.hpp"
#include "watchdog.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

// As proxy/session.cpp.
constexpr std::ptrdiff_t kMaxHeaderFields = 100;
constexpr std::size_t kHeaderLimit = 8192;          // limits.max_request_header_bytes
constexpr std::size_t kLineLimit = 8192;            // limits.max_request_line_bytes
constexpr std::size_t kReadSome = 16384;            // read_head's largest read
constexpr std::size_t kRelayReadChunk = 32 * 1024;  // proxy/relay.hpp
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

// splitmix64, for the simulated read sizes.
struct Prng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

// The client socket: bytes of the input, handed out in pieces.
struct Client {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t pos = 0;
  Prng prng;

  bool eof() const { return pos == size; }
  // read_some into a buffer with room for `room` bytes; 0 = end of stream.
  std::size_t read_some(beast::flat_buffer& b, std::size_t room) {
    if (room == 0 || pos == size) return 0;
    std::size_t n = std::min(room, size - pos);
    const std::uint64_t r = prng.next();
    if (r % 4 == 0) n = std::min<std::size_t>(n, 1 + (r >> 8) % 16);  // a small TCP segment
    auto dst = b.prepare(n);
    std::memcpy(dst.data(), data + pos, n);
    b.commit(n);
    pos += n;
    return n;
  }
};

// proxy/session.cpp read_head, with the socket read replaced by Client::read_some.
beast::error_code read_head(Client& c, beast::flat_buffer& buffer,
                            http::request_parser<http::buffer_body>& p, std::size_t limit) {
  std::size_t consumed = 0;
  for (;;) {
    if (buffer.size() > 0) {
      char* data = static_cast<char*>(buffer.data().data());
      const std::string_view received(data, buffer.size());
      if (consumed == 0) {
        if (auto ec = gp::proxy::precheck_request_line(data, buffer.size(), kLineLimit)) return ec;
      }
      beast::error_code ec;
      const std::size_t n = p.put(buffer.data(), ec);
      if (!ec && p.is_header_done() && consumed == 0 &&
          !gp::proxy::check_raw_head(received.substr(0, n)).ok())
        return gp::proxy::HeadError::invalid_head;
      buffer.consume(n);
      consumed += n;
      if (!ec && p.is_header_done()) {
        if (std::distance(p.get().begin(), p.get().end()) > kMaxHeaderFields)
          return http::error::header_limit;
        return {};
      }
      if (ec && ec != http::error::need_more) return ec;
    }
    if (consumed + buffer.size() >= limit) return http::error::header_limit;
    const std::size_t room = std::min<std::size_t>(limit - consumed - buffer.size(), kReadSome);
    if (c.read_some(buffer, room) == 0)
      return consumed + buffer.size() == 0 ? http::error::end_of_stream
                                           : http::error::partial_message;
  }
}

// http::read(stream, buffer, parser) for a parser whose buffer_body has room: reads and parses
// until the message is done or the body buffer is full (need_buffer) or an error.
beast::error_code read_body_piece(Client& c, beast::flat_buffer& buffer,
                                  http::request_parser<http::buffer_body>& p) {
  if (p.is_done()) return {};
  for (int guard = 0;; ++guard) {
    if (guard > 1'000'000) finding("body read loop does not progress");
    if (buffer.size() > 0) {
      beast::error_code ec;
      const std::size_t n = p.put(buffer.data(), ec);
      buffer.consume(n);
      if (ec != http::error::need_more) {
        if (ec) return ec;  // need_buffer included
        if (p.is_done()) return {};
        if (n == 0) finding("parser consumed nothing and wants nothing");
        continue;
      }
    }
    const std::size_t room = buffer.capacity() - buffer.size() > 0
                                 ? buffer.capacity() - buffer.size()
                                 : 512;  // beast::read_size
    if (c.read_some(buffer, std::min<std::size_t>(room, 65536)) == 0) {
      beast::error_code ec;
      p.put_eof(ec);
      if (ec) return ec;
      return p.is_done() ? beast::error_code{} : http::error::partial_message;
    }
  }
}

// http::write(stream, serializer) into a string.
template <class Serializer>
beast::error_code write_all(std::string& out, Serializer& sr, bool header_only) {
  beast::error_code ec;
  do {
    sr.next(ec, [&](beast::error_code&, auto const& buffers) {
      std::size_t n = 0;
      for (auto b : beast::buffers_range_ref(buffers)) {
        out.append(static_cast<const char*>(b.data()), b.size());
        n += b.size();
      }
      sr.consume(n);
    });
    if (ec) return ec;
  } while (header_only ? !sr.is_header_done() : !sr.is_done());
  return ec;
}

// The head as the upstream gets it, re-parsed on its own.
void check_rewritten_head(std::string const& head_bytes, bool chunked,
                          boost::optional<std::uint64_t> content_length,
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
    if (cl != 1 || p.content_length() != content_length)
      finding("Content-Length lost or changed by the rewrite", head_bytes);
  } else if (cl + te != 0) {
    finding("framing header added to a request without a body", head_bytes);
  }
  for (auto f : {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
                 http::field::te, http::field::trailer, http::field::upgrade, http::field::expect})
    if (h.count(f) != 0) finding("hop-by-hop field forwarded", head_bytes);
  if (h.count(http::field::host) > 1) finding("several Host fields forwarded", head_bytes);
  if (h.count("x-forwarded-for") != 1 || h.count("x-gray-version") != 1)
    finding("X-Forwarded-For / X-Gray-Version not set exactly once", head_bytes);
  if (h.method_string() != sent.method_string() || h.target() != sent.target() || h.version() != 11)
    finding("request line changed by serialization", head_bytes);
}

// Serves one request; returns whether the connection would stay open for another.
bool serve_one(Client& c, beast::flat_buffer& buffer, Prng& prng, gp::routing::RandomSource& rng) {
  const Fixture& fx = fixture();
  std::optional<http::request_parser<http::buffer_body>> req_p;
  req_p.emplace();
  req_p->header_limit(kHeaderLimit);
  req_p->body_limit(std::numeric_limits<std::uint64_t>::max());
  if (auto ec = read_head(c, buffer, *req_p, kHeaderLimit)) {
    trace("head rejected", ec.message());
    return false;  // error reply (or nothing), close
  }

  auto& req = req_p->get();
  const bool has_body = req_p->chunked() || req_p->content_length().value_or(0) > 0;
  const bool can_keep_alive = req.keep_alive() && !has_body;

  if (auto verdict = gp::proxy::check_request_head(req.base()); !verdict.ok()) {
    trace("check_request_head", verdict.reason);
    return false;
  }

  const int route_index = fx.table->match(req[http::field::host], req.target(), req.base());
  if (route_index < -1 || route_index >= static_cast<int>(fx.cfg.routes.size()))
    finding("route index out of range");
  if (route_index < 0) {
    trace("no route");
    return can_keep_alive;  // 404
  }
  auto const& route = fx.cfg.routes[route_index];
  const auto& splitter = fx.splitters[route_index];

  std::string new_cookie;
  gp::config::Version version = gp::config::Version::stable;
  if (!route.canary.empty() && splitter) {
    gp::routing::SplitInput in{req.base(), kPeer};
    auto d = splitter->decide(in, route.split->weight_bp, new_cookie, rng);
    if (d.bucket > 10000) finding("bucket out of range");
    version = d.version;
    if (!new_cookie.empty()) {
      const std::string set_cookie = splitter->set_cookie_value(new_cookie);
      if (set_cookie.find_first_of("\r\n") != std::string::npos) finding("CRLF in Set-Cookie");
    }
  }

  // The rewrite, as in serve_one.
  const bool client_keep_alive = req.keep_alive();
  const bool body_chunked = req_p->chunked();
  const auto content_length = req_p->content_length();
  gp::proxy::strip_hop_by_hop(req);
  req.erase(http::field::expect);
  gp::proxy::add_forwarded(req, kPeer, false);
  req.set("x-gray-version", gp::config::to_string(version));
  req.version(11);
  if (body_chunked)
    req.chunked(true);
  else if (content_length)
    req.content_length(*content_length);

  // The head alone, re-parsed.
  {
    http::request<http::empty_body> head_only{req.base()};
    http::serializer<true, http::empty_body> hsr{head_only};
    hsr.split(true);
    std::string head_bytes;
    if (write_all(head_bytes, hsr, true)) finding("head serialization failed");
    check_rewritten_head(head_bytes, body_chunked, content_length, req.base());
  }

  // What goes upstream: head, then the body relayed through a small buffer.
  std::string upstream;
  std::string body_in;  // the body as the proxy parsed it from the client
  bool body_complete = true;
  http::serializer<true, http::buffer_body> sr{req};
  if (req_p->is_done()) {
    req.body().data = nullptr;
    req.body().size = 0;
    req.body().more = false;
    if (auto ec = write_all(upstream, sr, false)) finding("bodiless write failed");
  } else {
    static constexpr std::size_t kCapacities[] = {1, 7, 64, 4096};
    const std::size_t capacity = kCapacities[prng.next() % 4];
    std::unique_ptr<char[]> buf(new char[capacity]);
    auto& body = req.body();
    if (buffer.capacity() - buffer.size() < kRelayReadChunk)
      buffer.reserve(buffer.size() + kRelayReadChunk);
    for (int guard = 0;; ++guard) {
      if (guard > 10'000'000) finding("relay loop does not progress");
      if (!req_p->is_done()) {
        body.data = buf.get();
        body.size = capacity;
        auto ec = read_body_piece(c, buffer, *req_p);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
          body_complete = false;  // session drops both connections
          break;
        }
        const std::size_t got = capacity - body.size;
        body_in.append(buf.get(), got);
        body.size = got;
        body.data = got ? buf.get() : nullptr;
        body.more = !req_p->is_done();
      } else {
        body.data = nullptr;
        body.size = 0;
        body.more = false;
      }
      auto ec = write_all(upstream, sr, false);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) finding("relay write failed");
      if (req_p->is_done() && sr.is_done()) break;
    }
  }

  // The upstream's view of the bytes: exactly one request, with the body the proxy read.
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
      if (beast::buffers_to_string(up.get().body().data()) != body_in)
        finding("upstream body differs from the client's", upstream);
    } else {
      if (ec && ec != http::error::need_more)
        finding("truncated upstream request does not parse", upstream);
      if (up.is_done() && up.get().body().size() != 0 && n != upstream.size())
        finding("truncated upstream request holds a second request", upstream);
    }
  }
  trace(body_complete ? "forwarded" : "forwarded, body broken off", upstream);
  if (!body_complete) return false;
  return client_keep_alive;
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
  Client c{data, size, 0, Prng{seed}};
  Prng prng{seed ^ 0x5bd1e995};
  gp::routing::RandomSource rng(seed);
  beast::flat_buffer buffer;
  for (int i = 0; i < kMaxRequestsPerConnection; ++i) {
    if (buffer.size() == 0 && c.eof()) break;
    if (!serve_one(c, buffer, prng, rng)) break;
  }
  return 0;
}
