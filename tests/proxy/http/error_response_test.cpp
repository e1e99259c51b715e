#include "proxy/http/error_response.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

namespace gp::proxy {
namespace {

namespace http = boost::beast::http;

// Parses the bytes as a client would (a HEAD request's client skips the body); `consumed`:
// how many bytes the complete response took.
struct Parsed {
  http::response<http::string_body> msg;
  std::size_t consumed = 0;
  bool done = false;
};

Parsed parse(const std::string& bytes, bool head_request) {
  http::response_parser<http::string_body> p;
  p.eager(true);
  p.skip(head_request);
  boost::beast::error_code ec;
  Parsed out;
  out.consumed = p.put(boost::asio::buffer(bytes), ec);
  EXPECT_FALSE(ec) << ec.message();
  out.done = p.is_done();
  out.msg = p.release();
  return out;
}

TEST(ErrorResponse, GetCarriesTheBody) {
  const std::string bytes =
      error_response_bytes(http::status::bad_gateway, "why", true, 11, /*head_request=*/false);
  const Parsed r = parse(bytes, false);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.consumed, bytes.size());  // nothing after the response
  EXPECT_EQ(r.msg.result(), http::status::bad_gateway);
  EXPECT_EQ(r.msg.version(), 11u);
  EXPECT_EQ(r.msg.body(), "502 Bad Gateway: why\n");
  EXPECT_EQ(r.msg[http::field::content_length], std::to_string(r.msg.body().size()));
  EXPECT_EQ(r.msg.count(http::field::connection), 0u);  // 1.1 keep-alive is the default
  EXPECT_TRUE(r.msg.keep_alive());
}

// To HEAD: the same head, Content-Length as for GET, and not one byte after the blank line.
TEST(ErrorResponse, HeadHasTheLengthButNoBody) {
  const std::string get = error_response_bytes(http::status::bad_gateway, "why", true, 11, false);
  const std::string head = error_response_bytes(http::status::bad_gateway, "why", true, 11, true);
  const Parsed g = parse(get, false);
  const Parsed h = parse(head, true);
  ASSERT_TRUE(h.done);
  EXPECT_EQ(h.consumed, head.size());
  EXPECT_EQ(head.find("\r\n\r\n"), head.size() - 4);  // ends at the blank line
  EXPECT_EQ(h.msg[http::field::content_length], g.msg[http::field::content_length]);
  EXPECT_EQ(h.msg.result(), http::status::bad_gateway);
  EXPECT_TRUE(h.msg.body().empty());
  EXPECT_EQ(get.substr(0, head.size()), head);  // the GET's head, byte for byte
}

TEST(ErrorResponse, ConnectionCloseOnHttp11) {
  const std::string bytes =
      error_response_bytes(http::status::service_unavailable, "local_overload", false, 11, false);
  const Parsed r = parse(bytes, false);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.msg.result(), http::status::service_unavailable);
  EXPECT_EQ(r.msg[http::field::connection], "close");
  EXPECT_FALSE(r.msg.keep_alive());
  EXPECT_NE(r.msg.body().find("local_overload"), std::string::npos);
}

TEST(ErrorResponse, KeepAliveOnHttp10) {
  const std::string keep =
      error_response_bytes(http::status::not_found, "no route", true, 10, false);
  const Parsed r = parse(keep, false);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.msg.version(), 10u);
  EXPECT_EQ(r.msg[http::field::connection], "keep-alive");
  EXPECT_TRUE(r.msg.keep_alive());
  EXPECT_EQ(r.msg.body(), "404 Not Found: no route\n");

  // 1.0 without keep-alive closes by default: no Connection field needed.
  const Parsed c =
      parse(error_response_bytes(http::status::not_found, "x", false, 10, false), false);
  EXPECT_EQ(c.msg.count(http::field::connection), 0u);
  EXPECT_FALSE(c.msg.keep_alive());
}

}  // namespace
}  // namespace gp::proxy
