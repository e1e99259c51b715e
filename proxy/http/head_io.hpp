// Reading a head into a MessageParser within a byte limit, and writing one out.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <string>

#include "proxy/asio_types.hpp"
#include "proxy/http/http_checks.hpp"
#include "proxy/http/message_parser.hpp"

namespace gp::proxy {

// Reads until `p` has a complete head. Beast applies its own head limit per put() only, so
// the limit is enforced here on the bytes of the whole head (http::error::header_limit). A request
// line is prechecked as it arrives (precheck_request_line, `line_limit`); the raw head as a whole
// once complete (check_raw_head: WireError::invalid_head, or invalid_response for a response, whose
// reason goes to `reject_reason`). `before_read` runs before each socket read (deadlines).
// The end of the stream before any byte is http::error::end_of_stream, after some
// partial_message. On success the head's bytes are consumed from `buf`.
template <bool isRequest, class S, class BeforeRead>
Task<beast::error_code> read_head(S& s, beast::flat_buffer& buf, MessageParser<isRequest>& p,
                                  std::size_t limit, std::size_t line_limit,
                                  BeforeRead&& before_read, const char*& reject_reason) {
  namespace http = beast::http;
  p.eager(false);
  buf.max_size(limit);  // growth clamps here, never past it
  // Beast consumes a head's complete lines as they arrive; they stay in `buf` (after
  // `parsed`) until the head is complete, so the raw check sees all of it.
  std::size_t parsed = 0;
  for (;;) {
    if (buf.size() > parsed) {
      char* data = static_cast<char*>(buf.data().data());
      if constexpr (isRequest) {
        if (auto ec = precheck_request_line(data, buf.size(), line_limit)) co_return ec;
      }
      beast::error_code ec;
      parsed += p.put(asio::buffer(data + parsed, buf.size() - parsed), ec);
      if (!ec && p.is_header_done()) {
        HeadVerdict v = check_raw_head(std::string_view(data, parsed));
        if constexpr (!isRequest) {
          if (v.ok()) v = check_response_head(p.head());
        }
        buf.consume(parsed);
        if (v.ok()) co_return beast::error_code{};
        reject_reason = v.reason;
        co_return isRequest ? WireError::invalid_head : WireError::invalid_response;
      }
      if (ec && ec != http::error::need_more) co_return ec;
    }
    if (buf.size() >= limit) co_return http::error::header_limit;
    before_read();
    auto [ec, n] = co_await s.async_read_some(
        buf.prepare(std::min<std::size_t>(limit - buf.size(), 16384)), use_task);
    if (ec == asio::error::eof)
      co_return buf.size() == 0 ? http::error::end_of_stream : http::error::partial_message;
    if (ec) co_return ec;
    buf.commit(n);
  }
}

// The head as bytes (start line, fields, empty line) into `out`, replacing its contents; the
// caller keeps `out` to reuse its capacity.
template <bool isRequest>
void serialize_head(const beast::http::header<isRequest, beast::http::fields>& h,
                    std::string& out) {
  auto write = [&](const auto& w) {
    const auto bufs = w.get();
    out.resize(asio::buffer_size(bufs));
    asio::buffer_copy(asio::buffer(out), bufs);
  };
  if constexpr (isRequest)
    write(beast::http::fields::writer(h, h.version(), h.method()));
  else
    write(beast::http::fields::writer(h, h.version(), h.result_int()));
}

}  // namespace gp::proxy
