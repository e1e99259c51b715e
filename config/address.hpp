// host:port as written in grayproxy.yaml: "127.0.0.1:80", "[::1]:8080", "localhost:80".
// Port 1..65535 (0 is rejected: grayproxy never binds an ephemeral port from config).
// IPv6 literals must be bracketed and are stored canonical ("[0:0::1]" -> host "::1");
// host names are checked (labels of letters, digits, '-', '_') and stored lower-case.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace gp::config {

// The address, or nullopt with `error` set to what was expected (no "got ..." suffix).
std::optional<Address> parse_address(std::string_view text, std::string& error);

// True if `host` is a valid DNS-style name (not an IP literal): labels of [A-Za-z0-9_-],
// 1..63 characters, not starting or ending with '-', 253 characters at most.
bool is_host_name(std::string_view host);

}  // namespace gp::config
