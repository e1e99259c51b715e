// relay_message over in-memory streams: framing out, streaming as bytes arrive, trailers
// dropped, and every wait of the parser bounded.
#include "proxy/http/body_relay.hpp"

#include <gtest/gtest.h>

#include <string>

#include "proxy/http/head_io.hpp"
#include "tests/proxy/stream_test_util.hpp"

namespace {

using namespace gp::proxy;
using gp::proxy::test::Pipe;
using gp::proxy::test::settle;
using gp::proxy::test::start;
namespace asio = boost::asio;
namespace http = boost::beast::http;

struct Relay : ::testing::Test {
  asio::io_context ioc;
  Pipe in{ioc};   // the sender (an upstream, say)
  Pipe out{ioc};  // the receiver (a client)
  boost::beast::flat_buffer buf;
  MessageParser<false> parser;
  RelaySettings settings{std::chrono::seconds(5), std::chrono::seconds(5), 8192};
  std::uint64_t body_bytes = 0;

  // Reads the head the sender wrote (it must be complete in what was sent).
  void read_head_now() {
    const char* reason = "";
    auto r = start(ioc, read_head(
                            in.end, buf, parser, 8192, 0, [] {}, reason));
    settle(ioc);
    ASSERT_TRUE(r->has_value()) << "head not complete";
    ASSERT_FALSE(r->value()) << r->value().message();
  }
  auto relay(BodyFraming framing, std::string_view head = "HEAD\r\n") {
    return start(ioc,
                 relay_message(in.end, buf, parser, out.end, head, framing, settings, body_bytes));
  }
};

TEST_F(Relay, ContentLengthBodyFollowsTheHeadInOneWrite) {
  in.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  read_head_now();
  auto r = relay(BodyFraming::length);
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE(r->value().ok()) << r->value().ec.message();
  EXPECT_TRUE(r->value().head_sent);
  EXPECT_EQ(out.written(), "HEAD\r\nhello");
  EXPECT_EQ(body_bytes, 5u);
  EXPECT_EQ(buf.size(), 0u);
}

TEST_F(Relay, BytesBeyondTheMessageStayInTheBuffer) {
  in.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n");
  read_head_now();
  auto r = relay(BodyFraming::length);
  settle(ioc);
  ASSERT_TRUE(r->has_value() && r->value().ok());
  EXPECT_EQ(out.written(), "HEAD\r\nok");
  EXPECT_EQ(buf.size(), std::string("HTTP/1.1 200 OK\r\n").size());  // for the reuse check
}

TEST_F(Relay, ChunkedBodyIsRechunkedAndTrailersAreDropped) {
  in.send(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nSet-Cookie: evil=1\r\nx-gray-version: stable\r\n\r\n");
  read_head_now();
  const auto head_fields = std::distance(parser.head().begin(), parser.head().end());
  auto r = relay(BodyFraming::chunked);
  settle(ioc);
  ASSERT_TRUE(r->has_value() && r->value().ok());
  EXPECT_EQ(out.written(), "HEAD\r\n5\r\nabcde\r\n0\r\n\r\n");
  EXPECT_EQ(std::distance(parser.head().begin(), parser.head().end()), head_fields);
  EXPECT_EQ(parser.trailer_fields(), 2u);
}

// Finding 5: a server-sent event reaches the client when it arrives, not when some buffer
// fills; the head goes at once when no body byte is there yet.
TEST_F(Relay, StreamsEachPieceAsItArrives) {
  in.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  read_head_now();
  auto r = relay(BodyFraming::chunked);
  settle(ioc);
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(out.written(), "HEAD\r\n");
  in.send("8\r\ndata: 1\n\r\n");
  settle(ioc);
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(out.written(), "HEAD\r\n8\r\ndata: 1\n\r\n");
  in.send("8\r\ndata: 2\n\r\n0\r\n\r\n");
  settle(ioc);
  ASSERT_TRUE(r->has_value() && r->value().ok());
  EXPECT_EQ(out.written(), "HEAD\r\n8\r\ndata: 1\n\r\n8\r\ndata: 2\n\r\n0\r\n\r\n");
}

TEST_F(Relay, CloseDelimitedBodyEndsAtEofAndIsChunkedForTheClient) {
  in.send("HTTP/1.1 200 OK\r\n\r\nabc");
  read_head_now();
  ASSERT_TRUE(parser.need_eof());
  auto r = relay(BodyFraming::chunked);
  settle(ioc);
  EXPECT_FALSE(r->has_value());
  in.peer.close();
  settle(ioc);
  ASSERT_TRUE(r->has_value() && r->value().ok()) << r->value().ec.message();
  EXPECT_EQ(out.written(), "HEAD\r\n3\r\nabc\r\n0\r\n\r\n");
}

TEST_F(Relay, TruncatedBodyIsAPartialMessage) {
  in.send("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  read_head_now();
  auto r = relay(BodyFraming::length);
  settle(ioc);
  in.peer.close();
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(r->value().ec, http::error::partial_message);
  EXPECT_EQ(r->value().side, RelaySide::read);
  EXPECT_EQ(out.written(), "HEAD\r\nabc");  // what came is passed on; the close tells the rest
}

// Finding 3: an endless chunk extension, trailer value or trailer list is cut at its limit;
// the read buffer never grows past one read beyond the longest allowed wait.
struct EndlessInput : Relay {
  // Sends `start`, then `filler` up to `rounds` times while the relay goes on; returns how
  // the relay ended.
  RelayResult feed(const std::string& start, const std::string& filler, int rounds) {
    in.send(start);
    read_head_now();
    auto r = relay(BodyFraming::chunked);
    for (int i = 0; i < rounds && !r->has_value(); ++i) {
      in.send(filler);
      settle(ioc);
      EXPECT_LE(buf.capacity(), relay_buffer_limit(settings));
    }
    EXPECT_TRUE(r->has_value()) << "still reading after " << rounds << " pieces";
    return r->value_or(RelayResult{});
  }
  static constexpr const char* kChunkedHead =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
};

TEST_F(EndlessInput, ChunkExtensionIsCut) {
  const auto r = feed(std::string(kChunkedHead) + "5;x=", std::string(1024, 'a'), 1000);
  EXPECT_EQ(r.ec, WireError::chunk_line_too_long);
  EXPECT_EQ(r.side, RelaySide::read);
}

TEST_F(EndlessInput, TrailerValueIsCut) {
  const auto r =
      feed(std::string(kChunkedHead) + "1\r\na\r\n0\r\nX-T: ", std::string(1024, 'a'), 1000);
  EXPECT_EQ(r.ec, WireError::trailers_too_large);
}

TEST_F(EndlessInput, TwentyThousandTrailerFieldsAreCut) {
  std::string fields;
  for (int i = 0; i < 100; ++i) fields += "X-T: v\r\n";
  const auto r = feed(std::string(kChunkedHead) + "0\r\n", fields, 200);  // 20,000 in all
  EXPECT_EQ(r.ec, WireError::trailers_too_large);
}

TEST_F(Relay, MoreTrailerFieldsThanTheLimitInOneBlockAreCut) {
  std::string fields;
  for (int i = 0; i < 101; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  in.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + fields + "\r\n");
  read_head_now();
  auto r = relay(BodyFraming::chunked);
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(r->value().ec, WireError::trailers_too_large);
}

TEST_F(Relay, ManyTinyChunksInOneReadAllArrive) {
  std::string body, expect;
  for (int i = 0; i < 200; ++i) {
    body += "1\r\n" + std::string(1, static_cast<char>('a' + i % 26)) + "\r\n";
    expect += static_cast<char>('a' + i % 26);
  }
  in.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + "0\r\n\r\n");
  read_head_now();
  auto r = relay(BodyFraming::length, "");
  settle(ioc);
  ASSERT_TRUE(r->has_value() && r->value().ok());
  EXPECT_EQ(out.written(), expect);
  EXPECT_EQ(body_bytes, 200u);
}

TEST_F(Relay, AWriteFailureNamesTheWriteSide) {
  in.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  read_head_now();
  out.end.close();
  auto r = relay(BodyFraming::length);
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE(r->value().ec);
  EXPECT_EQ(r->value().side, RelaySide::write);
  EXPECT_FALSE(r->value().head_sent);
}

}  // namespace
