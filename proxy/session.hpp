// A downstream connection: reads requests one after another (pipelined requests are
// answered in order because each is finished before the next is read), forwards each to
// the version's upstream and streams both bodies.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "proxy/asio_types.hpp"

namespace gp::proxy {

class Worker;

// What the worker sees of a session: drain closes connections waiting for a request.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void cancel_if_idle() = 0;
};

// Run until the connection closes.
Task<void> run_session(Worker& worker, Socket socket, std::string listener);
Task<void> run_tls_session(Worker& worker, Socket socket, std::string listener,
                           std::shared_ptr<boost::asio::ssl::context> ctx,
                           std::chrono::milliseconds handshake_timeout);

}  // namespace gp::proxy
