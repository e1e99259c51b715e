#include "routing/header_values.hpp"

namespace gp::routing {

namespace {
bool is_ows(char c) {
  return c == ' ' || c == '\t';
}
char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
}  // namespace

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

std::optional<std::string_view> first_value(const boost::beast::http::fields& headers,
                                            std::string_view name) {
  auto it = headers.find(name);
  if (it == headers.end()) return std::nullopt;
  return trim_ows(it->value());
}

std::optional<std::string_view> last_list_entry(const boost::beast::http::fields& headers,
                                                std::string_view name) {
  auto [first, last] = headers.equal_range(name);
  if (first == last) return std::nullopt;
  std::string_view value = std::prev(last)->value();
  auto comma = value.rfind(',');
  if (comma != std::string_view::npos) value.remove_prefix(comma + 1);
  return trim_ows(value);
}

bool equals_lower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (to_lower(s[i]) != lower[i]) return false;
  return true;
}

}  // namespace gp::routing
