// What Beast's parser lets through but a proxy must not forward: checked on the parsed
// request head, before anything is sent upstream (request smuggling defences).
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <string>

namespace gp::proxy {

struct HeadVerdict {
  boost::beast::http::status status = boost::beast::http::status::ok;  // ok = acceptable
  const char* reason = "";  // for the log line and the error body
  bool ok() const { return status == boost::beast::http::status::ok; }
};

// Validates framing, Host and target of a parsed request head. May rewrite an
// absolute-form target to origin-form (RFC 9112 3.2.2: its authority replaces Host).
HeadVerdict check_request_head(boost::beast::http::request_header<>& head);

// Method is safe to send twice (RFC 9110 9.2.2) when the request has no body.
bool is_idempotent(boost::beast::http::verb method);

}  // namespace gp::proxy
