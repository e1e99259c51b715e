#include "metrics/gzip.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <stdexcept>
#include <string>

#include "metrics/metrics.hpp"

namespace gp::metrics {
namespace {

// Independent inflate (windowBits 15+16: gzip only, so a zlib-wrapped stream would fail).
std::string gunzip(const std::string& in) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  std::string out;
  char buf[16384];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  EXPECT_EQ(zs.avail_in, 0u);  // nothing after the gzip member
  inflateEnd(&zs);
  return out;
}

TEST(Gzip, RoundTripOfAMetricsPage) {
  Metrics m(2, "v");
  for (int i = 0; i < 20; ++i)
    m.route("route" + std::to_string(i))
        .record(0, Version::stable, 200, std::chrono::milliseconds(i));
  const std::string page = m.serialize();
  const std::string z = gzip(page);
  ASSERT_GE(z.size(), 18u);
  EXPECT_EQ(static_cast<unsigned char>(z[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<unsigned char>(z[1]), 0x8b);
  EXPECT_LT(z.size() * 5, page.size());  // repetitive text compresses well
  EXPECT_EQ(gunzip(z), page);
}

TEST(Gzip, EmptyAndIncompressibleAndLevels) {
  EXPECT_EQ(gunzip(gzip("")), "");
  std::mt19937 rng(42);
  std::string noise(1 << 20, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  EXPECT_EQ(gunzip(gzip(noise)), noise);
  EXPECT_EQ(gunzip(gzip(noise, 0)), noise);
  const std::string text(100000, 'a');
  EXPECT_EQ(gunzip(gzip(text, 1)), text);
  EXPECT_EQ(gunzip(gzip(text, 9)), text);
  EXPECT_THROW(gzip(text, 10), std::invalid_argument);
  EXPECT_THROW(gzip(text, -2), std::invalid_argument);
}

TEST(AcceptsGzip, HeaderValues) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("gzip, deflate, br"));  // curl --compressed
  EXPECT_TRUE(accepts_gzip("identity;q=0.5, GZip"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_TRUE(accepts_gzip("deflate , gzip;q=0.2"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_TRUE(accepts_gzip("br;q=1.0, *;q=0.1"));
  EXPECT_FALSE(accepts_gzip(""));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("deflate, br"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0.000"));
  EXPECT_FALSE(accepts_gzip("*;q=0"));
  EXPECT_FALSE(accepts_gzip("*, gzip;q=0"));  // explicit refusal beats the wildcard
  EXPECT_FALSE(accepts_gzip("gzip;q=abc"));
  EXPECT_FALSE(accepts_gzip("gzip;q=2"));
}

}  // namespace
}  // namespace gp::metrics
