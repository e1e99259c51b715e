#include "proxy/http/forwarding.hpp"

#include <boost/beast/http/field.hpp>
#include <string>
#include <vector>

#include "proxy/http/header_util.hpp"

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

std::string_view requested_upgrade(const http::request_header<>& head, bool connection_upgrade) {
  if (!connection_upgrade || head.version() != 11) return {};
  if (head.count(http::field::upgrade) != 1) return {};
  const std::string_view value = trim(head[http::field::upgrade]);
  bool h2c = false;
  for_each_token(value, [&](std::string_view tok) { h2c = h2c || iequals(tok, "h2c"); });
  return h2c ? std::string_view() : value;
}

void rewrite_request_head(http::request_header<>& head, const RequestRewrite& r) {
  const std::string upgrade(r.upgrade);  // r.upgrade may point into a field erased below
  strip_hop_by_hop(head);
  head.erase(http::field::expect);
  if (upgrade.empty()) head.erase(http::field::http2_settings);  // h2c's companion
  add_forwarded(head, r.peer_ip, r.tls);
  head.set("x-gray-version", r.version_label);
  head.version(11);
  if (r.chunked)
    head.set(http::field::transfer_encoding, "chunked");
  else if (r.content_length)
    head.set(http::field::content_length, std::to_string(*r.content_length));
  if (!upgrade.empty()) {
    head.set(http::field::connection, "upgrade");
    head.set(http::field::upgrade, upgrade);
  }
}

void ensure_host(http::request_header<>& head, std::string_view authority) {
  if (head.count(http::field::host) == 0) head.set(http::field::host, authority);
}

BodyFraming response_framing(http::verb method, unsigned status, bool chunked,
                             std::optional<std::uint64_t> declared_length,
                             unsigned client_version) {
  if (method == http::verb::head || status < 200 || status == 204 || status == 304)
    return BodyFraming::none;
  if (declared_length && !chunked)
    return *declared_length > 0 ? BodyFraming::length : BodyFraming::none;
  return client_version == 11 ? BodyFraming::chunked : BodyFraming::close;
}

void rewrite_response_head(http::response_header<>& head, const ResponseRewrite& r) {
  const std::string upgrade(r.upgrade);
  strip_hop_by_hop(head);
  const unsigned status = head.result_int();
  switch (r.framing) {
    case BodyFraming::none:
      // A HEAD or 304 response keeps the length it announces (RFC 9110 8.6); 1xx and 204
      // never carry one.
      if (r.content_length && status >= 200 && status != 204)
        head.set(http::field::content_length, std::to_string(*r.content_length));
      break;
    case BodyFraming::length:
      head.set(http::field::content_length, std::to_string(*r.content_length));
      break;
    case BodyFraming::chunked:
      head.set(http::field::transfer_encoding, "chunked");
      break;
    case BodyFraming::close:
      break;
  }
  head.version(r.client_version);
  if (!upgrade.empty()) {
    head.set(http::field::connection, "upgrade");
    head.set(http::field::upgrade, upgrade);
  } else if (r.client_version == 11 && !r.keep_alive) {
    head.set(http::field::connection, "close");
  } else if (r.client_version == 10 && r.keep_alive) {
    head.set(http::field::connection, "keep-alive");
  }
}

}  // namespace gp::proxy
