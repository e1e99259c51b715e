#include "proxy/http/http_checks.hpp"

#include <boost/beast/http/field.hpp>
#include <string_view>

#include "proxy/http/header_util.hpp"

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

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Whether a string of digits is at most 2^63-1: the largest length signed 64-bit readers
// (Java, Go, nginx's off_t) can hold; a larger one may be read differently by the next hop.
bool fits_int64(std::string_view digits) {
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  constexpr std::string_view kMax = "9223372036854775807";
  return digits.size() < kMax.size() || (digits.size() == kMax.size() && digits <= kMax);
}

// Framing shared by requests and responses (RFC 9112 6.1-6.3). Anything but one
// Content-Length of plain digits, or one Transfer-Encoding of exactly "chunked" without
// Content-Length, is a framing a peer might read differently from us: rejected, not
// repaired. (Beast accepts "5, 5", "gzip, chunked" and repeated fields.)
template <bool isRequest>
HeadVerdict check_framing(const http::header<isRequest>& head, unsigned version) {
  std::size_t te_fields = 0;
  bool te_chunked = false;
  for (auto const& f : as_range(head.equal_range(http::field::transfer_encoding))) {
    ++te_fields;
    te_chunked = iequals(trim(f.value()), "chunked");
  }
  const std::size_t cl_fields = head.count(http::field::content_length);
  if (te_fields > 0) {
    if (version == 10) return reject(http::status::bad_request, "Transfer-Encoding in HTTP/1.0");
    if (cl_fields > 0)
      return reject(http::status::bad_request, "both Content-Length and Transfer-Encoding");
    if (te_fields > 1) return reject(http::status::bad_request, "repeated Transfer-Encoding");
    if (!te_chunked)
      return reject(http::status::bad_request, "Transfer-Encoding other than chunked");
  }
  if (cl_fields > 1) return reject(http::status::bad_request, "repeated Content-Length");
  if (cl_fields == 1) {
    const std::string_view cl = trim(head[http::field::content_length]);
    if (!all_digits(cl)) return reject(http::status::bad_request, "malformed Content-Length");
    if (!fits_int64(cl)) return reject(http::status::bad_request, "Content-Length too large");
  }
  return {};
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

  if (auto v = check_framing(head, version); !v.ok()) return v;

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

HeadVerdict check_response_head(const http::response_header<>& head) {
  const unsigned version = head.version();
  if (version != 10 && version != 11)
    return reject(http::status::bad_request, "unsupported HTTP version");
  return check_framing(head, version);
}

HeadVerdict check_raw_head(std::string_view head) {
  bool line_start = true;  // at the first byte of a line
  bool in_name = false;    // in a field line, before its colon
  bool first_line = true;
  for (std::size_t i = 0; i < head.size(); ++i) {
    const char c = head[i];
    if (line_start && !first_line) {
      if (c == ' ' || c == '\t') return reject(http::status::bad_request, "obs-fold");
      in_name = c != '\r';
    }
    line_start = false;
    switch (c) {
      case '\0':
        return reject(http::status::bad_request, "NUL in head");
      case '\r':
        if (i + 1 >= head.size() || head[i + 1] != '\n')
          return reject(http::status::bad_request, "bare CR in head");
        break;
      case '\n':
        if (i == 0 || head[i - 1] != '\r')
          return reject(http::status::bad_request, "bare LF in head");
        line_start = true;
        first_line = false;
        in_name = false;
        break;
      case ':':
        if (in_name && (head[i - 1] == ' ' || head[i - 1] == '\t'))
          return reject(http::status::bad_request, "whitespace before colon");
        in_name = false;
        break;
      default:
        break;
    }
  }
  return {};
}

std::size_t request_line_length(std::string_view received) {
  const auto lf = received.find('\n');
  if (lf == std::string_view::npos) return received.size();
  return lf > 0 && received[lf - 1] == '\r' ? lf - 1 : lf;
}

RequestLineVersion request_line_version(std::string_view received) {
  const auto lf = received.find('\n');
  if (lf == std::string_view::npos) return {};
  std::string_view line = received.substr(0, lf);
  if (line.ends_with('\r')) line.remove_suffix(1);
  // method SP target SP "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3, 3)
  constexpr std::size_t kVersion = 9;  // " HTTP/x.y"
  if (line.size() <= kVersion || line.find(' ') == line.size() - kVersion) return {};
  const std::string_view v = line.substr(line.size() - kVersion);
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!v.starts_with(" HTTP/") || !digit(v[6]) || v[7] != '.' || !digit(v[8])) return {};
  return {v[6] - '0', v[8] - '0', line.size() - 1};
}

boost::system::error_code precheck_request_line(char* received, std::size_t size,
                                                std::size_t line_limit) {
  const std::string_view bytes(received, size);
  if (request_line_length(bytes) > line_limit) return WireError::request_line_too_long;
  const auto version = request_line_version(bytes);
  if (version.known() && version.major != 1) return WireError::unsupported_version;
  if (version.major == 1 && version.minor > 1) received[version.minor_offset] = '1';
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
