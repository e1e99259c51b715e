#include "routing/route_table.hpp"

#include <algorithm>
#include <tuple>

#include "routing/header_values.hpp"

namespace gp::routing {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

bool ends_with_lower(std::string_view s, std::string_view lower_suffix) {
  return s.size() >= lower_suffix.size() &&
         equals_lower(s.substr(s.size() - lower_suffix.size()), lower_suffix);
}

}  // namespace

std::string_view normalize_host(std::string_view host) {
  host = trim_ows(host);
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    // A malformed literal is kept whole: it then matches only routes without a host.
    return close == std::string_view::npos ? host : host.substr(1, close - 1);
  }
  // One colon: "name:port". Several: a bare IPv6 literal (only in config), kept whole.
  auto colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos)
    host = host.substr(0, colon);
  // "example.com." names the same host as "example.com" (absolute FQDN).
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return host;
}

RouteTable::RouteTable(const std::vector<config::Route>& routes) {
  entries_.reserve(routes.size());
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const config::Match& m = routes[i].match;
    Entry e{static_cast<int>(i),
            HostKind::exact,
            lower(normalize_host(m.host)),
            m.path_prefix,
            m.header.has_value(),
            "",
            ""};
    if (e.host.empty() || e.host == "*") {
      e.kind = HostKind::any;
      e.host.clear();
    } else if (e.host.starts_with("*.")) {
      e.kind = HostKind::suffix;
      e.host.erase(0, 1);  // keep the dot so "example.com" itself does not match
    }
    if (m.header) {
      e.header_name = lower(m.header->name);
      e.header_value = m.header->value;
    }
    entries_.push_back(std::move(e));
  }
  auto rank = [](const Entry& e) {
    return std::make_tuple(static_cast<int>(e.kind), e.kind == HostKind::suffix ? e.host.size() : 0,
                           e.path_prefix.size(), e.has_header, -e.index);
  };
  std::sort(entries_.begin(), entries_.end(),
            [&](const Entry& a, const Entry& b) { return rank(a) > rank(b); });
}

int RouteTable::match(std::string_view host, std::string_view target,
                      const boost::beast::http::fields& headers) const {
  host = normalize_host(host);
  std::string_view path = target.substr(0, target.find_first_of("?#"));

  for (const Entry& e : entries_) {
    switch (e.kind) {
      case HostKind::exact:
        if (!equals_lower(host, e.host)) continue;
        break;
      case HostKind::suffix:
        // Strictly longer than ".example.com": at least one label before the suffix.
        if (host.size() <= e.host.size() || !ends_with_lower(host, e.host)) continue;
        break;
      case HostKind::any:
        break;
    }
    if (!path.starts_with(e.path_prefix)) continue;
    if (e.has_header) {
      auto v = first_value(headers, e.header_name);
      if (!v || *v != e.header_value) continue;
    }
    return e.index;
  }
  return -1;
}

}  // namespace gp::routing
