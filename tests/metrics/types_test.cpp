#include "metrics/types.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace gp::metrics {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

TEST(Buckets, BoundsAreIncreasingAndFineBetweenHalfMillisecondAndTenSeconds) {
  ASSERT_EQ(kBucketBoundsUs.front(), 500u);
  ASSERT_EQ(kBucketBoundsUs.back(), 60'000'000u);
  for (std::size_t i = 1; i < kBucketBoundsUs.size(); ++i) {
    ASSERT_LT(kBucketBoundsUs[i - 1], kBucketBoundsUs[i]);
    if (kBucketBoundsUs[i] <= 10'000'000) {
      EXPECT_LE(double(kBucketBoundsUs[i]) / double(kBucketBoundsUs[i - 1]), 1.5) << i;
    }
  }
  // Round thresholds an operator writes are exact bounds.
  for (std::uint64_t us : {1'000u, 10'000u, 100'000u, 250'000u, 300'000u, 500'000u, 1'000'000u})
    EXPECT_TRUE(std::binary_search(kBucketBoundsUs.begin(), kBucketBoundsUs.end(), us)) << us;
  EXPECT_EQ(kBuckets, kBucketBoundsUs.size() + 1);
}

TEST(Buckets, UpperBoundsInSecondsAreTheDecimalLiterals) {
  EXPECT_EQ(bucket_upper_bound_seconds(0), 0.0005);
  EXPECT_EQ(bucket_upper_bound_seconds(3), 0.0015);
  EXPECT_EQ(bucket_upper_bound_seconds(9), 0.007);
  EXPECT_EQ(bucket_upper_bound_seconds(kBuckets - 2), 60.0);
  EXPECT_TRUE(std::isinf(bucket_upper_bound_seconds(kBuckets - 1)));
}

TEST(Buckets, IndexFollowsLeSemantics) {
  EXPECT_EQ(bucket_index(nanoseconds(-5)), 0u);
  EXPECT_EQ(bucket_index(nanoseconds(0)), 0u);
  EXPECT_EQ(bucket_index(microseconds(500)), 0u);                   // le="0.0005" inclusive
  EXPECT_EQ(bucket_index(microseconds(500) + nanoseconds(1)), 1u);  // just above
  EXPECT_EQ(bucket_index(microseconds(700)), 1u);
  EXPECT_EQ(bucket_index(std::chrono::milliseconds(300)), 22u);
  EXPECT_EQ(bucket_index(std::chrono::seconds(60)), kBuckets - 2);
  EXPECT_EQ(bucket_index(std::chrono::seconds(60) + nanoseconds(1)), kBuckets - 1);
  EXPECT_EQ(bucket_index(std::chrono::hours(24 * 365)), kBuckets - 1);
}

TEST(Buckets, IndexMatchesStdLowerBoundEverywhere) {
  // Around every bound (+-1 ns, +-1 us) and on a sweep, against the obvious implementation.
  const auto reference = [](std::int64_t ns) {
    std::size_t i = 0;
    while (i < kBucketBoundsUs.size() && double(ns) > double(kBucketBoundsUs[i]) * 1000) ++i;
    return i;
  };
  for (std::uint64_t us : kBucketBoundsUs) {
    for (std::int64_t d : {-1001, -1000, -999, -1, 0, 1, 999, 1000, 1001}) {
      const std::int64_t ns = std::int64_t(us) * 1000 + d;
      ASSERT_EQ(bucket_index(nanoseconds(ns)), reference(ns)) << ns;
    }
  }
  for (std::int64_t ns = 1; ns < 100'000'000'000; ns = ns * 11 / 10 + 7)
    ASSERT_EQ(bucket_index(nanoseconds(ns)), reference(ns)) << ns;
}

TEST(CodeClass, ClassesAndClamping) {
  EXPECT_EQ(code_class_index(100), 0u);
  EXPECT_EQ(code_class_index(200), 1u);
  EXPECT_EQ(code_class_index(204), 1u);
  EXPECT_EQ(code_class_index(304), 2u);
  EXPECT_EQ(code_class_index(404), 3u);
  EXPECT_EQ(code_class_index(499), 3u);
  EXPECT_EQ(code_class_index(502), 4u);
  EXPECT_EQ(code_class_index(0), 0u);
  EXPECT_EQ(code_class_index(99), 0u);
  EXPECT_EQ(code_class_index(600), 4u);
  EXPECT_EQ(code_class_index(999), 4u);
}

TEST(Names, LabelValues) {
  EXPECT_EQ(to_string(Version::stable), "stable");
  EXPECT_EQ(to_string(Version::canary), "canary");
  EXPECT_EQ(to_string(UpstreamError::connect), "connect");
  EXPECT_EQ(to_string(UpstreamError::timeout), "timeout");
  EXPECT_EQ(to_string(UpstreamError::reset), "reset");
  EXPECT_EQ(to_string(UpstreamError::protocol), "protocol");
  EXPECT_EQ(to_string(UpstreamError::no_endpoint), "no_endpoint");
}

}  // namespace
}  // namespace gp::metrics
