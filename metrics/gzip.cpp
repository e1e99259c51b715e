#include "metrics/gzip.hpp"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <stdexcept>

namespace gp::metrics {

std::string gzip(std::string_view data, int level) {
  if (level < -1 || level > 9) throw std::invalid_argument("gzip: level must be -1..9");
  z_stream zs{};
  // windowBits 15 + 16 selects the gzip wrapper instead of zlib's.
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("gzip: deflateInit2 failed");

  std::string out;
  // deflateBound covers the gzip header and trailer, so one deflate(Z_FINISH) call suffices
  // for inputs that fit a uInt; larger inputs go in chunks.
  out.resize(deflateBound(&zs, static_cast<uLong>(std::min<std::size_t>(data.size(), UINT32_MAX))));
  std::size_t produced = 0;
  std::size_t consumed = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    const std::size_t in_chunk = std::min<std::size_t>(data.size() - consumed, UINT32_MAX);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + consumed));
    zs.avail_in = static_cast<uInt>(in_chunk);
    // Z_BUF_ERROR means no progress was possible: only more output space helps.
    if (out.size() - produced < 64 || rc == Z_BUF_ERROR) out.resize(out.size() * 2 + 64);
    const std::size_t out_chunk = std::min<std::size_t>(out.size() - produced, UINT32_MAX);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out_chunk);
    const bool last = consumed + in_chunk == data.size();
    rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      deflateEnd(&zs);
      throw std::runtime_error("gzip: deflate failed");
    }
    consumed += in_chunk - zs.avail_in;
    produced += out_chunk - zs.avail_out;
  }
  deflateEnd(&zs);
  out.resize(produced);
  return out;
}

namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

// q of one "coding;param=..;q=0.5" element: 1 when absent, nullopt when malformed.
std::optional<double> qvalue(std::string_view params) noexcept {
  double q = 1;
  while (!params.empty()) {
    const std::size_t semi = params.find(';');
    const std::string_view p = trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
    const std::size_t eq = p.find('=');
    if (eq == std::string_view::npos || !iequals(trim(p.substr(0, eq)), "q")) continue;
    const std::string_view v = trim(p.substr(eq + 1));
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), q);
    if (ec != std::errc{} || end != v.data() + v.size() || q < 0 || q > 1) return std::nullopt;
  }
  return q;
}

}  // namespace

bool accepts_gzip(std::string_view header) noexcept {
  std::optional<bool> gzip_ok;
  std::optional<bool> star_ok;
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    const std::string_view element = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    const std::size_t semi = element.find(';');
    const std::string_view coding = trim(element.substr(0, semi));
    const std::optional<double> q =
        qvalue(semi == std::string_view::npos ? std::string_view{} : element.substr(semi + 1));
    const bool ok = q.has_value() && *q > 0;
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      gzip_ok = gzip_ok.value_or(true) && ok;  // any explicit refusal wins
    } else if (coding == "*") {
      star_ok = star_ok.value_or(true) && ok;
    }
  }
  if (gzip_ok) return *gzip_ok;
  return star_ok.value_or(false);
}

}  // namespace gp::metrics
