#include "proxy/http/forwarding.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>

namespace http = boost::beast::http;

TEST(Forwarding, StripsHopByHopAndFieldsNamedByConnection) {
  http::fields f;
  f.set(http::field::host, "shop");
  f.set(http::field::connection, "keep-alive, X-Foo, host");
  f.set("x-foo", "1");
  f.set(http::field::keep_alive, "timeout=5");
  f.set(http::field::proxy_connection, "keep-alive");
  f.set(http::field::te, "trailers");
  f.set(http::field::trailer, "x-t");
  f.set(http::field::transfer_encoding, "chunked");
  f.set(http::field::upgrade, "websocket");
  f.set(http::field::content_length, "5");
  f.set("x-keep", "yes");
  gp::proxy::strip_hop_by_hop(f);
  EXPECT_EQ(f.count("x-foo"), 0u);
  for (auto name : {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
                    http::field::te, http::field::trailer, http::field::transfer_encoding,
                    http::field::upgrade, http::field::content_length})
    EXPECT_EQ(f.count(name), 0u) << http::to_string(name);
  EXPECT_EQ(f[http::field::host], "shop");  // a client cannot make us drop Host
  EXPECT_EQ(f["x-keep"], "yes");
}

TEST(Forwarding, AppendsToForwardedFor) {
  http::fields f;
  f.insert("X-Forwarded-For", "1.2.3.4");
  f.insert("X-Forwarded-For", " 5.6.7.8 ");
  gp::proxy::add_forwarded(f, "127.0.0.1", false);
  EXPECT_EQ(f.count("x-forwarded-for"), 1u);
  EXPECT_EQ(f["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 127.0.0.1");
  EXPECT_EQ(f["x-forwarded-proto"], "http");

  http::fields g;
  g.set("x-forwarded-proto", "https");  // a client's claim is replaced by what we saw
  gp::proxy::add_forwarded(g, "::1", false);
  EXPECT_EQ(g["x-forwarded-for"], "::1");
  EXPECT_EQ(g["x-forwarded-proto"], "http");
}

namespace {

using gp::proxy::BodyFraming;
using gp::proxy::RequestRewrite;
using gp::proxy::ResponseRewrite;

// A client's request head full of what must not reach the upstream.
http::request_header<> client_request() {
  http::request_header<> h;
  h.method(http::verb::post);
  h.target("/cart");
  h.version(10);
  h.set(http::field::host, "shop");
  h.set(http::field::connection, "keep-alive, X-Hop");
  h.set("x-hop", "1");
  h.set(http::field::keep_alive, "timeout=5");
  h.set(http::field::te, "trailers");
  h.set(http::field::transfer_encoding, "chunked");
  h.set(http::field::content_length, "99");
  h.set(http::field::expect, "100-continue");
  h.set("x-forwarded-for", "9.9.9.9");
  h.set("x-forwarded-proto", "https");
  h.set("x-gray-version", "canary");  // a client cannot pick its cohort
  h.set("x-app", "kept");
  return h;
}

std::size_t framing_fields(const http::fields& f) {
  return f.count(http::field::transfer_encoding) + f.count(http::field::content_length);
}

}  // namespace

TEST(RewriteRequestHead, HopByHopOutForwardedAndVersionIn) {
  auto h = client_request();
  RequestRewrite r;
  r.peer_ip = "10.0.0.7";
  r.tls = true;
  r.version_label = "stable";
  gp::proxy::rewrite_request_head(h, r);
  for (auto name : {http::field::connection, http::field::keep_alive, http::field::te,
                    http::field::expect, http::field::upgrade})
    EXPECT_EQ(h.count(name), 0u) << http::to_string(name);
  EXPECT_EQ(h.count("x-hop"), 0u);
  EXPECT_EQ(h["x-forwarded-for"], "9.9.9.9, 10.0.0.7");
  EXPECT_EQ(h["x-forwarded-proto"], "https");
  EXPECT_EQ(h.count("x-gray-version"), 1u);
  EXPECT_EQ(h["x-gray-version"], "stable");
  EXPECT_EQ(h.version(), 11u);
  EXPECT_EQ(h.method(), http::verb::post);
  EXPECT_EQ(h.target(), "/cart");
  EXPECT_EQ(h[http::field::host], "shop");
  EXPECT_EQ(h["x-app"], "kept");
  EXPECT_EQ(framing_fields(h), 0u);  // no body as parsed: no framing field at all
}

// Whatever the client sent, exactly the framing the parser established goes on.
TEST(RewriteRequestHead, ExactlyOneFramingField) {
  {
    auto h = client_request();
    RequestRewrite r;
    r.peer_ip = "1.1.1.1";
    r.chunked = true;
    gp::proxy::rewrite_request_head(h, r);
    EXPECT_EQ(framing_fields(h), 1u);
    EXPECT_EQ(h[http::field::transfer_encoding], "chunked");
  }
  {
    auto h = client_request();
    RequestRewrite r;
    r.peer_ip = "1.1.1.1";
    r.content_length = 42;
    gp::proxy::rewrite_request_head(h, r);
    EXPECT_EQ(framing_fields(h), 1u);
    EXPECT_EQ(h[http::field::content_length], "42");
  }
  {
    auto h = client_request();
    RequestRewrite r;
    r.peer_ip = "1.1.1.1";
    r.content_length = 0;  // declared empty: still declared
    gp::proxy::rewrite_request_head(h, r);
    EXPECT_EQ(framing_fields(h), 1u);
    EXPECT_EQ(h[http::field::content_length], "0");
  }
}

http::request_header<> upgrade_request(std::string_view protocol) {
  http::request_header<> h;
  h.method(http::verb::get);
  h.target("/ws");
  h.version(11);
  h.set(http::field::host, "shop");
  h.set(http::field::connection, "Upgrade");
  h.set(http::field::upgrade, protocol);
  return h;
}

TEST(RewriteRequestHead, WebSocketUpgradeIsForwarded) {
  auto h = upgrade_request("websocket");
  h.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  RequestRewrite r;
  r.peer_ip = "1.1.1.1";
  // As the session does: a view into the head's own Upgrade field, which the rewrite erases.
  r.upgrade = gp::proxy::requested_upgrade(h, true);
  ASSERT_EQ(r.upgrade, "websocket");
  gp::proxy::rewrite_request_head(h, r);
  EXPECT_EQ(h.count(http::field::connection), 1u);
  EXPECT_EQ(h[http::field::connection], "upgrade");
  EXPECT_EQ(h.count(http::field::upgrade), 1u);
  EXPECT_EQ(h[http::field::upgrade], "websocket");
  EXPECT_EQ(h[http::field::sec_websocket_key], "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST(RequestedUpgrade, NeedsConnectionUpgradeOneFieldAndHttp11) {
  const auto h = upgrade_request(" websocket ");
  EXPECT_EQ(gp::proxy::requested_upgrade(h, true), "websocket");
  EXPECT_EQ(gp::proxy::requested_upgrade(h, false), "");  // Upgrade alone is not a request

  auto two = upgrade_request("websocket");
  two.insert(http::field::upgrade, "foo");
  EXPECT_EQ(gp::proxy::requested_upgrade(two, true), "");

  auto none = upgrade_request("x");
  none.erase(http::field::upgrade);
  EXPECT_EQ(gp::proxy::requested_upgrade(none, true), "");

  auto old = upgrade_request("websocket");
  old.version(10);
  EXPECT_EQ(gp::proxy::requested_upgrade(old, true), "");
}

TEST(RequestedUpgrade, H2cIsRefusedAndItsSettingsDropped) {
  for (const char* protocol : {"h2c", "H2C", "websocket, h2c"}) {
    auto h = upgrade_request(protocol);
    h.set(http::field::http2_settings, "AAMAAABkAAQAAP__");
    EXPECT_EQ(gp::proxy::requested_upgrade(h, true), "") << protocol;
    RequestRewrite r;
    r.peer_ip = "1.1.1.1";
    r.upgrade = gp::proxy::requested_upgrade(h, true);
    gp::proxy::rewrite_request_head(h, r);
    EXPECT_EQ(h.count(http::field::upgrade), 0u) << protocol;
    EXPECT_EQ(h.count(http::field::connection), 0u) << protocol;
    EXPECT_EQ(h.count(http::field::http2_settings), 0u) << protocol;
  }
}

TEST(EnsureHost, SetsHostOnlyWhenMissing) {
  http::request_header<> h;
  h.version(10);
  gp::proxy::ensure_host(h, "10.1.2.3:8080");
  EXPECT_EQ(h[http::field::host], "10.1.2.3:8080");

  http::request_header<> has;
  has.set(http::field::host, "shop");
  gp::proxy::ensure_host(has, "10.1.2.3:8080");
  EXPECT_EQ(has.count(http::field::host), 1u);
  EXPECT_EQ(has[http::field::host], "shop");
}

TEST(ResponseFraming, Table) {
  using gp::proxy::response_framing;
  const auto get = http::verb::get;
  const auto nolen = std::optional<std::uint64_t>{};
  struct Case {
    const char* why;
    http::verb method;
    unsigned status;
    bool chunked;
    std::optional<std::uint64_t> length;
    unsigned client_version;
    BodyFraming want;
  };
  const Case cases[] = {
      {"HEAD with a length", http::verb::head, 200, false, 10u, 11, BodyFraming::none},
      {"HEAD chunked", http::verb::head, 200, true, nolen, 10, BodyFraming::none},
      {"100", get, 100, false, nolen, 11, BodyFraming::none},
      {"101", get, 101, false, nolen, 11, BodyFraming::none},
      {"103", get, 103, false, nolen, 10, BodyFraming::none},
      {"204 with a length", get, 204, false, 8u, 11, BodyFraming::none},
      {"304 chunked", get, 304, true, nolen, 11, BodyFraming::none},
      {"304 no length, 1.0 client", get, 304, false, nolen, 10, BodyFraming::none},
      {"length", get, 200, false, 10u, 11, BodyFraming::length},
      {"length, 1.0 client", http::verb::post, 500, false, 10u, 10, BodyFraming::length},
      {"Content-Length: 0", get, 200, false, 0u, 11, BodyFraming::none},
      {"chunked, 1.1 client", get, 200, true, nolen, 11, BodyFraming::chunked},
      {"chunked, 1.0 client", get, 200, true, nolen, 10, BodyFraming::close},
      {"no length, 1.1 client", get, 200, false, nolen, 11, BodyFraming::chunked},
      {"no length, 1.0 client", get, 404, false, nolen, 10, BodyFraming::close},
  };
  for (const auto& c : cases)
    EXPECT_EQ(response_framing(c.method, c.status, c.chunked, c.length, c.client_version), c.want)
        << c.why;
}

http::response_header<> upstream_response(unsigned status) {
  http::response_header<> h;
  h.result(status);
  h.version(11);
  h.set(http::field::connection, "keep-alive, X-Hop");
  h.set("x-hop", "1");
  h.set(http::field::keep_alive, "timeout=5");
  h.set(http::field::transfer_encoding, "chunked");
  h.set(http::field::content_length, "10");
  h.set("x-app", "kept");
  return h;
}

TEST(RewriteResponseHead, HeadAnd304KeepTheirLength) {
  for (unsigned status : {200u, 304u}) {
    auto h = upstream_response(status);
    ResponseRewrite r;
    r.framing = BodyFraming::none;
    r.content_length = 10;
    gp::proxy::rewrite_response_head(h, r);
    EXPECT_EQ(h[http::field::content_length], "10") << status;
    EXPECT_EQ(h.count(http::field::transfer_encoding), 0u) << status;
    EXPECT_EQ(h.count("x-hop"), 0u) << status;
    EXPECT_EQ(h.count(http::field::keep_alive), 0u) << status;
    EXPECT_EQ(h["x-app"], "kept") << status;
  }
}

// A 200 with Content-Length: 0 needs it: without, a 1.1 client would read to the close.
TEST(RewriteResponseHead, EmptyBodyKeepsContentLengthZero) {
  auto h = upstream_response(200);
  ResponseRewrite r;
  r.framing = gp::proxy::response_framing(http::verb::get, 200, false, 0u, 11);
  r.content_length = 0;
  gp::proxy::rewrite_response_head(h, r);
  EXPECT_EQ(h.count(http::field::content_length), 1u);
  EXPECT_EQ(h[http::field::content_length], "0");
  EXPECT_EQ(h.count(http::field::transfer_encoding), 0u);
}

TEST(RewriteResponseHead, NoContentAndInterimCarryNoLength) {
  for (unsigned status : {204u, 103u}) {
    auto h = upstream_response(status);
    ResponseRewrite r;
    r.framing = BodyFraming::none;
    r.content_length = 10;
    gp::proxy::rewrite_response_head(h, r);
    EXPECT_EQ(framing_fields(h), 0u) << status;
  }
}

TEST(RewriteResponseHead, LengthChunkedAndClose) {
  {
    auto h = upstream_response(200);
    ResponseRewrite r;
    r.framing = BodyFraming::length;
    r.content_length = 10;
    gp::proxy::rewrite_response_head(h, r);
    EXPECT_EQ(framing_fields(h), 1u);
    EXPECT_EQ(h[http::field::content_length], "10");
  }
  {
    auto h = upstream_response(200);
    ResponseRewrite r;
    r.framing = BodyFraming::chunked;
    gp::proxy::rewrite_response_head(h, r);
    EXPECT_EQ(framing_fields(h), 1u);
    EXPECT_EQ(h[http::field::transfer_encoding], "chunked");
  }
  {
    auto h = upstream_response(200);
    ResponseRewrite r;
    r.client_version = 10;
    r.keep_alive = false;
    r.framing = BodyFraming::close;
    gp::proxy::rewrite_response_head(h, r);
    EXPECT_EQ(framing_fields(h), 0u);  // the close ends it
    EXPECT_EQ(h.version(), 10u);
  }
}

TEST(RewriteResponseHead, ClientVersionAndConnection) {
  struct Case {
    unsigned version;
    bool keep_alive;
    const char* connection;  // nullptr: no Connection field (the version's default)
  };
  const Case cases[] = {
      {11, true, nullptr},
      {11, false, "close"},
      {10, true, "keep-alive"},
      {10, false, nullptr},
  };
  for (const auto& c : cases) {
    auto h = upstream_response(200);
    ResponseRewrite r;
    r.client_version = c.version;
    r.keep_alive = c.keep_alive;
    r.framing = BodyFraming::length;
    r.content_length = 10;
    gp::proxy::rewrite_response_head(h, r);
    const std::string what = std::to_string(c.version) + (c.keep_alive ? " keep" : " close");
    EXPECT_EQ(h.version(), c.version) << what;
    if (c.connection) {
      EXPECT_EQ(h.count(http::field::connection), 1u) << what;
      EXPECT_EQ(h[http::field::connection], c.connection) << what;
    } else {
      EXPECT_EQ(h.count(http::field::connection), 0u) << what;
    }
  }
}

TEST(RewriteResponseHead, SwitchingProtocolsKeepsUpgrade) {
  http::response_header<> h;
  h.result(http::status::switching_protocols);
  h.version(11);
  h.set(http::field::connection, "Upgrade");
  h.set(http::field::upgrade, "websocket");
  h.set(http::field::sec_websocket_accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  ResponseRewrite r;
  r.framing = BodyFraming::none;
  r.upgrade = h[http::field::upgrade];  // a view into the field the rewrite erases first
  gp::proxy::rewrite_response_head(h, r);
  EXPECT_EQ(h.result(), http::status::switching_protocols);
  EXPECT_EQ(h[http::field::connection], "upgrade");
  EXPECT_EQ(h[http::field::upgrade], "websocket");
  EXPECT_EQ(h[http::field::sec_websocket_accept], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(framing_fields(h), 0u);
}
