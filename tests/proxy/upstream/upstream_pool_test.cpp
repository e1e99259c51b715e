#include "proxy/upstream/upstream_pool.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/write.hpp>
#include <sstream>
#include <string>

namespace gp::proxy {
namespace {

using namespace std::chrono_literals;

// grayproxy_upstream_connections_closed_total{reason="..."} as serialized, or -1 if absent.
double closed_total(const metrics::Metrics& m, std::string_view reason) {
  const std::string series =
      "grayproxy_upstream_connections_closed_total{reason=\"" + std::string(reason) + "\"} ";
  std::istringstream text(m.serialize());
  for (std::string line; std::getline(text, line);)
    if (line.starts_with(series)) return std::stod(line.substr(series.size()));
  return -1;
}

// A loopback listener and a pool that connects to it for real.
class UpstreamPoolTest : public ::testing::Test {
 protected:
  UpstreamPoolTest() : acceptor_(ioc_.get_executor(), {asio::ip::address_v4::loopback(), 0}) {}

  tcp::endpoint ep() const { return acceptor_.local_endpoint(); }

  // One pool connection plus the server's side of it.
  struct Pair {
    std::unique_ptr<UpstreamConn> conn;
    Socket server;
  };
  Pair connect(UpstreamPool& pool) {
    beast::error_code ec;
    std::unique_ptr<UpstreamConn> conn;
    bool finished = false;
    asio::co_spawn(ioc_.get_executor(), pool.connect(ep(), 2s),
                   [&](std::exception_ptr e, auto result) {
                     EXPECT_FALSE(e);
                     ec = result.first;
                     conn = std::move(result.second);
                     finished = true;
                   });
    ioc_.restart();
    ioc_.run();
    EXPECT_TRUE(finished);
    EXPECT_FALSE(ec) << ec.message();
    Socket server = acceptor_.accept();  // the kernel completed it: no wait
    return {std::move(conn), std::move(server)};
  }

  // Waits (briefly) until what the server did is visible on the client's socket, so take()'s
  // peek does not race the loopback delivery.
  static void wait_readable(UpstreamConn& conn) {
    pollfd fd{conn.tcp().socket().native_handle(), POLLIN, 0};
    ASSERT_EQ(::poll(&fd, 1, 2000), 1);
  }

  asio::io_context ioc_;
  Acceptor acceptor_;
  metrics::Metrics metrics_{1, "test"};
};

TEST_F(UpstreamPoolTest, CleanConnectionIsReused) {
  UpstreamPool pool(ioc_.get_executor(), 4, metrics_);
  auto [conn, server] = connect(pool);
  ASSERT_TRUE(conn);
  UpstreamConn* raw = conn.get();
  pool.give_back(ep(), std::move(conn));
  EXPECT_EQ(pool.idle_count(), 1u);
  EXPECT_EQ(pool.take(ep(), nullptr).get(), raw);
  EXPECT_EQ(pool.idle_count(), 0u);
  EXPECT_EQ(pool.take(ep(), nullptr), nullptr);  // handed out once
  for (auto reason : {"stray_bytes", "peer_closed", "pool_full"})
    EXPECT_EQ(closed_total(metrics_, reason), 0) << reason;
}

// A connection pooled for plain TCP is not one for a TLS cluster at the same address.
TEST_F(UpstreamPoolTest, TakeMatchesTheTlsSetting) {
  UpstreamPool pool(ioc_.get_executor(), 4, metrics_);
  auto [conn, server] = connect(pool);
  pool.give_back(ep(), std::move(conn));
  asio::ssl::context tls(asio::ssl::context::tls_client);
  EXPECT_EQ(pool.take(ep(), &tls), nullptr);
  EXPECT_EQ(pool.idle_count(), 1u);
  EXPECT_NE(pool.take(ep(), nullptr), nullptr);
}

// A byte the upstream sent while the connection was idle belongs to no request.
TEST_F(UpstreamPoolTest, StrayByteIsFoundByThePeek) {
  UpstreamPool pool(ioc_.get_executor(), 4, metrics_);
  auto [conn, server] = connect(pool);
  ASSERT_EQ(asio::write(server, asio::buffer("x", 1)), 1u);
  wait_readable(*conn);
  pool.give_back(ep(), std::move(conn));
  EXPECT_EQ(pool.take(ep(), nullptr), nullptr);
  EXPECT_EQ(pool.idle_count(), 0u);
  EXPECT_EQ(closed_total(metrics_, "stray_bytes"), 1);
  EXPECT_EQ(closed_total(metrics_, "peer_closed"), 0);
}

TEST_F(UpstreamPoolTest, PeerCloseIsFoundByThePeek) {
  UpstreamPool pool(ioc_.get_executor(), 4, metrics_);
  auto [conn, server] = connect(pool);
  server.close();
  wait_readable(*conn);
  pool.give_back(ep(), std::move(conn));
  EXPECT_EQ(pool.take(ep(), nullptr), nullptr);
  EXPECT_EQ(closed_total(metrics_, "peer_closed"), 1);
  EXPECT_EQ(closed_total(metrics_, "stray_bytes"), 0);
}

// take() goes on past a bad connection to the next idle one.
TEST_F(UpstreamPoolTest, TakeSkipsABadConnectionForAGoodOne) {
  UpstreamPool pool(ioc_.get_executor(), 4, metrics_);
  auto [good, good_server] = connect(pool);
  auto [bad, bad_server] = connect(pool);
  UpstreamConn* good_raw = good.get();
  pool.give_back(ep(), std::move(good));
  ASSERT_EQ(asio::write(bad_server, asio::buffer("HTTP/1.1 200", 12)), 12u);
  wait_readable(*bad);
  pool.give_back(ep(), std::move(bad));  // most recent: taken first
  EXPECT_EQ(pool.take(ep(), nullptr).get(), good_raw);
  EXPECT_EQ(closed_total(metrics_, "stray_bytes"), 1);
}

TEST_F(UpstreamPoolTest, GiveBackOverTheLimitCountsPoolFull) {
  UpstreamPool pool(ioc_.get_executor(), 1, metrics_);
  auto [a, server_a] = connect(pool);
  auto [b, server_b] = connect(pool);
  pool.give_back(ep(), std::move(a));
  EXPECT_EQ(closed_total(metrics_, "pool_full"), 0);
  pool.give_back(ep(), std::move(b));
  EXPECT_EQ(pool.idle_count(), 1u);
  EXPECT_EQ(closed_total(metrics_, "pool_full"), 1);
}

TEST_F(UpstreamPoolTest, ConnectRefusedReportsTheError) {
  UpstreamPool pool(ioc_.get_executor(), 1, metrics_);
  const tcp::endpoint gone = ep();
  acceptor_.close();  // nothing listens there any more
  beast::error_code ec;
  asio::co_spawn(ioc_.get_executor(), pool.connect(gone, 2s),
                 [&](std::exception_ptr, auto result) { ec = result.first; });
  ioc_.run();
  EXPECT_EQ(ec, asio::error::connection_refused);
}

}  // namespace
}  // namespace gp::proxy
