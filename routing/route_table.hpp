// Route matching: host, path prefix, optional header. Built once per snapshot, read-only after.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>

#include "config/config.hpp"

namespace gp::routing {

// Host without port, brackets or trailing dot ("[::1]:80" -> "::1", "A.com.:8080" -> "A.com");
// case is left as is. Exposed for the proxy's logs and for tests.
std::string_view normalize_host(std::string_view host);

class RouteTable {
 public:
  explicit RouteTable(const std::vector<config::Route>& routes);

  // Index into `routes` of the best match, or -1. `host` is the Host header value (port
  // allowed), `target` the request target (query and fragment ignored). Precedence, first
  // difference wins: exact host > "*.suffix" (longer suffix first) > any host; longer
  // path_prefix; with a header match over without; config order. A more specific host whose
  // routes all miss the path falls through to less specific hosts. Does not allocate.
  [[nodiscard]] int match(std::string_view host, std::string_view target,
                          const boost::beast::http::fields& headers) const;

 private:
  enum class HostKind : std::uint8_t { any, suffix, exact };
  struct Entry {
    int index;
    HostKind kind;
    std::string host;  // lower-case; for suffix routes ".example.com"
    std::string path_prefix;
    bool has_header;
    std::string header_name;  // lower-case
    std::string header_value;
  };
  std::vector<Entry> entries_;  // sorted by precedence: the first full match is the answer
};

}  // namespace gp::routing
