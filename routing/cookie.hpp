// Cookie header parsing (RFC 6265 section 5.4 syntax, parsed leniently like browsers and
// servers do). Results are views into the header storage: no allocation.
#pragma once

#include <optional>
#include <string_view>

#include <boost/beast/http/fields.hpp>

namespace gp::routing {

// Value of cookie `name` in one Cookie field value such as `a=1; b="x y";c=3`.
// Names compare case-sensitively (cookie names are); surrounding OWS and one pair of DQUOTEs
// around the value are stripped; pairs without '=' are skipped; the first occurrence wins.
// An empty value (`a=`) is returned as an empty view, distinct from "absent".
std::optional<std::string_view> find_cookie(std::string_view cookie_header, std::string_view name);

// The same across every Cookie field of a request (HTTP/2 gateways and some clients split
// cookies over several fields); the first occurrence in arrival order wins.
std::optional<std::string_view> find_cookie(const boost::beast::http::fields& headers,
                                            std::string_view name);

}  // namespace gp::routing
