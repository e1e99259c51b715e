#include "proxy/upstream/reuse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gp::proxy {
namespace {

namespace http = boost::beast::http;

// How the response was framed, as the exchange reports it in ReuseFacts.
enum class Framing { cl0, cl_pos, chunked, close_delimited };

const char* name(Framing f) {
  switch (f) {
    case Framing::cl0:
      return "CL0";
    case Framing::cl_pos:
      return "CL>0";
    case Framing::chunked:
      return "chunked";
    case Framing::close_delimited:
      return "close-delimited";
  }
  return "?";
}

const char* name(ReuseVerdict v) {
  switch (v) {
    case ReuseVerdict::reuse:
      return "reuse";
    case ReuseVerdict::aborted:
      return "aborted";
    case ReuseVerdict::stray_bytes:
      return "stray_bytes";
    case ReuseVerdict::unframed:
      return "unframed";
  }
  return "?";
}

struct Row {
  http::verb method;
  unsigned status;
  Framing framing;
  std::size_t leftover;
  bool keep_alive;
  unsigned version;
  bool exchange_ok;
  bool complete;
};

ReuseFacts facts(const Row& r) {
  ReuseFacts f;
  f.exchange_ok = r.exchange_ok;
  f.response_complete = r.complete;
  f.method = r.method;
  f.status = r.status;
  f.version = r.version;
  f.keep_alive = r.keep_alive;
  f.close_delimited = r.framing == Framing::close_delimited;
  f.declared_body = r.framing == Framing::cl_pos || r.framing == Framing::chunked;
  f.leftover = r.leftover;
  return f;
}

// e.g. "HEAD 204 CL>0 leftover=0 keep-alive HTTP/1.1 ok complete": which row failed.
std::string label(const Row& r) {
  std::string s(http::to_string(r.method));
  s += " " + std::to_string(r.status) + " " + name(r.framing);
  s += " leftover=" + std::to_string(r.leftover);
  s += r.keep_alive ? " keep-alive" : " close";
  s += r.version == 11 ? " HTTP/1.1" : " HTTP/1.0";
  s += r.exchange_ok ? " ok" : " failed";
  s += r.complete ? " complete" : " incomplete";
  return s;
}

// The rule of reuse.hpp / contract.md, written as "which reasons apply", then the first one
// by precedence (aborted > stray_bytes > unframed).
ReuseVerdict expected(const Row& r) {
  const bool aborted = !(r.exchange_ok && r.complete);
  const bool stray = r.leftover > 0;
  const bool bodiless = r.method == http::verb::head || r.status == 204 || r.status == 304;
  const bool declared = r.framing == Framing::cl_pos || r.framing == Framing::chunked;
  const bool unframed = r.status < 200 || r.framing == Framing::close_delimited || !r.keep_alive ||
                        r.version != 11 || (bodiless && declared);
  if (aborted) return ReuseVerdict::aborted;
  if (stray) return ReuseVerdict::stray_bytes;
  if (unframed) return ReuseVerdict::unframed;
  return ReuseVerdict::reuse;
}

// Every combination of the dimensions the decision depends on.
TEST(DecideReuse, FullTable) {
  std::size_t rows = 0;
  std::size_t reused = 0;
  for (auto method : {http::verb::get, http::verb::head, http::verb::post})
    for (unsigned status : {101u, 103u, 200u, 204u, 304u, 500u})
      for (auto framing :
           {Framing::cl0, Framing::cl_pos, Framing::chunked, Framing::close_delimited})
        for (std::size_t leftover : {std::size_t{0}, std::size_t{7}})
          for (bool keep_alive : {false, true})
            for (unsigned version : {10u, 11u})
              for (auto [ok, complete] : {std::pair{true, true}, std::pair{true, false},
                                          std::pair{false, true}, std::pair{false, false}}) {
                const Row r{method, status, framing, leftover, keep_alive, version, ok, complete};
                const ReuseVerdict got = decide_reuse(facts(r));
                EXPECT_EQ(got, expected(r))
                    << label(r) << ": got " << name(got) << ", want " << name(expected(r));
                ++rows;
                reused += got == ReuseVerdict::reuse;
              }
  EXPECT_EQ(rows, 3u * 6u * 4u * 2u * 2u * 2u * 4u);
  // Reusable: ok+complete, no leftover, keep-alive, 1.1, and then per method/status/framing:
  // GET/POST 200/500 with any of the 3 framed kinds (2*2*3 = 12), GET/POST 204/304 only
  // with CL 0 (2*2 = 4), HEAD 200/500/204/304 only with CL 0 (4): 20.
  EXPECT_EQ(reused, 20u);
}

// Hand-picked rows, each with the verdict written out, for the cases the rule is about.
TEST(DecideReuse, NamedRows) {
  using V = ReuseVerdict;
  const auto get = http::verb::get;
  const auto head = http::verb::head;
  const auto post = http::verb::post;
  struct Case {
    const char* why;
    Row row;
    V want;
  };
  const std::vector<Case> cases = {
      {"plain GET 200 with a length",
       {get, 200, Framing::cl_pos, 0, true, 11, true, true},
       V::reuse},
      {"POST 200 chunked", {post, 200, Framing::chunked, 0, true, 11, true, true}, V::reuse},
      {"500 is a complete answer too", {get, 500, Framing::cl0, 0, true, 11, true, true}, V::reuse},
      {"HEAD without a declared body",
       {head, 200, Framing::cl0, 0, true, 11, true, true},
       V::reuse},
      {"HEAD with a declared length",
       {head, 200, Framing::cl_pos, 0, true, 11, true, true},
       V::unframed},
      {"HEAD declaring chunked",
       {head, 200, Framing::chunked, 0, true, 11, true, true},
       V::unframed},
      {"204 with Content-Length: 0", {get, 204, Framing::cl0, 0, true, 11, true, true}, V::reuse},
      {"204 declaring a length", {get, 204, Framing::cl_pos, 0, true, 11, true, true}, V::unframed},
      {"304 declaring chunked",
       {post, 304, Framing::chunked, 0, true, 11, true, true},
       V::unframed},
      {"101 switched protocols", {get, 101, Framing::cl0, 0, true, 11, true, true}, V::unframed},
      {"103 early hints", {get, 103, Framing::cl0, 0, true, 11, true, true}, V::unframed},
      {"close-delimited body",
       {get, 200, Framing::close_delimited, 0, true, 11, true, true},
       V::unframed},
      {"Connection: close", {get, 200, Framing::cl_pos, 0, false, 11, true, true}, V::unframed},
      {"HTTP/1.0 keep-alive", {get, 200, Framing::cl_pos, 0, true, 10, true, true}, V::unframed},
      {"bytes after the response",
       {get, 200, Framing::cl_pos, 1, true, 11, true, true},
       V::stray_bytes},
      {"stray bytes beat unframed",
       {head, 101, Framing::close_delimited, 3, false, 10, true, true},
       V::stray_bytes},
      {"exchange failed", {get, 200, Framing::cl_pos, 0, true, 11, false, true}, V::aborted},
      {"response incomplete", {get, 200, Framing::chunked, 0, true, 11, true, false}, V::aborted},
      {"aborted beats stray and unframed",
       {get, 101, Framing::close_delimited, 9, false, 10, false, false},
       V::aborted},
  };
  for (const auto& c : cases) {
    const V got = decide_reuse(facts(c.row));
    EXPECT_EQ(got, c.want) << c.why << " (" << label(c.row) << "): got " << name(got);
  }
}

}  // namespace
}  // namespace gp::proxy
