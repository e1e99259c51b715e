// The first step of an exchange on a connection: the request head, then its body streamed
// from the client (after a "100 Continue" when the client waits for one).
#pragma once

#include <boost/asio/write.hpp>
#include <string_view>

#include "proxy/asio_types.hpp"
#include "proxy/http/body_relay.hpp"
#include "proxy/http/deadline.hpp"
#include "proxy/http/message_parser.hpp"

namespace gp::proxy {

struct SendResult {
  beast::error_code ec;
  bool client_side = false;   // the error is the client's (its body or its connection)
  bool body_started = false;  // client body bytes were consumed: the request cannot be resent
};

// `head`: the serialized request head for the upstream. The request body, if any, is
// relayed from `down_buf`/`down` as it arrives (RelaySettings: read_timeout per client read,
// write_timeout per upstream write); `body_bytes` counts it.
template <class Down, class Up>
Task<SendResult> send_request(Down& down, beast::flat_buffer& down_buf, MessageParser<true>& req,
                              Up& up, std::string_view head, bool expect_continue,
                              unsigned client_version, const RelaySettings& s,
                              std::uint64_t& body_bytes) {
  if (!req.is_done() && expect_continue) {
    // The head alone; the client sends its body once told to go on (RFC 9110 10.1.1).
    expire_after(up, s.write_timeout);
    auto [ec, n] = co_await asio::async_write(up, asio::buffer(head.data(), head.size()), use_task);
    if (ec) co_return SendResult{ec, false, false};
    head = {};
    if (client_version == 11) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      expire_after(down, s.read_timeout);
      auto [cec, cn] = co_await asio::async_write(
          down, asio::buffer(kContinue.data(), kContinue.size()), use_task);
      if (cec) co_return SendResult{cec, true, false};
    }
  }
  const bool has_body = !req.is_done();
  const BodyFraming framing = !has_body       ? BodyFraming::none
                              : req.chunked() ? BodyFraming::chunked
                                              : BodyFraming::length;
  const RelayResult r =
      co_await relay_message(down, down_buf, req, up, head, framing, s, body_bytes);
  co_return SendResult{r.ec, r.side == RelaySide::read, has_body};
}

}  // namespace gp::proxy
