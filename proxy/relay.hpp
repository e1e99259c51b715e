// Streams a message body from a parser to a serializer through a fixed buffer, the way
// Beast's relay example does, so a body of any size passes with constant memory. When the
// serializer has not written the head yet, the head goes out with the first piece of the
// body in one write.
#pragma once

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cstdint>
#include <utility>

#include "proxy/asio_types.hpp"

namespace gp::proxy {

enum class RelaySide { none, read, write };

inline constexpr std::size_t kRelayReadChunk = 32 * 1024;

template <bool isRequest, class In, class Out>
Task<std::pair<beast::error_code, RelaySide>> relay_body(
    In& in, beast::flat_buffer& in_buffer,
    beast::http::parser<isRequest, beast::http::buffer_body>& p, Out& out,
    beast::http::serializer<isRequest, beast::http::buffer_body>& sr, char* buf,
    std::size_t capacity, std::chrono::milliseconds read_timeout,
    std::chrono::milliseconds write_timeout, std::uint64_t& bytes) {
  namespace http = beast::http;
  auto& body = p.get().body();
  // Beast sizes each socket read by the spare capacity of the input buffer; a buffer
  // sized for a head would stream a large body 512 bytes per read.
  if (in_buffer.capacity() - in_buffer.size() < kRelayReadChunk)
    in_buffer.reserve(in_buffer.size() + kRelayReadChunk);
  do {
    if (!p.is_done()) {
      body.data = buf;
      body.size = capacity;
      beast::get_lowest_layer(in).expires_after(read_timeout);
      auto [ec, n] = co_await http::async_read(in, in_buffer, p, use_task);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return std::pair{ec, RelaySide::read};
      const std::size_t got = capacity - body.size;
      bytes += got;
      body.size = got;
      // A null pointer on an empty last piece: Beast 1.81 writes a second, broken
      // zero-length chunk otherwise (beast#3032).
      body.data = got ? buf : nullptr;
      body.more = !p.is_done();
    } else {
      body.data = nullptr;
      body.size = 0;
      body.more = false;
    }
    beast::get_lowest_layer(out).expires_after(write_timeout);
    auto [ec, n] = co_await http::async_write(out, sr, use_task);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return std::pair{ec, RelaySide::write};
  } while (!p.is_done() || !sr.is_done());
  co_return std::pair{beast::error_code{}, RelaySide::none};
}

}  // namespace gp::proxy
