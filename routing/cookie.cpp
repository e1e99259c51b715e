#include "routing/cookie.hpp"

#include "routing/header_values.hpp"

namespace gp::routing {

std::optional<std::string_view> find_cookie(std::string_view cookie_header, std::string_view name) {
  if (name.empty()) return std::nullopt;
  while (!cookie_header.empty()) {
    auto semi = cookie_header.find(';');
    std::string_view pair = cookie_header.substr(0, semi);
    cookie_header =
        semi == std::string_view::npos ? std::string_view{} : cookie_header.substr(semi + 1);

    auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (trim_ows(pair.substr(0, eq)) != name) continue;

    std::string_view value = trim_ows(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    return value;
  }
  return std::nullopt;
}

std::optional<std::string_view> find_cookie(const boost::beast::http::fields& headers,
                                            std::string_view name) {
  auto [first, last] = headers.equal_range(boost::beast::http::field::cookie);
  for (auto it = first; it != last; ++it)
    if (auto v = find_cookie(it->value(), name)) return v;
  return std::nullopt;
}

}  // namespace gp::routing
