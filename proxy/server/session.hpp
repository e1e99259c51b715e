// A downstream connection: reads requests one after another (pipelined requests are
// answered in order because each is finished before the next is read), routes each and hands
// it to an upstream exchange (proxy/upstream/exchange.hpp), and answers what the exchange
// could not.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "proxy/asio_types.hpp"

namespace gp::proxy {

class Worker;

// What the worker sees of a session when the process drains: a connection waiting for a
// request closes now, one in the middle of a request finishes it and closes, a tunnel closes
// at `deadline` at the latest.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void drain(std::chrono::steady_clock::time_point deadline) = 0;
};

// Run until the connection closes.
Task<void> run_session(Worker& worker, Socket socket, std::string listener);
Task<void> run_tls_session(Worker& worker, Socket socket, std::string listener,
                           std::shared_ptr<boost::asio::ssl::context> ctx,
                           std::chrono::milliseconds handshake_timeout);

}  // namespace gp::proxy
