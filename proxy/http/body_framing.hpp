// How the proxy frames a body it sends on.
#pragma once

#include <cstdint>

namespace gp::proxy {

// none: no body (HEAD, 1xx, 204, 304, or none declared); length: the bytes, as many as the
// head's Content-Length; chunked: re-chunked by the proxy; close: the bytes, ended by closing
// the connection (an HTTP/1.0 client of a body of unknown length).
enum class BodyFraming : std::uint8_t { none, length, chunked, close };

}  // namespace gp::proxy
