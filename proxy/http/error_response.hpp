// Responses the proxy answers itself (4xx/5xx): short text bodies, explicit framing.
#pragma once

#include <boost/beast/http/status.hpp>
#include <string>
#include <string_view>

namespace gp::proxy {

// The whole response as bytes. To a HEAD request it is the head alone, with the
// Content-Length a GET would have had (RFC 9110 9.3.2): a body there would be read as the
// start of the next response by a client that pipelines or pools its connections.
std::string error_response_bytes(boost::beast::http::status status, std::string_view reason,
                                 bool keep_alive, unsigned version, bool head_request);

}  // namespace gp::proxy
