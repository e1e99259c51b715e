#include "proxy/http_checks.hpp"

#include <boost/beast/http/field.hpp>
#include <string_view>

#include "proxy/header_util.hpp"

namespace gp::proxy {

namespace http = boost::beast::http;

namespace {

HeadVerdict reject(http::status s, const char* why) {
  return {s, why};
}

// RFC 9110 5.6.2 token characters, used for Host validation of reg-names.
bool valid_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == ':' || c == '[' || c == ']' || c == '~' || c == '%' || c == '!' || c == '$' ||
         c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' || c == ',' ||
         c == ';' || c == '=';
}

bool valid_host(std::string_view h) {
  if (h.empty() || h.size() > 255) return false;
  for (char c : h)
    if (!valid_host_char(c)) return false;
  return true;
}

}  // namespace

HeadVerdict check_request_head(http::request_header<>& head) {
  const unsigned version = head.version();
  if (version != 10 && version != 11)
    return reject(http::status::http_version_not_supported, "unsupported HTTP version");
  if (head.method() == http::verb::connect)
    return reject(http::status::method_not_allowed, "CONNECT is not supported");
  if (head.method() == http::verb::unknown) {
    // Extension methods are fine as long as they are tokens; Beast already checked that.
  }

  // Transfer-Encoding: only "chunked", exactly once and last (RFC 9112 6.1). Anything else
  // is a framing the upstream might read differently from us.
  std::size_t te_fields = 0;
  std::size_t chunked_count = 0;
  std::size_t other_codings = 0;
  bool chunked_last = false;
  for (auto const& f : as_range(head.equal_range(http::field::transfer_encoding))) {
    ++te_fields;
    for_each_token(f.value(), [&](std::string_view tok) {
      chunked_last = iequals(tok, "chunked");
      if (chunked_last)
        ++chunked_count;
      else
        ++other_codings;
    });
  }
  if (te_fields > 0) {
    if (version == 10) return reject(http::status::bad_request, "Transfer-Encoding in HTTP/1.0");
    if (!chunked_last)
      return reject(http::status::bad_request, "Transfer-Encoding not ending in chunked");
    if (chunked_count > 1) return reject(http::status::bad_request, "chunked applied twice");
    if (other_codings > 0)
      return reject(http::status::not_implemented, "unsupported transfer coding");
    if (head.count(http::field::content_length) > 0)
      return reject(http::status::bad_request, "both Content-Length and Transfer-Encoding");
  }
  if (head.count(http::field::content_length) > 1)
    return reject(http::status::bad_request, "repeated Content-Length");

  // Target: origin-form, absolute-form (rewritten), or "*" for OPTIONS.
  std::string_view target = head.target();
  if (target.empty()) return reject(http::status::bad_request, "empty request target");
  if (target == "*") {
    if (head.method() != http::verb::options)
      return reject(http::status::bad_request, "'*' target");
  } else if (target.front() != '/') {
    std::string_view rest;
    if (istarts_with(target, "http://"))
      rest = target.substr(7);
    else if (istarts_with(target, "https://"))
      rest = target.substr(8);
    else
      return reject(http::status::bad_request, "malformed request target");
    auto slash = rest.find_first_of("/?");
    std::string authority(rest.substr(0, slash));
    std::string path =
        slash == std::string_view::npos ? std::string("/") : std::string(rest.substr(slash));
    if (path.front() == '?') path.insert(path.begin(), '/');
    if (authority.empty() || authority.find('@') != std::string::npos || !valid_host(authority))
      return reject(http::status::bad_request, "malformed authority in absolute-form target");
    head.set(http::field::host, authority);
    head.target(path);
  }

  // Host: exactly one in HTTP/1.1 (RFC 9112 3.2), and well-formed.
  const auto hosts = head.count(http::field::host);
  if (hosts > 1) return reject(http::status::bad_request, "repeated Host");
  if (hosts == 0 && version == 11) return reject(http::status::bad_request, "missing Host");
  if (hosts == 1 && !valid_host(head[http::field::host]))
    return reject(http::status::bad_request, "malformed Host");

  // Expect: only 100-continue is defined (RFC 9110 10.1.1).
  if (head.count(http::field::expect) > 0 &&
      !iequals(trim(head[http::field::expect]), "100-continue"))
    return reject(http::status::expectation_failed, "unsupported Expect");

  return {};
}

bool is_idempotent(http::verb method) {
  switch (method) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::trace:
    case http::verb::put:
    case http::verb::delete_:
      return true;
    default:
      return false;
  }
}

}  // namespace gp::proxy
