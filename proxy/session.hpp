// A downstream connection: reads requests one after another (pipelined requests are
// answered in order because each is finished before the next is read), forwards each to
// the version's upstream and streams both bodies.
#pragma once

#include "proxy/asio_types.hpp"

namespace gp::proxy {

class Worker;
class Session;

// Closes the connection if it is waiting for its next request (used by drain).
void cancel_if_idle(Session& s);

// Runs until the connection closes. The listener's name is used in log lines.
Task<void> run_session(Worker& worker, Socket socket);

}  // namespace gp::proxy
