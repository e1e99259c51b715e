// Errors of the wire rules that Beast does not report itself: limits, checks and framing the
// proxy adds on top of Beast's parser. Each maps to one answer and one counted reason.
#pragma once

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace gp::proxy {

enum class WireError {
  request_line_too_long = 1,  // 414
  invalid_head,               // check_raw_head rejected a request head: 400
  invalid_response,           // an upstream response head failed the checks: 502
  unsupported_version,        // a well-formed HTTP version other than 1.0 and 1.1: 505
  too_many_fields,            // more head fields than the limit: 431 / 502
  underscore_header,          // a request field name with '_' under "reject": 400
  chunk_line_too_long,        // a chunk-size line (with extensions) over the limit: 400 / 502
  trailers_too_large,         // a trailer block over the head limit or field count: 400 / 502
  unrequested_upgrade,        // 101 to a request that did not ask to upgrade: 502
  closed_before_response,     // the upstream closed without sending a byte: 502
};

const boost::system::error_category& wire_error_category();

inline boost::system::error_code make_error_code(WireError e) {
  return {static_cast<int>(e), wire_error_category()};
}

}  // namespace gp::proxy

template <>
struct boost::system::is_error_code_enum<gp::proxy::WireError> : std::true_type {};
