// The exchange's steps over in-memory streams: the request sent upstream (trailers never in
// its head, 100 Continue), the response head read (1xx dropped, a 101 only when asked, an
// upstream that closes without a byte), and what a response leaves behind for the reuse
// decision (findings 1 and 2: stray bytes and close-delimited bodies).
#include <gtest/gtest.h>

#include <string>

#include "proxy/http/forwarding.hpp"
#include "proxy/http/head_io.hpp"
#include "proxy/upstream/read_response.hpp"
#include "proxy/upstream/reuse.hpp"
#include "proxy/upstream/send_request.hpp"
#include "tests/proxy/stream_test_util.hpp"

namespace {

using namespace gp::proxy;
using gp::proxy::test::Pipe;
using gp::proxy::test::settle;
using gp::proxy::test::start;
namespace asio = boost::asio;
namespace http = boost::beast::http;

struct Steps : ::testing::Test {
  asio::io_context ioc;
  Pipe client{ioc};
  Pipe upstream{ioc};
  boost::beast::flat_buffer client_buf;
  boost::beast::flat_buffer upstream_buf;
  const RelaySettings settings{std::chrono::seconds(5), std::chrono::seconds(5), 8192};

  // Reads a request head the client sent, rewrites it as the session does, returns it
  // serialized.
  std::string take_request(MessageParser<true>& req) {
    const char* reason = "";
    auto r = start(ioc, read_head(
                            client.end, client_buf, req, 8192, 8192, [] {}, reason));
    settle(ioc);
    EXPECT_TRUE(r->has_value() && !r->value());
    auto& head = req.head();
    rewrite_request_head(
        head,
        RequestRewrite{"192.0.2.1", false, "stable", req.chunked(), req.declared_length(), {}});
    std::string out;
    serialize_head(head, out);
    return out;
  }

  // The response head as read_response_head leaves it, for `method`, asking to upgrade or not.
  beast::error_code read_response(std::optional<MessageParser<false>>& res,
                                  http::verb method = http::verb::get, bool upgrade = false) {
    const char* reason = "";
    auto r = start(ioc, read_response_head(upstream.end, upstream_buf, res, 8192, 100,
                                           std::chrono::seconds(5), method, upgrade, reason));
    settle(ioc);
    EXPECT_TRUE(r->has_value()) << "response head not complete";
    return r->has_value() ? r->value() : beast::error_code(asio::error::would_block);
  }

