#include "proxy/http_checks.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <string>

namespace http = boost::beast::http;
using gp::proxy::check_request_head;

namespace {

// Parses a request head the way the session does, then applies our checks.
struct Parsed {
  bool parsed = false;
  gp::proxy::HeadVerdict verdict;
  http::request_header<> head;
};

Parsed parse(const std::string& raw) {
  http::request_parser<http::empty_body> p;
  p.eager(false);
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(raw), ec);
  Parsed out;
  if (ec || !p.is_header_done()) return out;
  out.parsed = true;
  out.head = p.get().base();
  out.verdict = check_request_head(out.head);
  return out;
}

}  // namespace

TEST(HttpChecks, AcceptsPlainRequests) {
  auto r = parse("GET /a?b=1 HTTP/1.1\r\nHost: shop.example.com\r\n\r\n");
  ASSERT_TRUE(r.parsed);
  EXPECT_TRUE(r.verdict.ok()) << r.verdict.reason;
  auto chunked = parse("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_TRUE(chunked.parsed);
  EXPECT_TRUE(chunked.verdict.ok()) << chunked.verdict.reason;
  auto http10 = parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(http10.parsed);
  EXPECT_TRUE(http10.verdict.ok());
}

TEST(HttpChecks, RejectsTransferEncodingNotEndingInChunked) {
  for (const char* te : {"xchunked", "gzip", "chunked, gzip", "chunked, chunked", "identity"}) {
    auto r =
        parse(std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + te + "\r\n\r\n");
    ASSERT_TRUE(r.parsed) << te;
    EXPECT_EQ(r.verdict.status, http::status::bad_request) << te;
  }
}

TEST(HttpChecks, UnknownCodingBeforeChunkedIsNotImplemented) {
  auto r = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  ASSERT_TRUE(r.parsed);
  EXPECT_EQ(r.verdict.status, http::status::not_implemented);
}

TEST(HttpChecks, RejectsTransferEncodingInHttp10) {
  auto r = parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_TRUE(r.parsed);
  EXPECT_EQ(r.verdict.status, http::status::bad_request);
}

TEST(HttpChecks, RejectsMissingOrRepeatedHost) {
  auto missing = parse("GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(missing.parsed);
  EXPECT_EQ(missing.verdict.status, http::status::bad_request);
  EXPECT_STREQ(missing.verdict.reason, "missing Host");
  auto repeated = parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  ASSERT_TRUE(repeated.parsed);
  EXPECT_STREQ(repeated.verdict.reason, "repeated Host");
  auto bad = parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
  ASSERT_TRUE(bad.parsed);
  EXPECT_STREQ(bad.verdict.reason, "malformed Host");
}

TEST(HttpChecks, RewritesAbsoluteFormTarget) {
  auto r = parse("GET http://shop.example.com:8080/cart?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_TRUE(r.parsed);
  ASSERT_TRUE(r.verdict.ok()) << r.verdict.reason;
  EXPECT_EQ(r.head.target(), "/cart?x=1");
  EXPECT_EQ(r.head[http::field::host], "shop.example.com:8080");
  auto bare = parse("GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n");
  ASSERT_TRUE(bare.verdict.ok());
  EXPECT_EQ(bare.head.target(), "/");
  auto userinfo = parse("GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
  EXPECT_EQ(userinfo.verdict.status, http::status::bad_request);
}

TEST(HttpChecks, RejectsOddTargetsAndMethods) {
  EXPECT_EQ(parse("GET foo HTTP/1.1\r\nHost: x\r\n\r\n").verdict.status, http::status::bad_request);
  EXPECT_EQ(parse("GET * HTTP/1.1\r\nHost: x\r\n\r\n").verdict.status, http::status::bad_request);
  EXPECT_TRUE(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").verdict.ok());
  EXPECT_EQ(parse("CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n").verdict.status,
            http::status::method_not_allowed);
}

TEST(HttpChecks, RejectsUnknownExpectations) {
  EXPECT_TRUE(
      parse("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
          .verdict.ok());
  EXPECT_EQ(parse("PUT / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 1\r\n\r\n")
                .verdict.status,
            http::status::expectation_failed);
}

TEST(HttpChecks, Idempotency) {
  EXPECT_TRUE(gp::proxy::is_idempotent(http::verb::get));
  EXPECT_TRUE(gp::proxy::is_idempotent(http::verb::put));
  EXPECT_FALSE(gp::proxy::is_idempotent(http::verb::post));
  EXPECT_FALSE(gp::proxy::is_idempotent(http::verb::patch));
}
