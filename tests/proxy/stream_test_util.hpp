// In-memory streams for the data path's unit tests: Beast's test stream on the worker's
// executor type, and a way to run one of the proxy's coroutines to completion (or until it
// waits for input the test has not sent yet).
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/asio_types.hpp"

// g++ 12 false positive on Asio's awaitable frames (its own operator new/delete pair) in the
// coroutines the tests start; the frames are allocated and freed by Asio alike.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace gp::proxy::test {

using TestStream = boost::beast::test::basic_stream<Executor>;

// A connected pair: what `peer` writes, `end` reads, and the reverse.
struct Pipe {
  explicit Pipe(boost::asio::io_context& ioc) : end(ioc), peer(ioc) { end.connect(peer); }
  TestStream end;   // the proxy's side
  TestStream peer;  // the other program's side
  // Bytes the proxy wrote to `end` (and nobody read yet).
  std::string written() const { return std::string(peer.str()); }
  void send(std::string_view bytes) {
    boost::asio::write(peer, boost::asio::buffer(bytes.data(), bytes.size()));
  }
};

// Starts `task`; its result lands in the returned optional when it completes.
template <class T>
std::shared_ptr<std::optional<T>> start(boost::asio::io_context& ioc, Task<T> task) {
  auto out = std::make_shared<std::optional<T>>();
  boost::asio::co_spawn(ioc, std::move(task), [out](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    out->emplace(std::move(value));
  });
  return out;
}

// Runs until nothing is ready to run: a coroutine waiting for input stays suspended.
inline void settle(boost::asio::io_context& ioc) {
  ioc.restart();
  ioc.poll();
}

}  // namespace gp::proxy::test
