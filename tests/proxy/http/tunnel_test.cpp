// The byte tunnel after a 101, over in-memory streams.
#include "proxy/http/tunnel.hpp"

#include <gtest/gtest.h>

#include "tests/proxy/stream_test_util.hpp"

namespace {

using namespace gp::proxy;
using gp::proxy::test::Pipe;
using gp::proxy::test::settle;
using gp::proxy::test::start;
namespace asio = boost::asio;

struct Tunnel : ::testing::Test {
  asio::io_context ioc;
  Pipe client{ioc};
  Pipe upstream{ioc};
  boost::beast::flat_buffer client_buf;
  boost::beast::flat_buffer upstream_buf;
  TunnelControl control{ioc.get_executor()};
};

TEST_F(Tunnel, BytesFlowBothWaysBufferedOnesFirst) {
  // What each side sent before the switch was read with the 101 exchange.
  boost::asio::buffer_copy(client_buf.prepare(4), asio::buffer("hi-u", 4));
  client_buf.commit(4);
  boost::asio::buffer_copy(upstream_buf.prepare(4), asio::buffer("hi-c", 4));
  upstream_buf.commit(4);
  auto r = start(ioc, run_tunnel(client.end, client_buf, upstream.end, upstream_buf,
                                 std::chrono::seconds(60), control));
  settle(ioc);
  EXPECT_EQ(upstream.written(), "hi-u");
  EXPECT_EQ(client.written(), "hi-c");
  client.send("frame-1");
  upstream.send("frame-2");
  settle(ioc);
  EXPECT_EQ(upstream.written(), "hi-uframe-1");
  EXPECT_EQ(client.written(), "hi-cframe-2");
  EXPECT_FALSE(r->has_value());
  client.peer.close();
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(r->value().client_to_upstream, 11u);
  EXPECT_EQ(r->value().upstream_to_client, 11u);
  EXPECT_FALSE(r->value().idle_timeout);
}

TEST_F(Tunnel, DrainEndsIt) {
  auto r = start(ioc, run_tunnel(client.end, client_buf, upstream.end, upstream_buf,
                                 std::chrono::seconds(60), control));
  settle(ioc);
  EXPECT_FALSE(r->has_value());
  control.drain(std::chrono::steady_clock::now());
  settle(ioc);
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE(r->value().drained);
}

TEST_F(Tunnel, IdleEndsIt) {
  auto r = start(ioc, run_tunnel(client.end, client_buf, upstream.end, upstream_buf,
                                 std::chrono::milliseconds(30), control));
  for (int i = 0; i < 100 && !r->has_value(); ++i) {
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE(r->value().idle_timeout);
}

}  // namespace
