#include "proxy/http/chunked_wait.hpp"

#include <gtest/gtest.h>

#include <string>

#include "proxy/http/wire_error.hpp"

namespace gp::proxy {
namespace {

using boost::system::error_code;

TEST(ChunkedWait, ShortPendingIsFine) {
  EXPECT_FALSE(check_chunked_wait(""));
  EXPECT_FALSE(check_chunked_wait("\r\n"));
  EXPECT_FALSE(check_chunked_wait("1f4;name=va"));
  EXPECT_FALSE(check_chunked_wait("\r\n0\r\nX-Trailer: a"));
}

// A chunk-size line the peer never ends: refused once it is longer than the limit.
TEST(ChunkedWait, UnterminatedChunkLineOverTheLimit) {
  const std::string at_limit = "1f;ext=" + std::string(kMaxChunkLineBytes - 7, 'v');
  EXPECT_FALSE(check_chunked_wait(at_limit));
  EXPECT_EQ(check_chunked_wait(at_limit + "v"), error_code(WireError::chunk_line_too_long));
  // A small explicit limit behaves the same.
  EXPECT_FALSE(check_chunked_wait(std::string(10, '1'), 10));
  EXPECT_EQ(check_chunked_wait(std::string(11, '1'), 10),
            error_code(WireError::chunk_line_too_long));
}

// The CRLF that ends the previous chunk's data waits with the next line but is not part of it.
TEST(ChunkedWait, LeadingCrlfIsNotCounted) {
  const std::string at_limit = "a;e=" + std::string(kMaxChunkLineBytes - 4, 'x');
  EXPECT_FALSE(check_chunked_wait("\r\n" + at_limit));
  EXPECT_EQ(check_chunked_wait("\r\n" + at_limit + "x"),
            error_code(WireError::chunk_line_too_long));
}

// "0;" + extensions up to the limit, then its CRLF: a complete line at the limit is fine.
TEST(ChunkedWait, CompleteLineAtTheLimit) {
  const std::string line = "0;e=" + std::string(kMaxChunkLineBytes - 4, 'x');
  ASSERT_EQ(line.size(), kMaxChunkLineBytes);
  EXPECT_FALSE(check_chunked_wait(line + "\r\nX-T: 1"));
  EXPECT_EQ(check_chunked_wait(line + "x\r\nX-T: 1"), error_code(WireError::chunk_line_too_long));
}

// The same line at the limit, its CR read but not yet its LF (a read can end between them):
// still a line at the limit, so it must not be refused while the LF is on its way.
TEST(ChunkedWait, LineAtTheLimitWithItsCrButNotYetItsLf) {
  const std::string line = "a;e=" + std::string(kMaxChunkLineBytes - 4, 'x');
  ASSERT_FALSE(check_chunked_wait(line + "\r\n" + "X"));  // the complete line is accepted
  EXPECT_FALSE(check_chunked_wait(line + "\r"));
  EXPECT_FALSE(check_chunked_wait("\r\n" + line + "\r"));
}

// The last chunk's line is complete; what waits after it is the trailer block.
TEST(ChunkedWait, TrailerBlockOverItsLimit) {
  const std::size_t limit = 100;
  EXPECT_FALSE(check_chunked_wait("0\r\n" + std::string(limit, 't'), kMaxChunkLineBytes, limit));
  EXPECT_EQ(check_chunked_wait("0\r\n" + std::string(limit + 1, 't'), kMaxChunkLineBytes, limit),
            error_code(WireError::trailers_too_large));
  // With several complete trailer lines already there, all of them count.
  const std::string block = "X-A: 1\r\nX-B: " + std::string(limit, 'b');
  EXPECT_EQ(check_chunked_wait("0\r\n" + block, kMaxChunkLineBytes, limit),
            error_code(WireError::trailers_too_large));
  // After a leading CRLF too.
  EXPECT_EQ(
      check_chunked_wait("\r\n0\r\n" + std::string(limit + 1, 't'), kMaxChunkLineBytes, limit),
      error_code(WireError::trailers_too_large));
}

TEST(ChunkedWait, TrailerBlockAtTheDefaultLimit) {
  const std::size_t limit = 61440;  // the default of check_chunked_wait
  EXPECT_FALSE(check_chunked_wait("0\r\n" + std::string(limit, 't')));
  EXPECT_EQ(check_chunked_wait("0\r\n" + std::string(limit + 1, 't')),
            error_code(WireError::trailers_too_large));
}

// A last chunk "0;ext=..." whose line is over the limit is a long line, whether it ended or not.
TEST(ChunkedWait, LongLastChunkLine) {
  const std::string line = "0;ext=" + std::string(kMaxChunkLineBytes, 'e');
  EXPECT_EQ(check_chunked_wait(line), error_code(WireError::chunk_line_too_long));
  EXPECT_EQ(check_chunked_wait(line + "\r\n"), error_code(WireError::chunk_line_too_long));
  EXPECT_EQ(check_chunked_wait(line + "\r\nX-T: 1"), error_code(WireError::chunk_line_too_long));
}

}  // namespace
}  // namespace gp::proxy
