// RFC 9110 7.6 forwarding rules: how a parsed head is rewritten before it is re-serialised,
// for the upstream (a request) and for the client (a response). Pure: no I/O.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <optional>
#include <string_view>

#include "proxy/http/body_framing.hpp"

namespace gp::proxy {

// Removes Connection and every field it names, plus Keep-Alive, Proxy-Connection, TE,
// Trailer, Transfer-Encoding, Upgrade and Content-Length: the caller sets the framing
// again from what the parser established, so only one framing header is ever sent.
void strip_hop_by_hop(boost::beast::http::fields& fields);

// Appends the peer to X-Forwarded-For (one combined field) and sets X-Forwarded-Proto.
void add_forwarded(boost::beast::http::fields& fields, std::string_view peer_ip, bool tls);

// The protocol a request asks to switch to (its Upgrade field, when Connection names
// "upgrade"), if the proxy passes it on: any but h2c (RFC 9113 dropped it, and an HTTP/2
// connection would bypass what the proxy checks on HTTP/1.1). Empty: no upgrade.
std::string_view requested_upgrade(const boost::beast::http::request_header<>& head,
                                   bool connection_upgrade);

// What the request head for the upstream needs besides the client's fields.
struct RequestRewrite {
  std::string_view peer_ip;
  bool tls = false;                // the client connection is TLS (X-Forwarded-Proto)
  std::string_view version_label;  // x-gray-version
  bool chunked = false;            // the client's body framing, as parsed
  std::optional<std::uint64_t> content_length;
  std::string_view upgrade;  // requested_upgrade(), copied before the rewrite
};

// Rewrites a client's request head for the upstream: hop-by-hop fields and Expect out,
// X-Forwarded-For/-Proto and x-gray-version in, HTTP/1.1, one framing field, and
// "Connection: upgrade" with the Upgrade field when the client asked to switch protocols.
void rewrite_request_head(boost::beast::http::request_header<>& head, const RequestRewrite& r);

// Host for a request that had none (HTTP/1.0): forwarded as HTTP/1.1, it must carry one; the
// upstream's own name (the TLS server name, else its address) as nginx's $proxy_host.
void ensure_host(boost::beast::http::request_header<>& head, std::string_view authority);

// How the body of an upstream response goes on to the client. `declared_length` and
// `chunked` are the parser's view of the response head.
BodyFraming response_framing(boost::beast::http::verb method, unsigned status, bool chunked,
                             std::optional<std::uint64_t> declared_length, unsigned client_version);

struct ResponseRewrite {
  unsigned client_version = 11;
  bool keep_alive = true;  // the client connection stays open after it
  BodyFraming framing = BodyFraming::none;
  std::optional<std::uint64_t> content_length;  // as declared by the upstream
  std::string_view upgrade;                     // a 101's Upgrade field, kept for the client
};

// Rewrites an upstream response head for the client: hop-by-hop fields out, the framing
// that `framing` says, the client's HTTP version and its Connection.
void rewrite_response_head(boost::beast::http::response_header<>& head, const ResponseRewrite& r);

}  // namespace gp::proxy
