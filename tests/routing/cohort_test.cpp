// Cohort hashing: golden vectors from an independent implementation (python3-xxhash, see
// tests/data/routing/gen_golden.py) and statistical properties of the bucket function.
#include "routing/cohort.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "routing/random_source.hpp"

namespace gp::routing {
namespace {

TEST(Cohort, DesignTestVector) {
  // docs/design.md: XXH3_64bits_withSeed("abc", 3, XXH3_64bits("shop", 4)) = 13306870394290195008.
  EXPECT_EQ(salt_seed("shop"), 17580852520372243673ULL);
  EXPECT_EQ(bucket("abc", salt_seed("shop")), 13306870394290195008ULL % 10000);
}

TEST(Cohort, IsCanaryIsStrictlyBelowWeight) {
  EXPECT_FALSE(is_canary(0, 0));
  EXPECT_TRUE(is_canary(0, 1));
  EXPECT_FALSE(is_canary(1, 1));
  EXPECT_TRUE(is_canary(9999, 10000));
  EXPECT_FALSE(is_canary(9999, 9999));
}

std::string unhex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    unsigned byte = 0;
    std::from_chars(hex.data() + i, hex.data() + i + 2, byte, 16);
    out.push_back(static_cast<char>(byte));
  }
  return out;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> cols;
  std::size_t start = 0;
  for (;;) {
    auto tab = line.find('\t', start);
    cols.push_back(line.substr(start, tab - start));
    if (tab == std::string::npos) return cols;
    start = tab + 1;
  }
}

TEST(Cohort, GoldenVectors) {
  std::ifstream in(GP_TEST_DATA "/routing/golden_buckets.tsv");
  ASSERT_TRUE(in) << "missing " GP_TEST_DATA "/routing/golden_buckets.tsv";
  int rows = 0;
  bool saw_empty_key = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto cols = split_tabs(line);
    ASSERT_EQ(cols.size(), 6u) << line;
    const std::string salt = unhex(cols[0]);
    const std::string key = unhex(cols[1]);
    const std::uint64_t seed = std::stoull(cols[2]);
    const std::uint32_t expected = static_cast<std::uint32_t>(std::stoul(cols[4]));
    EXPECT_EQ(salt_seed(salt), seed) << cols[5];
    EXPECT_EQ(bucket(key, seed), expected) << cols[5];
    EXPECT_EQ(std::stoull(cols[3]) % 10000, expected) << "inconsistent row: " << cols[5];
    saw_empty_key |= key.empty();
    ++rows;
  }
  EXPECT_GE(rows, 30);
  EXPECT_TRUE(saw_empty_key);
}

// 10^6 keys hashed once under two salts; the statistical tests below only count buckets.
class CohortProperties : public ::testing::Test {
 protected:
  static constexpr int kKeys = 1'000'000;

  static void SetUpTestSuite() {
    const std::uint64_t seed_a = salt_seed("shop");
    const std::uint64_t seed_b = salt_seed("shop-salt-2");
    random_a_.resize(kKeys);
    random_b_.resize(kKeys);
    sequential_.resize(kKeys);
    RandomSource rng(20240601);
    static constexpr char kHex[] = "0123456789abcdef";
    char id[32];
    for (int i = 0; i < kKeys; ++i) {
      // Keys shaped like the fallback cookie ids: 32 lowercase hex digits.
      for (int half = 0; half < 2; ++half) {
        std::uint64_t bits = rng.next();
        for (int j = 0; j < 16; ++j, bits >>= 4) id[half * 16 + j] = kHex[bits & 0xf];
      }
      const std::string_view key(id, sizeof id);
      random_a_[i] = static_cast<std::uint16_t>(bucket(key, seed_a));
      random_b_[i] = static_cast<std::uint16_t>(bucket(key, seed_b));

      // Sequential user ids: the adversarial-but-common case of near-identical keys.
      char user[24] = "user-";
      auto end = std::to_chars(user + 5, user + sizeof user, i).ptr;
      sequential_[i] =
          static_cast<std::uint16_t>(bucket(std::string_view(user, end - user), seed_a));
    }
  }

  static double canary_percent(const std::vector<std::uint16_t>& buckets, std::uint32_t w) {
    std::size_t n = 0;
    for (auto b : buckets) n += is_canary(b, w);
    return 100.0 * static_cast<double>(n) / static_cast<double>(buckets.size());
  }

  static inline std::vector<std::uint16_t> random_a_, random_b_, sequential_;
};

TEST_F(CohortProperties, CanaryShareMatchesWeight) {
  // Weights in percent: 0.01, 1, 10, 50, 99.99; the share must be within 0.1 points.
  for (std::uint32_t w : {1u, 100u, 1000u, 5000u, 9999u}) {
    EXPECT_NEAR(canary_percent(random_a_, w), w / 100.0, 0.1) << "random ids, w_bp=" << w;
    EXPECT_NEAR(canary_percent(sequential_, w), w / 100.0, 0.1) << "sequential ids, w_bp=" << w;
  }
  EXPECT_EQ(canary_percent(random_a_, 0), 0.0);
  EXPECT_EQ(canary_percent(random_a_, 10000), 100.0);
}

TEST_F(CohortProperties, BucketsAreUniform) {
  // Pearson chi-square over the 10000 buckets: 9999 degrees of freedom, sd ~141.
  std::vector<int> hist(kBuckets, 0);
  for (auto b : random_a_) {
    ASSERT_LT(b, kBuckets);
    ++hist[b];
  }
  const double expected = static_cast<double>(kKeys) / kBuckets;
  double chi2 = 0;
  for (int c : hist) chi2 += (c - expected) * (c - expected) / expected;
  EXPECT_NEAR(chi2, 9999.0, 5 * std::sqrt(2.0 * 9999.0));
}

TEST_F(CohortProperties, CohortsAreMonotonic) {
  static constexpr std::array<std::uint32_t, 9> kWeights = {0,    1,    100,  500,  1000,
                                                            2500, 5000, 9999, 10000};
  std::size_t violations = 0;
  for (auto b : random_a_) {
    bool was_canary = false;
    for (auto w : kWeights) {
      const bool canary = is_canary(b, w);
      violations += was_canary && !canary;
      was_canary = canary;
    }
  }
  EXPECT_EQ(violations, 0u);
  // Strictly growing cohorts as the weight grows, too.
  for (std::size_t i = 1; i < kWeights.size(); ++i)
    EXPECT_GT(canary_percent(random_a_, kWeights[i]), canary_percent(random_a_, kWeights[i - 1]));
}

TEST_F(CohortProperties, NewSaltDrawsIndependentCohort) {
  // Independent cohorts overlap in w^2 of the keys.
  for (double w : {0.1, 0.3, 0.5}) {
    const auto w_bp = static_cast<std::uint32_t>(std::lround(w * 10000));
    std::size_t both = 0;
    for (int i = 0; i < kKeys; ++i)
      both += is_canary(random_a_[i], w_bp) && is_canary(random_b_[i], w_bp);
    EXPECT_NEAR(static_cast<double>(both) / kKeys, w * w, 0.005) << "w=" << w;
  }
}

TEST(Cohort, EmptyKeyAndDefaultStringView) {
  const std::uint64_t seed = salt_seed("shop");
  EXPECT_EQ(bucket(std::string_view{}, seed), bucket("", seed));
  EXPECT_EQ(salt_seed(std::string_view{}), salt_seed(""));
}

}  // namespace
}  // namespace gp::routing