  ReuseFacts facts(const MessageParser<false>& res, http::verb method) const {
    ReuseFacts f;
    f.exchange_ok = true;
    f.response_complete = res.is_done();
    f.method = method;
    f.status = res.head().result_int();
    f.version = res.head().version();
    f.keep_alive = res.head_keep_alive();
    f.close_delimited = res.need_eof();
    f.declared_body = res.declares_body();
    f.leftover = upstream_buf.size();
    return f;
  }
};

// Finding 4: trailers that arrive with the head never reach the upstream, in its head or
// anywhere else.
TEST_F(Steps, TrailersSentWithTheHeadNeverReachTheUpstream) {
  client.send(
      "POST /up HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nHost: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\n"
      "x-gray-version: canary\r\nAuthorization: Bearer stolen\r\nUpgrade: websocket\r\n\r\n");
  MessageParser<true> req;
  const std::string head = take_request(req);
  std::uint64_t bytes = 0;
  auto r = start(ioc, send_request(client.end, client_buf, req, upstream.end, head, false, 11,
                                   settings, bytes));
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_FALSE(r->value().ec) << r->value().ec.message();
  const std::string sent = upstream.written();
  EXPECT_EQ(sent, head + "5\r\nhello\r\n0\r\n\r\n");
  for (auto* s : {"evil", "6.6.6.6", "canary", "stolen", "websocket"})
    EXPECT_EQ(sent.find(s), std::string::npos) << s;
  EXPECT_EQ(bytes, 5u);
}

TEST_F(Steps, ExpectContinueSendsTheHeadThenTellsTheClientToGoOn) {
  client.send("PUT /x HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  MessageParser<true> req;
  const std::string head = take_request(req);
  EXPECT_EQ(head.find("Expect"), std::string::npos);
  std::uint64_t bytes = 0;
  auto r = start(ioc, send_request(client.end, client_buf, req, upstream.end, head, true, 11,
                                   settings, bytes));
  settle(ioc);
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(upstream.written(), head);
  EXPECT_EQ(client.written(), "HTTP/1.1 100 Continue\r\n\r\n");
  client.send("abc");
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_FALSE(r->value().ec);
  EXPECT_TRUE(r->value().body_started);
  EXPECT_EQ(upstream.written(), head + "abc");
}

TEST_F(Steps, AClientBodyThatBreaksItsFramingIsTheClientsError) {
  client.send("POST /x HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  MessageParser<true> req;
  const std::string head = take_request(req);
  std::uint64_t bytes = 0;
  auto r = start(ioc, send_request(client.end, client_buf, req, upstream.end, head, false, 11,
                                   settings, bytes));
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE(r->value().ec);
  EXPECT_TRUE(r->value().client_side);
}

TEST_F(Steps, InterimResponsesAreDropped) {
  upstream.send(
      "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  std::optional<MessageParser<false>> res;
  EXPECT_FALSE(read_response(res));
  EXPECT_EQ(res->head().result_int(), 200u);
  EXPECT_EQ(decide_reuse(facts(*res, http::verb::get)), ReuseVerdict::reuse);
}

TEST_F(Steps, EndlessInterimResponsesAreAnError) {
  std::string interim;
  for (int i = 0; i < 17; ++i) interim += "HTTP/1.1 100 Continue\r\n\r\n";
  upstream.send(interim + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  std::optional<MessageParser<false>> res;
  EXPECT_EQ(read_response(res), WireError::invalid_response);
}

// Finding 8: an upstream that closes without sending a byte is an error of its own (502),
// not the client going away.
TEST_F(Steps, AnUpstreamThatClosesWithoutAByteIsNamed) {
  upstream.peer.close();
  std::optional<MessageParser<false>> res;
  EXPECT_EQ(read_response(res), WireError::closed_before_response);
}

TEST_F(Steps, AnUnrequested101IsAnError) {
  upstream.send(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
  std::optional<MessageParser<false>> res;
  EXPECT_EQ(read_response(res), WireError::unrequested_upgrade);
}

TEST_F(Steps, ARequested101EndsTheHead) {
  upstream.send(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nframe");
  std::optional<MessageParser<false>> res;
  EXPECT_FALSE(read_response(res, http::verb::get, true));
  EXPECT_EQ(res->head().result_int(), 101u);
  EXPECT_EQ(upstream_buf.size(), 5u);  // the first tunnel bytes, for the client
  EXPECT_NE(decide_reuse(facts(*res, http::verb::get)), ReuseVerdict::reuse);
}

TEST_F(Steps, A101WithoutUpgradeFieldIsAnErrorEvenWhenAsked) {
  upstream.send("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n");
  std::optional<MessageParser<false>> res;
  EXPECT_EQ(read_response(res, http::verb::get, true), WireError::unrequested_upgrade);
}

TEST_F(Steps, MoreThanAHundredResponseFieldsAreAnError) {
  std::string fields;
  for (int i = 0; i < 101; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  upstream.send("HTTP/1.1 200 OK\r\n" + fields + "Content-Length: 0\r\n\r\n");
  std::optional<MessageParser<false>> res;
  EXPECT_EQ(read_response(res), WireError::too_many_fields);
}

// Finding 1: whatever an upstream sends beyond a response keeps its connection out of the
// pool: a 204 or a HEAD answer followed by a whole response, a 304 with a body.
TEST_F(Steps, A204FollowedByAStrayResponseIsNotReused) {
  upstream.send(
      "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled");
  std::optional<MessageParser<false>> res;
  ASSERT_FALSE(read_response(res));
  EXPECT_TRUE(res->is_done());
  EXPECT_EQ(decide_reuse(facts(*res, http::verb::get)), ReuseVerdict::stray_bytes);
}

TEST_F(Steps, AHeadAnswerThatDeclaresABodyIsNotReused) {
  upstream.send("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n");
  std::optional<MessageParser<false>> res;
  ASSERT_FALSE(read_response(res, http::verb::head));
  EXPECT_TRUE(res->is_done());
  EXPECT_EQ(upstream_buf.size(), 0u);
  // The 8 bytes it announces may still come, and be read as the next request's answer.
  EXPECT_EQ(decide_reuse(facts(*res, http::verb::head)), ReuseVerdict::unframed);
}

TEST_F(Steps, A304WithContentLengthIsNotReused) {
  upstream.send("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello");
  std::optional<MessageParser<false>> res;
  ASSERT_FALSE(read_response(res));
  EXPECT_EQ(decide_reuse(facts(*res, http::verb::get)), ReuseVerdict::stray_bytes);
}

// Finding 2: a body ended by the connection's close leaves a dead connection.
TEST_F(Steps, ACloseDelimitedResponseIsNotReused) {
  upstream.send("HTTP/1.1 200 OK\r\n\r\nabc");
  std::optional<MessageParser<false>> res;
  ASSERT_FALSE(read_response(res));
  EXPECT_TRUE(res->need_eof());
  auto f = facts(*res, http::verb::get);
  f.response_complete = true;  // as after the relay met the close
  f.leftover = 0;
  EXPECT_EQ(decide_reuse(f), ReuseVerdict::unframed);
}

}  // namespace
