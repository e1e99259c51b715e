#include "proxy/error_response.hpp"

#include <string>

namespace gp::proxy {

namespace http = boost::beast::http;

http::response<http::string_body> make_error_response(http::status status, std::string_view reason,
                                                      bool keep_alive, unsigned version) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "grayproxy");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  std::string body = std::to_string(static_cast<unsigned>(status));
  body.push_back(' ');
  body.append(http::obsolete_reason(status));
  body.append(": ");
  body.append(reason);
  body.push_back('\n');
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

}  // namespace gp::proxy
