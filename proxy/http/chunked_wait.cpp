#include "proxy/http/chunked_wait.hpp"

#include "proxy/http/wire_error.hpp"

namespace gp::proxy {

boost::system::error_code check_chunked_wait(std::string_view pending, std::size_t line_limit,
                                             std::size_t trailer_limit) {
  if (pending.size() <= line_limit && pending.size() <= trailer_limit) return {};
  if (pending.starts_with("\r\n")) pending.remove_prefix(2);  // the end of a chunk's data
  const auto lf = pending.find('\n');
  if (lf == std::string_view::npos) {
    // A line's CR may have come without its LF yet: not part of the line's length.
    const std::size_t line = pending.ends_with('\r') ? pending.size() - 1 : pending.size();
    return line > line_limit ? boost::system::error_code(WireError::chunk_line_too_long)
                             : boost::system::error_code{};
  }
  if (lf > line_limit + 1) return WireError::chunk_line_too_long;  // +1: its CR
  // A complete line the parser did not consume is the last chunk's ("0" [ext]): the trailer
  // block after it is incomplete.
  if (pending.size() - (lf + 1) > trailer_limit) return WireError::trailers_too_large;
  return {};
}

}  // namespace gp::proxy
