// RFC 9110 7.6 forwarding rules applied to a parsed head before it is re-serialised.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <string_view>

namespace gp::proxy {

// Removes Connection and every field it names, plus Keep-Alive, Proxy-Connection, TE,
// Trailer, Transfer-Encoding, Upgrade and Content-Length: the caller sets the framing
// again from what the parser established, so only one framing header is ever sent.
void strip_hop_by_hop(boost::beast::http::fields& fields);

// Appends the peer to X-Forwarded-For (one combined field) and sets X-Forwarded-Proto.
void add_forwarded(boost::beast::http::fields& fields, std::string_view peer_ip, bool tls);

}  // namespace gp::proxy
