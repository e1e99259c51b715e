// Responses the proxy answers itself (4xx/5xx): short text bodies, explicit framing.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string_view>

namespace gp::proxy {

boost::beast::http::response<boost::beast::http::string_body> make_error_response(
    boost::beast::http::status status, std::string_view reason, bool keep_alive, unsigned version);

}  // namespace gp::proxy
