// What Beast's parser lets through but a proxy must not forward: checked on the parsed
// request head, before anything is sent upstream, and on the parsed response head, before
// anything is sent to the client (request smuggling and response splitting defences).
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

#include "proxy/http/wire_error.hpp"

namespace gp::proxy {

struct HeadVerdict {
  boost::beast::http::status status = boost::beast::http::status::ok;  // ok = acceptable
  const char* reason = "";  // for the log line and the error body
  bool ok() const { return status == boost::beast::http::status::ok; }
};

// Validates framing, Host and target of a parsed request head. May rewrite an
// absolute-form target to origin-form (RFC 9112 3.2.2: its authority replaces Host).
HeadVerdict check_request_head(boost::beast::http::request_header<>& head);

// Validates the framing of a parsed upstream response head (the request rules that apply
// to responses). A rejected response is answered 502 and its connection closed.
HeadVerdict check_response_head(const boost::beast::http::response_header<>& head);

// Checks the raw bytes of a complete head (start line through the empty line) for what
// Beast accepts or repairs silently: obs-fold (which it unfolds), and, as a second line of
// defence, NUL, bare CR, bare LF and whitespace before a field's colon.
HeadVerdict check_raw_head(std::string_view head);

// Length of the request line without its CRLF among the bytes received so far (all of
// them while no LF has arrived), for limits.max_request_line_bytes.
std::size_t request_line_length(std::string_view received);

// The version of a complete request line among the bytes received, when it is well formed
// ("HTTP/" DIGIT "." DIGIT after method and target): its major and minor digits, else none.
// Beast takes only 1.0 and 1.1: a higher 1.x is read as 1.1 (RFC 9112 2.3, as nginx does),
// another major version is answered 505, not 400.
struct RequestLineVersion {
  int major = -1;
  int minor = -1;
  std::size_t minor_offset = 0;  // of the minor digit in `received`
  bool known() const { return major >= 0; }
};
RequestLineVersion request_line_version(std::string_view received);

// The first look at the bytes of a request head while they arrive, before Beast parses them
// (called while none of the head has been consumed): request_line_too_long over
// `line_limit`, unsupported_version for a major version other than 1, and a higher 1.x
// version rewritten to 1.1 in place. Success means "parse on".
boost::system::error_code precheck_request_line(char* received, std::size_t size,
                                                std::size_t line_limit);

// Method is safe to send twice (RFC 9110 9.2.2) when the request has no body.
bool is_idempotent(boost::beast::http::verb method);

}  // namespace gp::proxy
