// gzip for "Content-Encoding: gzip" responses of /metrics (Prometheus sends
// "Accept-Encoding: gzip"; a page of many routes' histograms shrinks ~10x).
#pragma once

#include <string>
#include <string_view>

namespace gp::metrics {

// gzip member (RFC 1952) of `data`. level: zlib's 0..9, or -1 for zlib's default (6).
// Throws std::invalid_argument for a bad level, std::runtime_error if zlib fails otherwise.
std::string gzip(std::string_view data, int level = -1);

// Whether an Accept-Encoding header value admits gzip: "gzip" or "x-gzip" with q > 0, or else
// "*" with q > 0 (RFC 9110 12.5.3; codings are case-insensitive). An unparsable q rejects that
// coding, since identity is always a safe answer.
bool accepts_gzip(std::string_view accept_encoding) noexcept;

}  // namespace gp::metrics
