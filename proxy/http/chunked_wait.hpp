// Bounds on what a chunked body's parser may wait for. Beast's parser needs a whole chunk-size
// line, and after the last chunk the whole trailer block, before it consumes any of it; a peer
// that never ends one would grow the read buffer without limit. HAProxy and nginx cap a chunk
// line at a few KiB and trailers like a head; so does this.
#pragma once

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <string_view>

namespace gp::proxy {

inline constexpr std::size_t kMaxChunkLineBytes = 4096;  // chunk size plus extensions

// `pending`: the bytes a chunked body's parser left unconsumed (it consumes chunk data as it
// comes, so these are the CRLF ending a chunk's data, a chunk-size line still incomplete, or
// the last chunk's line and a trailer block still incomplete). WireError::chunk_line_too_long
// or WireError::trailers_too_large when that wait is over its limit, else success.
boost::system::error_code check_chunked_wait(std::string_view pending,
                                             std::size_t line_limit = kMaxChunkLineBytes,
                                             std::size_t trailer_limit = 61440);

}  // namespace gp::proxy
