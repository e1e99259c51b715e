// Small allocation-free helpers for HTTP header values.
#pragma once

#include <cctype>
#include <string_view>
#include <utility>

namespace gp::proxy {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

inline bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Makes a (begin, end) pair from fields::equal_range usable in a range-for.
template <class It>
struct IterRange {
  It b, e;
  It begin() const { return b; }
  It end() const { return e; }
};
template <class It>
IterRange<It> as_range(std::pair<It, It> p) {
  return {p.first, p.second};
}

// Calls f(token) for each non-empty, trimmed element of a comma-separated list.
template <class F>
void for_each_token(std::string_view list, F&& f) {
  while (!list.empty()) {
    auto comma = list.find(',');
    auto tok = trim(list.substr(0, comma));
    if (!tok.empty()) f(tok);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace gp::proxy
