// The admin listener: /metrics, /healthz, /ready, /status, /history and the status page (/)
// on its own address and thread, so scrapes and operator calls never share a queue with
// proxied traffic.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
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
};

}  // namespace gp::proxy
