#include "proxy/http/message_parser.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http/error.hpp>
#include <string>
#include <string_view>

namespace gp::proxy {
namespace {

namespace http = boost::beast::http;
using boost::system::error_code;

// Feeds all of `in` in one put (eager: head and body together); returns the bytes consumed.
template <bool isRequest>
std::size_t put_all(MessageParser<isRequest>& p, std::string_view in, error_code& ec) {
  p.eager(true);
  return p.put(boost::asio::buffer(in.data(), in.size()), ec);
}

std::size_t count_fields(const http::fields& f) {
  return std::distance(f.begin(), f.end());
}

// Whether every piece of the body is a view into `in` (no copy), and what they spell.
template <bool isRequest>
std::string body_in(const MessageParser<isRequest>& p, std::string_view in) {
  std::string out;
  for (const auto& piece : p.body()) {
    const char* data = static_cast<const char*>(piece.data());
    EXPECT_GE(data, in.data());
    EXPECT_LE(data + piece.size(), in.data() + in.size());
    out.append(data, piece.size());
  }
  return out;
}

TEST(MessageParser, RequestHeadGoesToHead) {
  const std::string in = "PUT /a?b=1 HTTP/1.0\r\nHost: shop\r\nX-A: 1\r\nX-A: 2\r\n\r\n";
  MessageParser<true> p;
  error_code ec;
  EXPECT_EQ(put_all(p, in, ec), in.size());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_done());
  EXPECT_EQ(p.head().method(), http::verb::put);
  EXPECT_EQ(p.head().target(), "/a?b=1");
  EXPECT_EQ(p.head().version(), 10u);
  EXPECT_EQ(p.head()[http::field::host], "shop");
  EXPECT_EQ(p.head().count("x-a"), 2u);
  EXPECT_EQ(count_fields(p.head()), 3u);
  EXPECT_FALSE(p.head_keep_alive());  // HTTP/1.0 without keep-alive
}

TEST(MessageParser, UnknownMethodKeepsItsName) {
  const std::string in = "BREW /x HTTP/1.1\r\nHost: a\r\n\r\n";
  MessageParser<true> p;
  error_code ec;
  put_all(p, in, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(p.head().method(), http::verb::unknown);
  EXPECT_EQ(p.head().method_string(), "BREW");
}

TEST(MessageParser, ResponseHeadGoesToHead) {
  const std::string in = "HTTP/1.1 418 Teapot\r\nContent-Length: 0\r\nX-B: y\r\n\r\n";
  MessageParser<false> p;
  error_code ec;
  put_all(p, in, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(p.head().result_int(), 418u);
  EXPECT_EQ(p.head().reason(), "Teapot");
  EXPECT_EQ(p.head().version(), 11u);
  EXPECT_EQ(p.head()["x-b"], "y");
  EXPECT_TRUE(p.head_keep_alive());
}

// Body bytes are handed out as views into the caller's buffer, not copied.
TEST(MessageParser, BodyPiecesPointIntoTheInput) {
  const std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  MessageParser<true> p;
  error_code ec;
  EXPECT_EQ(put_all(p, in, ec), in.size());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_done());
  ASSERT_EQ(p.body().size(), 1u);
  EXPECT_EQ(p.body()[0].data(), in.data() + in.find("hello"));
  EXPECT_EQ(p.body_size(), 5u);
  EXPECT_EQ(body_in(p, in), "hello");
  p.clear_body();
  EXPECT_TRUE(p.body().empty());
  EXPECT_EQ(p.body_size(), 0u);
}

TEST(MessageParser, ChunkedPiecesPointIntoTheInput) {
  const std::string in =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  MessageParser<false> p;
  error_code ec;
  EXPECT_EQ(put_all(p, in, ec), in.size());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_done());
  ASSERT_EQ(p.body().size(), 2u);
  EXPECT_EQ(p.body()[0].data(), in.data() + in.find("abc"));
  EXPECT_EQ(p.body()[1].data(), in.data() + in.find("de\r\n0"));
  EXPECT_EQ(body_in(p, in), "abcde");  // chunk extensions are not body
}

// Trailers can name anything; none of it may reach the head that is forwarded or change
// what the head decided.
TEST(MessageParser, TrailersNeverReachTheHead) {
  const std::string head =
      "POST /t HTTP/1.1\r\nHost: good\r\nX-Forwarded-For: 1.1.1.1\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  const std::string body =
      "4\r\nbody\r\n0\r\nHost: evil\r\nX-Forwarded-For: 6.6.6.6\r\nx-gray-version: canary\r\n"
      "Connection: close\r\nUpgrade: x\r\n\r\n";
  MessageParser<true> p;
  error_code ec;
  EXPECT_EQ(p.put(boost::asio::buffer(head), ec), head.size());  // not eager: the head only
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_header_done());
  const std::size_t before = count_fields(p.head());
  EXPECT_TRUE(p.head_keep_alive());
  EXPECT_FALSE(p.head_upgrade());

