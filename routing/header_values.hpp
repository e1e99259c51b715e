// Allocation-free reads of request header values, shared by the splitter and the route table.
#pragma once

#include <optional>
#include <string_view>

#include <boost/beast/http/fields.hpp>

namespace gp::routing {

// Strip optional whitespace (SP / HTAB, RFC 9110 OWS) at both ends.
std::string_view trim_ows(std::string_view s);

// First field named `name` (case-insensitive), OWS-trimmed; nullopt when absent.
// Beast keeps repeated fields in arrival order, so "first" is the first one received.
std::optional<std::string_view> first_value(const boost::beast::http::fields& headers,
                                            std::string_view name);

// Last element of a comma-separated list header spread over possibly several fields: the last
// entry of the last field, OWS-trimmed (may be empty); nullopt when the header is absent.
std::optional<std::string_view> last_list_entry(const boost::beast::http::fields& headers,
                                                std::string_view name);

// ASCII case-insensitive equality where `lower` is already lower-case (precomputed side).
bool equals_lower(std::string_view s, std::string_view lower);

}  // namespace gp::routing
