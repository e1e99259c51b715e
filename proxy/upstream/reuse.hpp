// Whether an upstream connection may serve another request after this one: the one place
// that decides it. A connection is reused only when its response was completely framed and
// nothing beyond it was read: otherwise whatever the upstream sends next would be taken as
// the answer to someone else's request. (The pool also peeks each connection for unread
// bytes or a close before it hands it out: proxy/upstream/upstream_pool.hpp.)
#pragma once

#include <ostream>  // boost/core string_view (through verb.hpp) needs it

#include <boost/beast/http/verb.hpp>
#include <cstddef>
#include <cstdint>

namespace gp::proxy {

struct ReuseFacts {
  bool exchange_ok = false;        // request sent, response relayed, no error on either side
  bool response_complete = false;  // the parser reached the end of the response
  boost::beast::http::verb method = boost::beast::http::verb::get;
  unsigned status = 0;
  unsigned version = 11;         // of the response
  bool keep_alive = false;       // the response head allows it (no Connection: close)
  bool close_delimited = false;  // a body that ends with the connection
  bool declared_body = false;    // Content-Length > 0 or chunked, in the head
  std::size_t leftover = 0;      // bytes read beyond the response
};

// Why a connection is not reused; `reuse` when it may be. The names are the reason labels of
// grayproxy_upstream_connections_closed_total.
enum class ReuseVerdict : std::uint8_t { reuse, aborted, stray_bytes, unframed };

ReuseVerdict decide_reuse(const ReuseFacts& f);

}  // namespace gp::proxy
