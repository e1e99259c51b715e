// Streams one message from a parser to another stream as its bytes arrive: each socket read
// has its own deadline and whatever body bytes it brought are written at once (a server-sent
// event is not held back until some buffer fills), straight from the read buffer. The
// outgoing framing is the proxy's own: the body's bytes, re-chunked when it is chunked (chunk
// extensions and trailers are dropped). Every byte waiting in the read buffer is bounded:
// chunk-size lines and trailer blocks by check_chunked_wait, the rest by one read's size.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/container/static_vector.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "proxy/asio_types.hpp"
#include "proxy/http/body_framing.hpp"
#include "proxy/http/chunked_wait.hpp"
#include "proxy/http/deadline.hpp"
#include "proxy/http/message_parser.hpp"

namespace gp::proxy {

enum class RelaySide : std::uint8_t { none, read, write };

struct RelayResult {
  boost::system::error_code ec;
  RelaySide side = RelaySide::none;  // which stream failed
  bool head_sent = false;            // the head reached `out` (nothing else can answer)
  bool ok() const { return !ec; }
};

struct RelaySettings {
  std::chrono::milliseconds read_timeout;   // each read from `in`
  std::chrono::milliseconds write_timeout;  // each write to `out`
  std::size_t trailer_limit = 61440;        // the sender's head limit
  std::size_t read_size = 32 * 1024;        // one socket read
};

// The read buffer's capacity for a body: one read beyond the longest wait the parser may have.
inline std::size_t relay_buffer_limit(const RelaySettings& s) {
  return std::max(kMaxChunkLineBytes + 2, s.trailer_limit + kMaxChunkLineBytes + 4) + s.read_size;
}

namespace detail {

inline constexpr std::string_view kCrlf = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// One write's worth of output: the head still unsent, the body pieces, their chunk framing.
class OutBatch {
 public:
  void head(std::string_view h) {
    if (!h.empty()) bufs_.emplace_back(h.data(), h.size());
  }
  template <class Pieces>
  void body(const Pieces& pieces, std::size_t size, BodyFraming framing) {
    if (size == 0) return;
    if (framing == BodyFraming::chunked) {
      auto [end, ec] = std::to_chars(size_line_, size_line_ + 16, size, 16);
      *end++ = '\r';
      *end++ = '\n';
      bufs_.emplace_back(size_line_, static_cast<std::size_t>(end - size_line_));
    }
    for (const auto& b : pieces) bufs_.push_back(b);
    if (framing == BodyFraming::chunked) bufs_.emplace_back(kCrlf.data(), kCrlf.size());
  }
  void last_chunk() { bufs_.emplace_back(kLastChunk.data(), kLastChunk.size()); }
  bool empty() const { return bufs_.empty(); }
  const auto& buffers() const { return bufs_; }

 private:
  boost::container::static_vector<boost::asio::const_buffer, 32 + 4> bufs_;
  char size_line_[20];
};

}  // namespace detail

// Sends `head` (the serialized head still to be written, possibly empty) and streams the body
// that `p` (its head complete) parses from `in` through `in_buf` to `out`. The head leaves
// with the first body bytes when some are already buffered, at once otherwise. On success the
// message is complete (chunked output ended); bytes beyond it stay unread in `in_buf`.
// `body_bytes` counts the body bytes written.
template <bool isRequest, class In, class Out>
Task<RelayResult> relay_message(In& in, beast::flat_buffer& in_buf, MessageParser<isRequest>& p,
                                Out& out, std::string_view head, BodyFraming framing,
                                const RelaySettings& s, std::uint64_t& body_bytes) {
  namespace http = beast::http;
  const std::size_t limit = relay_buffer_limit(s);
  bool head_sent = head.empty();
  in_buf.max_size(limit);  // growth clamps here: the buffer never holds more
  p.eager(true);
  for (;;) {
    std::size_t used = 0;
    if (!p.is_done() && in_buf.size() > 0) {
      beast::error_code ec;
      used = p.put(in_buf.data(), ec);
      if (ec == http::error::need_more || ec == http::error::need_buffer) ec = {};
      if (ec) co_return RelayResult{ec, RelaySide::read, head_sent};
    }
    const bool done = p.is_done();
    detail::OutBatch batch;
    batch.head(head);
    head = {};
    batch.body(p.body(), p.body_size(), framing);
    if (done && framing == BodyFraming::chunked) batch.last_chunk();
    if (!batch.empty()) {
      expire_after(out, s.write_timeout);
      auto [ec, n] = co_await asio::async_write(out, batch.buffers(), use_task);
      if (ec) co_return RelayResult{ec, RelaySide::write, head_sent};
      head_sent = true;
      body_bytes += p.body_size();
    }
    p.clear_body();
    in_buf.consume(used);
    if (done) co_return RelayResult{{}, RelaySide::none, head_sent};
    if (used > 0 && in_buf.size() > 0) continue;  // a put stopped early: parse on first
    if (p.chunked()) {
      const std::string_view pending(static_cast<const char*>(in_buf.data().data()), in_buf.size());
      if (auto ec = check_chunked_wait(pending, kMaxChunkLineBytes, s.trailer_limit))
        co_return RelayResult{ec, RelaySide::read, head_sent};
    }
    if (in_buf.size() >= limit)  // not reached while the checks above hold; a last guard
      co_return RelayResult{WireError::chunk_line_too_long, RelaySide::read, head_sent};
    expire_after(in, s.read_timeout);
    auto [ec, n] = co_await in.async_read_some(
        in_buf.prepare(std::min(s.read_size, limit - in_buf.size())), use_task);
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      // The end of a close-delimited body, or a message cut short.
      if (in_buf.size() > 0)
        co_return RelayResult{http::error::partial_message, RelaySide::read, head_sent};
      beast::error_code eof_ec;
      p.put_eof(eof_ec);
      if (eof_ec) co_return RelayResult{eof_ec, RelaySide::read, head_sent};
      continue;  // done: ends the output
    }
    if (ec) co_return RelayResult{ec, RelaySide::read, head_sent};
    in_buf.commit(n);
  }
}

}  // namespace gp::proxy
