#include "proxy/forwarding.hpp"

#include <boost/beast/http/field.hpp>
#include <string>
#include <vector>

#include "proxy/header_util.hpp"

namespace gp::proxy {

namespace http = boost::beast::http;

void strip_hop_by_hop(http::fields& fields) {
  // Collect names first: erasing while iterating the Connection values would invalidate them.
  std::vector<std::string> named;
  for (auto const& f : as_range(fields.equal_range(http::field::connection))) {
    for_each_token(f.value(), [&](std::string_view tok) {
      // Never let a client delete what identifies the request.
      if (!iequals(tok, "host")) named.emplace_back(tok);
    });
  }
  for (auto const& name : named) fields.erase(name);
  for (auto f : {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
                 http::field::te, http::field::trailer, http::field::transfer_encoding,
                 http::field::upgrade, http::field::content_length})
    fields.erase(f);
}

void add_forwarded(http::fields& fields, std::string_view peer_ip, bool tls) {
  std::string xff;
  for (auto const& f : as_range(fields.equal_range("x-forwarded-for"))) {
    auto v = trim(f.value());
    if (v.empty()) continue;
    if (!xff.empty()) xff.append(", ");
    xff.append(v);
  }
  if (!xff.empty()) xff.append(", ");
  xff.append(peer_ip);
  fields.erase("x-forwarded-for");
  fields.set("x-forwarded-for", xff);
  fields.set("x-forwarded-proto", tls ? "https" : "http");
}

}  // namespace gp::proxy
