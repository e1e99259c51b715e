#include "proxy/http/http_checks.hpp"

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

// Anything but exactly one "chunked" is refused with 400, lists included (as HAProxy):
// a coding the upstream might apply differently is a framing it might read differently.
TEST(HttpChecks, RejectsEveryTransferEncodingButAFinalChunked) {
  for (const char* te : {"gzip, chunked", "chunked;q=1", "chunked,", ", chunked", "\"chunked\"",
                         "chunk", "CHUNKED, identity"}) {
    auto r =
        parse(std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + te + "\r\n\r\n");
    ASSERT_TRUE(r.parsed) << te;
    EXPECT_EQ(r.verdict.status, http::status::bad_request) << te;
  }
  // Repeated in two fields: Beast refuses the second "chunked" itself, not a coding
  // before it, so the check sees both fields.
  auto two = parse(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
      "chunked\r\n\r\n");
  ASSERT_TRUE(two.parsed);
  EXPECT_STREQ(two.verdict.reason, "repeated Transfer-Encoding");
  // Optional whitespace around the value and any letter case are fine (RFC 9110 5.5).
  for (const char* te : {"chunked", "Chunked", " chunked\t", "\tCHUNKED"}) {
    auto r =
        parse(std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:") + te + "\r\n\r\n");
    ASSERT_TRUE(r.parsed) << te;
    EXPECT_TRUE(r.verdict.ok()) << te << ": " << r.verdict.reason;
  }
}

TEST(HttpChecks, ContentLengthMustBeOneRunOfDigits) {
  // Beast accepts a list of equal values; a peer may take only the first, or refuse it.
  for (const char* cl : {"5, 5", "5,5", "5 5"}) {
    auto r =
        parse(std::string("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ") + cl + "\r\n\r\nhello");
    if (!r.parsed) continue;  // refused by Beast already: just as good
    EXPECT_EQ(r.verdict.status, http::status::bad_request) << cl;
  }
  auto same = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
  ASSERT_TRUE(same.parsed);
  EXPECT_STREQ(same.verdict.reason, "repeated Content-Length");
  EXPECT_TRUE(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\n").verdict.ok());
}

// Signed 64-bit readers (Java, Go, nginx's off_t) cannot hold more: the next hop might read a
// different length than the proxy did.
TEST(HttpChecks, ContentLengthAbove2To63Minus1IsRefused) {
  auto head = [](const char* cl) {
    return std::string("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ") + cl + "\r\n\r\n";
  };
  // As the proxy's parser: no body limit of Beast's own (the configured one applies later).
  auto verdict = [&](const char* cl) {
    http::request_parser<http::empty_body> p;
    p.eager(false);
    p.body_limit(boost::none);
    boost::beast::error_code ec;
    const std::string raw = head(cl);
    p.put(boost::asio::buffer(raw), ec);
    EXPECT_FALSE(ec) << cl << ": " << ec.message();  // Beast takes any 64-bit value
    http::request_header<> h = p.get().base();
    return check_request_head(h);
  };
  for (const char* cl : {"9223372036854775808", "18446744073709551615", "0009223372036854775808"}) {
    const auto v = verdict(cl);
    EXPECT_EQ(v.status, http::status::bad_request) << cl;
    EXPECT_STREQ(v.reason, "Content-Length too large") << cl;
  }
  for (const char* cl : {"9223372036854775807", "0009223372036854775807", "0"})
    EXPECT_TRUE(verdict(cl).ok()) << cl;
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

namespace {

// A response head parsed the way the session does, then checked.
gp::proxy::HeadVerdict response_verdict(const std::string& raw, bool* parsed = nullptr) {
  http::response_parser<http::empty_body> p;
  p.eager(false);
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(raw), ec);
  if (parsed) *parsed = !ec && p.is_header_done();
  if (ec || !p.is_header_done()) return {http::status::bad_request, "unparsed"};
  return gp::proxy::check_response_head(p.get().base());
}

}  // namespace

TEST(HttpChecks, ResponseFramingFollowsTheRequestRules) {
  EXPECT_TRUE(response_verdict("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").ok());
  EXPECT_TRUE(response_verdict("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").ok());
  EXPECT_TRUE(response_verdict("HTTP/1.0 200 OK\r\n\r\n").ok());  // close-delimited
  struct Case {
    const char* head;
    const char* reason;
  };
  for (const Case& c : {
           Case{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                "Transfer-Encoding other than chunked"},
           Case{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "Transfer-Encoding other than chunked"},
           Case{"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: "
                "chunked\r\n\r\n",
                "repeated Transfer-Encoding"},
           Case{"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding in HTTP/1.0"},
           Case{"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", "malformed Content-Length"},
       }) {
    bool parsed = false;
    auto v = response_verdict(c.head, &parsed);
    ASSERT_TRUE(parsed) << c.head;
    EXPECT_FALSE(v.ok()) << c.head;
    EXPECT_STREQ(v.reason, c.reason) << c.head;
  }
  // Both framings, or differing lengths: Beast refuses them before the check.
  bool parsed = true;
  response_verdict("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                   &parsed);
  EXPECT_FALSE(parsed);
  response_verdict("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", &parsed);
  EXPECT_FALSE(parsed);
}

TEST(HttpChecks, RawHeadRejectsFoldsAndControlCharacters) {
  using gp::proxy::check_raw_head;
  EXPECT_TRUE(check_raw_head("GET / HTTP/1.1\r\nHost: x\r\nX-A: a b\t c\r\n\r\n").ok());
  EXPECT_TRUE(check_raw_head("HTTP/1.1 200 OK\r\nX: http://a:b\r\n\r\n").ok());
  struct Case {
    std::string head;
    const char* reason;
  };
  for (const Case& c : {
           Case{"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "obs-fold"},
           Case{"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", "obs-fold"},
           Case{"GET / HTTP/1.1\r\n Host: x\r\n\r\n", "obs-fold"},
           Case{std::string("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 36), "NUL in head"},
           Case{"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", "bare CR in head"},
           Case{"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", "bare LF in head"},
           Case{"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "whitespace before colon"},
           Case{"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", "whitespace before colon"},
       }) {
    auto v = check_raw_head(c.head);
    EXPECT_STREQ(v.reason, c.reason) << c.head;
    EXPECT_EQ(v.status, http::status::bad_request) << c.head;
  }
}

TEST(HttpChecks, RequestLineLength) {
  using gp::proxy::request_line_length;
  EXPECT_EQ(request_line_length("GET / HTTP/1.1\r\nHost: x\r\n"), 14u);
  EXPECT_EQ(request_line_length("GET / HTTP/1.1\nHost"), 14u);
  EXPECT_EQ(request_line_length("GET /aaaa"), 9u);  // still arriving: all of it so far
  EXPECT_EQ(request_line_length(""), 0u);
}

TEST(HttpChecks, RequestLineVersion) {
  using gp::proxy::request_line_version;
  const auto v20 = request_line_version("GET / HTTP/2.0\r\nHost: x\r\n\r\n");
  EXPECT_EQ(v20.major, 2);
  EXPECT_EQ(v20.minor, 0);
  const std::string_view line12 = "GET /a HTTP/1.2\r\n";
  const auto v12 = request_line_version(line12);
  EXPECT_EQ(v12.major, 1);
  EXPECT_EQ(v12.minor, 2);
  EXPECT_EQ(line12[v12.minor_offset], '2');
  EXPECT_EQ(request_line_version("GET / HTTP/1.1\n").minor, 1);
  EXPECT_FALSE(request_line_version("GET / HTTP/2.0").known());      // line not complete
  EXPECT_FALSE(request_line_version("GET / HTXP/2.0\r\n").known());  // not a version
  EXPECT_FALSE(request_line_version("GET / HTTP/20\r\n").known());
  EXPECT_FALSE(request_line_version("GET / HTTP/2.0 \r\n").known());
  EXPECT_FALSE(request_line_version(" HTTP/2.0\r\n").known());     // no method or target
  EXPECT_FALSE(request_line_version("GET HTTP/2.0\r\n").known());  // no target
}

TEST(HttpChecks, PrecheckRequestLine) {
  using gp::proxy::precheck_request_line;
  using gp::proxy::WireError;
  std::string minor = "GET / HTTP/1.7\r\nHost: x\r\n\r\n";
  EXPECT_FALSE(precheck_request_line(minor.data(), minor.size(), 100));
  EXPECT_EQ(minor, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");  // read as HTTP/1.1
  std::string major = "GET / HTTP/2.0\r\n";
  EXPECT_EQ(precheck_request_line(major.data(), major.size(), 100), WireError::unsupported_version);
  std::string line = "GET /" + std::string(200, 'a');  // still arriving
  EXPECT_EQ(precheck_request_line(line.data(), line.size(), 100), WireError::request_line_too_long);
  std::string ok = "GET / HTTP/1.0\r\n";
  EXPECT_FALSE(precheck_request_line(ok.data(), ok.size(), 100));
  EXPECT_EQ(ok, "GET / HTTP/1.0\r\n");
}

TEST(HttpChecks, WireErrorsAreErrorCodes) {
  const boost::system::error_code ec = gp::proxy::WireError::request_line_too_long;
  EXPECT_EQ(ec.category().name(), std::string("grayproxy.wire"));
  EXPECT_EQ(ec.message(), "request line too long");
  EXPECT_TRUE(ec == gp::proxy::WireError::request_line_too_long);
  EXPECT_FALSE(ec == gp::proxy::WireError::invalid_response);
}
