#include "proxy/http/error_response.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "proxy/http/head_io.hpp"

namespace gp::proxy {

namespace http = boost::beast::http;

std::string error_response_bytes(http::status status, std::string_view reason, bool keep_alive,
                                 unsigned version, bool head_request) {
  std::string body = std::to_string(static_cast<unsigned>(status));
  body.push_back(' ');
  body.append(http::obsolete_reason(status));
  body.append(": ");
  body.append(reason);
  body.push_back('\n');
  http::response_header<> head;
  head.result(status);
  head.version(version);
  head.set(http::field::server, "grayproxy");
  head.set(http::field::content_type, "text/plain; charset=utf-8");
  head.set(http::field::content_length, std::to_string(body.size()));
  if (version == 11 && !keep_alive) head.set(http::field::connection, "close");
  if (version == 10 && keep_alive) head.set(http::field::connection, "keep-alive");
  std::string out;
  serialize_head(head, out);
  if (!head_request) out += body;
  return out;
}

}  // namespace gp::proxy
