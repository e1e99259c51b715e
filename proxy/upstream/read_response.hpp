// The second step of an exchange: the upstream's response head. Interim 1xx responses are
// read and dropped (the proxy answers Expect: 100-continue itself); a 101 ends the head only
// for a request that asked to upgrade.
#pragma once

#include <boost/beast/http/error.hpp>
#include <chrono>
#include <optional>

#include "proxy/asio_types.hpp"
#include "proxy/http/deadline.hpp"
#include "proxy/http/head_io.hpp"
#include "proxy/http/message_parser.hpp"
#include "proxy/http/wire_error.hpp"

namespace gp::proxy {

// Reads the final response head into `res` (re-created for each interim response, at most
// 16 of them) within `timeout` for the whole of it. Errors besides Beast's and the stream's:
// WireError::closed_before_response (the upstream closed without a byte),
// WireError::invalid_response (a head that fails the checks; `reason` says why),
// WireError::unrequested_upgrade (a 101, or an upgrade without Upgrade field, that the
// request did not ask for), WireError::too_many_fields.
template <class Up>
Task<beast::error_code> read_response_head(Up& up, beast::flat_buffer& buf,
                                           std::optional<MessageParser<false>>& res,
                                           std::size_t limit, std::size_t max_fields,
                                           std::chrono::milliseconds timeout,
                                           beast::http::verb method, bool upgrade_requested,
                                           const char*& reason) {
  namespace http = beast::http;
  // Interim responses are dropped; an upstream sending them without end would hold the
  // request until the deadline, so a few are allowed (HAProxy, for one, keeps none).
  constexpr int kMaxInterim = 16;
  expire_after(up, timeout);
  for (int interim = 0;; ++interim) {
    if (interim > kMaxInterim) {
      reason = "more than 16 interim (1xx) responses";
      co_return WireError::invalid_response;
    }
    res.emplace(ParserLimits{max_fields, UnderscoreAction::allow});
    if (method == http::verb::head) res->skip(true);
    auto ec = co_await read_head(
        up, buf, *res, limit, 0, [] {}, reason);
    if (ec == http::error::end_of_stream) co_return WireError::closed_before_response;
    if (ec) co_return ec;
    const unsigned code = res->head().result_int();
    if (code == 101) {
      if (upgrade_requested && res->head().count(http::field::upgrade) == 1)
        co_return beast::error_code{};
      co_return WireError::unrequested_upgrade;
    }
    if (code >= 200 || code < 100) co_return beast::error_code{};
  }
}

}  // namespace gp::proxy
