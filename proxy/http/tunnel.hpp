// After a 101 Switching Protocols (a WebSocket, say) the proxy only moves bytes: a tunnel
// pumps each direction as bytes arrive until both are closed. One direction closing is passed
// on as a half-close (plain TCP) or ends the tunnel (TLS has no half-close). The tunnel ends
// when no byte moved either way for `idle` (as HAProxy's "timeout tunnel" and Envoy's idle
// timeout: a quiet client of a server that pushes is not idle), when one write waited `idle`
// for its peer to read, or at the drain deadline once the process drains.
#pragma once

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdint>
#include <type_traits>

#include "proxy/asio_types.hpp"

namespace gp::proxy {

// Shared between the tunnel and whoever may end it early (the session, when draining).
struct TunnelControl {
  explicit TunnelControl(Executor ex) : timer(ex) {}
  // The process drains: the tunnel ends at `deadline` at the latest.
  void drain(std::chrono::steady_clock::time_point deadline) {
    draining = true;
    drain_deadline = deadline;
    timer.cancel();  // the watchdog looks again
  }
  Timer timer;
  bool draining = false;
  std::chrono::steady_clock::time_point drain_deadline{};
};

struct TunnelResult {
  std::uint64_t client_to_upstream = 0;
  std::uint64_t upstream_to_client = 0;
  bool idle_timeout = false;  // ended by the idle timeout (or a stalled write)
  bool drained = false;       // ended by the drain deadline
};

namespace detail {

template <class S>
void close_stream(S& s) {
  auto& lowest = beast::get_lowest_layer(s);
  beast::error_code ignored;
  if constexpr (requires { lowest.socket(); }) {
    lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest.socket().close(ignored);
  } else {
    lowest.close();
  }
}

// Passes on the end of one direction: FIN on plain TCP; a TLS stream cannot half-close
// (false: the tunnel ends).
template <class S>
bool half_close(S& s) {
  auto& lowest = beast::get_lowest_layer(s);
  if constexpr (std::is_same_v<std::remove_cvref_t<S>, TlsStream>) {
    return false;
  } else if constexpr (requires { lowest.socket(); }) {
    beast::error_code ec;
    lowest.socket().shutdown(tcp::socket::shutdown_send, ec);
    return !ec;
  } else {
    return false;  // an in-memory test stream: close() would also end its own reads
  }
}

struct TunnelState {
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_activity = Clock::now();
  Clock::time_point write_started[2]{};  // per direction, while a write waits
  bool writing[2]{false, false};
  int open_directions = 2;
  bool closed = false;
};

inline constexpr std::size_t kTunnelRead = 16 * 1024;

}  // namespace detail

// Runs the tunnel between `client` and `upstream`. `client_buf` and `upstream_buf` hold bytes
// each side sent before the switch (sent on first). Returns when both directions are done.
template <class Client, class Upstream>
Task<TunnelResult> run_tunnel(Client& client, beast::flat_buffer& client_buf, Upstream& upstream,
                              beast::flat_buffer& upstream_buf, std::chrono::milliseconds idle,
                              TunnelControl& control) {
  using namespace asio::experimental::awaitable_operators;
  using Clock = std::chrono::steady_clock;
  detail::TunnelState st;
  TunnelResult result;
  auto close_all = [&] {
    if (st.closed) return;
    st.closed = true;
    detail::close_stream(client);
    detail::close_stream(upstream);
  };

  auto pump = [&](auto& from, beast::flat_buffer& buf, auto& to, int dir,
                  std::uint64_t& bytes) -> Task<void> {
    for (;;) {
      if (buf.size() == 0) {
        auto [ec, n] = co_await from.async_read_some(buf.prepare(detail::kTunnelRead), use_task);
        if (ec) {
          // The end of this direction: passed on, and the tunnel lives while the other does.
          if (st.closed || (ec != asio::error::eof) || !detail::half_close(to)) close_all();
          break;
        }
        buf.commit(n);
        st.last_activity = Clock::now();
      }
      st.writing[dir] = true;
      st.write_started[dir] = Clock::now();
      auto [ec, n] = co_await asio::async_write(to, buf.data(), use_task);
      st.writing[dir] = false;
      if (ec) {
        close_all();
        break;
      }
      bytes += n;
      buf.consume(n);
      st.last_activity = Clock::now();
    }
    if (--st.open_directions == 0) control.timer.cancel();
  };

  auto watchdog = [&]() -> Task<void> {
    while (st.open_directions > 0) {
      auto deadline = st.last_activity + idle;
      for (int d = 0; d < 2; ++d)
        if (st.writing[d]) deadline = std::min(deadline, st.write_started[d] + idle);
      if (control.draining) deadline = std::min(deadline, control.drain_deadline);
      if (Clock::now() >= deadline) {
        if (control.draining && Clock::now() >= control.drain_deadline)
          result.drained = true;
        else
          result.idle_timeout = true;
        close_all();
        break;
      }
      control.timer.expires_at(deadline);
      co_await control.timer.async_wait(use_task);  // woken early by drain() or the pumps' end
    }
  };

  co_await (pump(client, client_buf, upstream, 0, result.client_to_upstream) &&
            pump(upstream, upstream_buf, client, 1, result.upstream_to_client) && watchdog());
  close_all();
  co_return result;
}

}  // namespace gp::proxy
