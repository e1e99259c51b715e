// The admin listener: /metrics, /healthz, /ready, /status, /history and the status page (/)
// on its own address and thread, so scrapes and operator calls never share a queue with
// proxied traffic.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "proxy/history.hpp"

namespace gp::proxy {

class Server;

class AdminServer {
 public:
  // Binds at once, so a busy address fails startup.
  AdminServer(Server& server, const config::Admin& config);
  ~AdminServer();
  void start();
  void stop();

 private:
  Server& server_;
  std::string token_;  // empty: writes are not authenticated
  boost::asio::io_context ioc_{1};
  boost::asio::ip::tcp::acceptor acceptor_;
  History history_;  // sampled and served on the admin thread only
  std::thread thread_;
  // Writes (POST) run here, one at a time: in fleet mode they wait for etcd (bounded), and
  // scrapes and /status on the admin thread must not wait behind them.
  boost::asio::thread_pool writes_{1};
};

}  // namespace gp::proxy
