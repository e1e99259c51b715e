// Per-operation deadlines on any stream: Beast's basic_stream (plain or under TLS) closes the
// socket when the next read or write outlasts the time given; an in-memory test stream has no
// clock, so there it is a no-op.
#pragma once

#include <boost/beast/core/stream_traits.hpp>
#include <chrono>

namespace gp::proxy {

template <class S>
void expire_after(S& s, std::chrono::milliseconds d) {
  auto& lowest = boost::beast::get_lowest_layer(s);
  if constexpr (requires { lowest.expires_after(d); }) lowest.expires_after(d);
}

}  // namespace gp::proxy