  EXPECT_EQ(put_all(p, body, ec), body.size());
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_done());
  EXPECT_EQ(count_fields(p.head()), before);
  EXPECT_EQ(p.head()[http::field::host], "good");
  EXPECT_EQ(p.head().count(http::field::host), 1u);
  EXPECT_EQ(p.head()["x-forwarded-for"], "1.1.1.1");
  EXPECT_EQ(p.head().count("x-gray-version"), 0u);
  EXPECT_EQ(p.head().count(http::field::connection), 0u);
  EXPECT_EQ(p.head().count(http::field::upgrade), 0u);
  EXPECT_TRUE(p.head_keep_alive());  // as the head said, whatever the trailer's Connection
  EXPECT_FALSE(p.head_upgrade());
  EXPECT_EQ(p.trailer_fields(), 5u);
  EXPECT_EQ(body_in(p, body), "body");
}

std::string fields(std::size_t n, std::string_view prefix = "X-F") {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += std::string(prefix) + std::to_string(i) + ": v\r\n";
  return out;
}

TEST(MessageParser, TrailerFieldCountIsBounded) {
  const std::string start = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n";
  {
    MessageParser<false> p;
    error_code ec;
    const std::string in = start + fields(100) + "\r\n";
    put_all(p, in, ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_TRUE(p.is_done());
    EXPECT_EQ(p.trailer_fields(), 100u);
  }
  {
    MessageParser<false> p;
    error_code ec;
    put_all(p, start + fields(101) + "\r\n", ec);
    EXPECT_EQ(ec, error_code(WireError::trailers_too_large));
  }
}

// Host plus 99 others is 100 fields: the limit; one more is refused.
TEST(MessageParser, HeadFieldCountIsBounded) {
  {
    MessageParser<true> p;
    error_code ec;
    put_all(p, "GET / HTTP/1.1\r\nHost: a\r\n" + fields(99) + "\r\n", ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_TRUE(p.is_done());
    EXPECT_EQ(count_fields(p.head()), 100u);
  }
  {
    MessageParser<true> p;
    error_code ec;
    put_all(p, "GET / HTTP/1.1\r\nHost: a\r\n" + fields(100) + "\r\n", ec);
    EXPECT_EQ(ec, error_code(WireError::too_many_fields));
  }
  {
    MessageParser<false> p;  // responses too
    error_code ec;
    put_all(p, "HTTP/1.1 200 OK\r\n" + fields(101) + "\r\n", ec);
    EXPECT_EQ(ec, error_code(WireError::too_many_fields));
  }
}

TEST(MessageParser, UnderscoreNamesDropped) {
  MessageParser<true> p(ParserLimits{100, UnderscoreAction::drop});
  error_code ec;
  put_all(p, "GET / HTTP/1.1\r\nHost: a\r\nX_Real_IP: 6.6.6.6\r\nX-Real-IP: 1.2.3.4\r\n\r\n", ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(p.dropped_fields(), 1u);
  EXPECT_EQ(p.head().count("x_real_ip"), 0u);
  EXPECT_EQ(p.head()["x-real-ip"], "1.2.3.4");
  EXPECT_EQ(count_fields(p.head()), 2u);
}

TEST(MessageParser, UnderscoreNamesRejected) {
  MessageParser<true> p(ParserLimits{100, UnderscoreAction::reject});
  error_code ec;
  put_all(p, "GET / HTTP/1.1\r\nHost: a\r\nX_Real_IP: 6.6.6.6\r\n\r\n", ec);
  EXPECT_EQ(ec, error_code(WireError::underscore_header));
}

TEST(MessageParser, UnderscoreNamesAllowed) {
  MessageParser<true> p(ParserLimits{100, UnderscoreAction::allow});
  error_code ec;
  put_all(p, "GET / HTTP/1.1\r\nHost: a\r\nX_Real_IP: 6.6.6.6\r\n\r\n", ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(p.dropped_fields(), 0u);
  EXPECT_EQ(p.head()["x_real_ip"], "6.6.6.6");
}

// "Transfer_Encoding" is no framing field to the parser (and a CGI-style upstream would read it
// as one): dropped, the body is framed by Content-Length, and the twin never goes on.
TEST(MessageParser, UnderscoreTransferEncodingTwinIsDroppedNotFramed) {
  const std::string in =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello";
  MessageParser<true> p(ParserLimits{100, UnderscoreAction::drop});
  error_code ec;
  EXPECT_EQ(put_all(p, in, ec), in.size());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_done());
  EXPECT_FALSE(p.chunked());
  EXPECT_EQ(p.declared_length(), 5u);
  EXPECT_EQ(body_in(p, in), "hello");
  EXPECT_EQ(p.dropped_fields(), 1u);
  EXPECT_EQ(p.head().count("transfer_encoding"), 0u);
  EXPECT_EQ(p.head().count(http::field::transfer_encoding), 0u);
}

// A body of many tiny chunks: a put stops after kMaxPieces pieces so the caller can write
// them; once it consumed what put returned, the next put goes on.
TEST(MessageParser, PutStopsAfterMaxPieces) {
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string expected;
  for (int i = 0; i < 40; ++i) {
    const char c = static_cast<char>('A' + i % 26);
    in += std::string("1\r\n") + c + "\r\n";
    expected += c;
  }
  in += "0\r\n\r\n";
  using P = MessageParser<true>;
  static_assert(P::kMaxPieces < 40);
  P p;
  error_code ec;
  const std::size_t first = put_all(p, in, ec);
  EXPECT_EQ(ec, http::error::need_buffer);
  EXPECT_FALSE(p.is_done());
  ASSERT_EQ(p.body().size(), P::kMaxPieces);
  std::string got = body_in(p, std::string_view(in).substr(0, first));  // within the consumed
  p.clear_body();

  const std::string_view rest = std::string_view(in).substr(first);
  const std::size_t second = put_all(p, rest, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(second, rest.size());
  EXPECT_TRUE(p.is_done());
  EXPECT_EQ(p.body().size(), 40 - P::kMaxPieces);
  got += body_in(p, rest);
  EXPECT_EQ(got, expected);
}

TEST(MessageParser, DeclaredLengthAndBody) {
  struct Case {
    const char* head;
    std::optional<std::uint64_t> length;
    bool declares;
  };
  const Case cases[] = {
      {"Content-Length: 12\r\n", 12u, true},
      {"Content-Length: 0\r\n", 0u, false},
      {"Transfer-Encoding: chunked\r\n", std::nullopt, true},
      {"", std::nullopt, false},
  };
  for (const auto& c : cases) {
    MessageParser<true> p;
    error_code ec;
    p.put(boost::asio::buffer(std::string("POST / HTTP/1.1\r\nHost: a\r\n") + c.head + "\r\n"), ec);
    ASSERT_FALSE(ec) << c.head << ec.message();
    ASSERT_TRUE(p.is_header_done()) << c.head;
    EXPECT_EQ(p.declared_length(), c.length) << c.head;
    EXPECT_EQ(p.declares_body(), c.declares) << c.head;
  }
}

// A 204 ends at its head whatever it declares; that it declared bytes is still visible (the
// upstream connection must not be reused: reuse.hpp).
TEST(MessageParser, NoContentWithLengthIsCompleteAtItsHead) {
  MessageParser<false> p;
  error_code ec;
  const std::string in = "HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n";
  EXPECT_EQ(p.put(boost::asio::buffer(in), ec), in.size());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_done());
  EXPECT_TRUE(p.declares_body());
  EXPECT_EQ(p.declared_length(), 8u);
  EXPECT_TRUE(p.body().empty());
}

// The response to a HEAD (skip): complete at its head too, its length still declared.
TEST(MessageParser, ResponseToHeadIsCompleteAtItsHead) {
  MessageParser<false> p;
  p.skip(true);
  error_code ec;
  p.put(boost::asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")), ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_done());
  EXPECT_TRUE(p.declares_body());
}

}  // namespace
}  // namespace gp::proxy
