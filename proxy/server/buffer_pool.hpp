// A per-worker free list of read buffers. A connection holds one only while a request is in
// progress (bodies stream straight out of it, so it is the only buffer a request needs on each
// side), so an idle keep-alive connection costs almost nothing and the steady state allocates
// nothing.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <limits>
#include <vector>

namespace gp::proxy {

class BufferPool {
 public:
  boost::beast::flat_buffer take_read() {
    if (read_.empty()) return {};
    auto b = std::move(read_.back());
    read_.pop_back();
    return b;
  }
  void give_read(boost::beast::flat_buffer&& b) {
    b.clear();
    b.max_size(std::numeric_limits<std::size_t>::max());  // each user sets its own
    // Buffers that grew for a large head are not worth keeping; one that carried a body
    // (a read plus the longest chunk-line or trailer wait) is.
    if (read_.size() < kMaxCached && b.capacity() > 0 && b.capacity() <= 128 * 1024)
      read_.push_back(std::move(b));
    b = boost::beast::flat_buffer{};
  }

 private:
  static constexpr std::size_t kMaxCached = 256;
  std::vector<boost::beast::flat_buffer> read_;
};

}  // namespace gp::proxy
