#include "proxy/forwarding.hpp"

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
