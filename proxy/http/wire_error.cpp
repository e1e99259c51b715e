#include "proxy/http/wire_error.hpp"

#include <string>

namespace gp::proxy {

namespace {

class WireErrorCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "grayproxy.wire"; }
  std::string message(int ev) const override {
    switch (static_cast<WireError>(ev)) {
      case WireError::request_line_too_long:
        return "request line too long";
      case WireError::invalid_head:
        return "invalid request head";
      case WireError::invalid_response:
        return "invalid upstream response head";
      case WireError::unsupported_version:
        return "unsupported HTTP version";
      case WireError::too_many_fields:
        return "too many header fields";
      case WireError::underscore_header:
        return "header name with underscore";
      case WireError::chunk_line_too_long:
        return "chunk line too long";
      case WireError::trailers_too_large:
        return "trailers too large";
      case WireError::unrequested_upgrade:
        return "101 Switching Protocols to a request that did not ask to upgrade";
      case WireError::closed_before_response:
        return "upstream closed the connection before responding";
    }
    return "unknown wire error";
  }
};

}  // namespace

const boost::system::error_category& wire_error_category() {
  static const WireErrorCategory category;
  return category;
}

}  // namespace gp::proxy
