#include "config/address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>

namespace gp::config {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool parse_port(std::string_view text, std::uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  unsigned value = 0;
  for (char c : text) {
    if (!is_digit(c)) return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value < 1 || value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

constexpr const char* kPortRange = "expected host:port with a port between 1 and 65535";

}  // namespace

bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = host.find('.', start);
    const std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label) {
      const bool ok =
          is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
      if (!ok) return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::optional<Address> parse_address(std::string_view text, std::string& error) {
  Address out;
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      error = "expected an IPv6 address in brackets and a port, like [::1]:8080";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(':')) {
      error = "expected host:port (the port is missing), like [::1]:8080";
      return std::nullopt;
    }
    port = rest.substr(1);
    const std::string h(host);
    in6_addr a6{};
    if (host.empty() || inet_pton(AF_INET6, h.c_str(), &a6) != 1) {
      error = "expected an IPv6 address in brackets, like [::1]:8080";
      return std::nullopt;
    }
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, &a6, buf, sizeof buf);
    out.host = buf;
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error = "expected host:port (the port is missing)";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (text.find("://") != std::string_view::npos) {
      error = "expected host:port without a scheme (no http:// or https://)";
      return std::nullopt;
    }
    if (host.find(':') != std::string_view::npos) {
      error = "expected an IPv6 address in brackets, like [::1]:8080";
      return std::nullopt;
    }
    if (host.empty()) {
      error = "expected host:port (the host is missing; use 0.0.0.0 for all interfaces)";
      return std::nullopt;
    }
    const bool numeric =
        std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; });
    if (numeric) {
      const std::string h(host);
      in_addr a4{};
      if (inet_pton(AF_INET, h.c_str(), &a4) != 1) {
        error = "expected host:port with a valid IPv4 address";
        return std::nullopt;
      }
      out.host = h;
    } else {
      if (!is_host_name(host)) {
        error = "expected host:port with a valid host name or IP address";
        return std::nullopt;
      }
      out.host = lower(host);
    }
  }
  if (!parse_port(port, out.port)) {
    error = kPortRange;
    return std::nullopt;
  }
  return out;
}

}  // namespace gp::config
