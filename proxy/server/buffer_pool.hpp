// Per-worker free lists of I/O buffers. A connection holds a read buffer only while a
// request is in progress and a relay buffer only while a body streams, so an idle
// keep-alive connection costs almost nothing and the steady state allocates nothing.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <limits>
#include <memory>
#include <vector>

namespace gp::proxy {

class BufferPool {
 public:
  static constexpr std::size_t kRelayBytes = 64 * 1024;

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

  std::unique_ptr<char[]> take_relay() {
    if (relay_.empty()) return std::unique_ptr<char[]>(new char[kRelayBytes]);
    auto b = std::move(relay_.back());
    relay_.pop_back();
    return b;
  }
  void give_relay(std::unique_ptr<char[]> b) {
    if (b && relay_.size() < kMaxCached) relay_.push_back(std::move(b));
  }

 private:
  static constexpr std::size_t kMaxCached = 256;
  std::vector<boost::beast::flat_buffer> read_;
  std::vector<std::unique_ptr<char[]>> relay_;
};

}  // namespace gp::proxy
