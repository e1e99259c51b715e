// An HTTP/1.1 parser for a proxy, on Beast's basic_parser: the head goes into a header object
// of its own, body bytes are handed out as views into the caller's input buffer (no copy), and
// trailer fields are counted and dropped, so nothing that arrives after the head can change it
// (Beast's http::parser inserts trailers into the same fields as the head).
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/container/small_vector.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

#include "proxy/http/wire_error.hpp"

namespace gp::proxy {

// What to do with a request header whose name contains '_' (Envoy's
// headers_with_underscores_action): a server that maps '_' to '-' (CGI, many frameworks)
// would read "Transfer_Encoding" as a framing header the proxy never checked.
enum class UnderscoreAction : std::uint8_t { allow, drop, reject };

// More header fields than this is an abuse of the parser and of the next hop (HAProxy's
// tune.http.maxhdr and Envoy's max_headers_count, both 100 by default); trailers likewise.
inline constexpr std::size_t kMaxHeaderFields = 100;

struct ParserLimits {
  std::size_t max_fields = kMaxHeaderFields;  // head fields; trailer fields likewise
  UnderscoreAction underscores = UnderscoreAction::allow;
};

template <bool isRequest>
class MessageParser final : public boost::beast::http::basic_parser<isRequest> {
  using base = boost::beast::http::basic_parser<isRequest>;

 public:
  using Header = boost::beast::http::header<isRequest, boost::beast::http::fields>;
  // Most puts deliver a few pieces; a put stops once this many are waiting to be written, so
  // a body of tiny chunks needs no allocation and a bounded gather write.
  static constexpr std::size_t kMaxPieces = 32;
  using Pieces = boost::container::small_vector<boost::asio::const_buffer, kMaxPieces>;

  explicit MessageParser(ParserLimits limits = {}) : limits_(limits) {
    this->body_limit(std::numeric_limits<std::uint64_t>::max());
    this->header_limit(std::numeric_limits<std::uint32_t>::max());  // the reader bounds the head
  }

  Header& head() { return head_; }
  const Header& head() const { return head_; }

  // Body bytes delivered by puts since clear_body(): views into the buffers passed to put(),
  // valid until the caller consumes those bytes.
  const Pieces& body() const { return pieces_; }
  std::size_t body_size() const { return body_size_; }
  void clear_body() {
    pieces_.clear();
    body_size_ = 0;
  }

  // As the head said (a trailer cannot change them).
  bool head_keep_alive() const { return keep_alive_; }
  bool head_upgrade() const { return upgrade_; }
  std::size_t dropped_fields() const { return dropped_fields_; }  // underscore names dropped
  std::size_t trailer_fields() const { return trailer_fields_; }
  // After the head: whether the body is chunked or declares any bytes.
  bool declares_body() const { return this->chunked() || this->content_length().value_or(0) > 0; }
  // The head's Content-Length (not for a chunked body).
  std::optional<std::uint64_t> declared_length() const {
    if (this->chunked()) return std::nullopt;
    const auto n = this->content_length();
    return n ? std::optional<std::uint64_t>(*n) : std::nullopt;
  }

 private:
  void on_request_impl(boost::beast::http::verb method, boost::beast::string_view method_str,
                       boost::beast::string_view target, int version,
                       boost::system::error_code&) override {
    if constexpr (isRequest) {
      if (method != boost::beast::http::verb::unknown)
        head_.method(method);
      else
        head_.method_string(method_str);
      head_.target(target);
      head_.version(static_cast<unsigned>(version));
    }
  }

  void on_response_impl(int code, boost::beast::string_view reason, int version,
                        boost::system::error_code&) override {
    if constexpr (!isRequest) {
      head_.result(static_cast<unsigned>(code));
      head_.reason(reason);
      head_.version(static_cast<unsigned>(version));
    }
  }

  void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string,
                     boost::beast::string_view value, boost::system::error_code& ec) override {
    if (header_done_) {
      // A trailer: counted and bounded, never forwarded (docs/wire.md).
      if (++trailer_fields_ > limits_.max_fields) ec = WireError::trailers_too_large;
      return;
    }
    if (++fields_ > limits_.max_fields) {
      ec = WireError::too_many_fields;
      return;
    }
    if (limits_.underscores != UnderscoreAction::allow &&
        name_string.find('_') != boost::beast::string_view::npos) {
      if (limits_.underscores == UnderscoreAction::reject) {
        ec = WireError::underscore_header;
        return;
      }
      ++dropped_fields_;
      return;
    }
    head_.insert(name, name_string, value);
  }

  void on_header_impl(boost::system::error_code&) override {
    header_done_ = true;
    keep_alive_ = this->keep_alive();
    upgrade_ = this->upgrade();
  }

  void on_body_init_impl(const boost::optional<std::uint64_t>&,
                         boost::system::error_code&) override {}

  std::size_t on_body_impl(boost::beast::string_view body, boost::system::error_code& ec) override {
    return take(body, ec);
  }

  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view,
                            boost::system::error_code&) override {}  // extensions are dropped

  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                 boost::system::error_code& ec) override {
    return take(body, ec);
  }

  void on_finish_impl(boost::system::error_code&) override {}

  std::size_t take(boost::beast::string_view body, boost::system::error_code& ec) {
    if (body.empty()) return 0;
    pieces_.emplace_back(body.data(), body.size());
    body_size_ += body.size();
    // need_buffer stops this put after the piece: the caller writes, then parses on.
    if (pieces_.size() == kMaxPieces) ec = boost::beast::http::error::need_buffer;
    return body.size();
  }

  ParserLimits limits_;
  Header head_;
  Pieces pieces_;
  std::size_t body_size_ = 0;
  std::size_t fields_ = 0;
  std::size_t trailer_fields_ = 0;
  std::size_t dropped_fields_ = 0;
  bool header_done_ = false;
  bool keep_alive_ = false;
  bool upgrade_ = false;
};

}  // namespace gp::proxy
