// The rollout keys added for the controller: step_weight/max_weight, compare_to_stable as a map,
// max_error_rate_ratio, power and start_delay, valid and invalid.
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "tests/config/parse_error.hpp"

namespace gp::config {
namespace {

using namespace std::chrono_literals;

// Lines 1-15: a route with a canary and a split; rollout keys go from line 17.
const std::string kRollout =
    "listeners: [{name: l, address: 127.0.0.1:8080}]\n"
    "clusters:\n"
    "  - name: a\n"
    "    endpoints: [127.0.0.1:9001]\n"
    "  - name: b\n"
    "    endpoints: [127.0.0.1:9002]\n"
    "routes:\n"
    "  - name: shop\n"
    "    stable: a\n"
    "    canary: b\n"
    "    split:\n"
    "      weight: 10\n"
    "      hash_on: {cookie: uid}\n"
    "    # rollout below\n"
    "\n"
    "    rollout:\n";

Rollout rollout_of(const std::string& keys) {
  return *parse(kRollout + keys, "t.yaml").routes[0].rollout;
}

std::string error_of(const std::string& keys) {
  return parse_error(kRollout + keys);
}

TEST(RolloutConfig, StepWeightUpToMaxWeightThenPromotion) {
  EXPECT_EQ(rollout_of("      step_weight: 10\n      max_weight: 50\n").steps_bp,
            (std::vector<std::uint32_t>{1000, 2000, 3000, 4000, 5000}));
  // max_weight not a multiple of step_weight: the last step is max_weight itself.
  EXPECT_EQ(rollout_of("      step_weight: 20\n      max_weight: 50\n").steps_bp,
            (std::vector<std::uint32_t>{2000, 4000, 5000}));
  // max_weight defaults to 100.
  EXPECT_EQ(rollout_of("      step_weight: 25\n").steps_bp,
            (std::vector<std::uint32_t>{2500, 5000, 7500, 10000}));
  EXPECT_EQ(rollout_of("      step_weight: 2.5\n      max_weight: 5\n").steps_bp,
            (std::vector<std::uint32_t>{250, 500}));
  EXPECT_EQ(rollout_of("      step_weight: 30\n      max_weight: 30\n").steps_bp,
            (std::vector<std::uint32_t>{3000}));
  EXPECT_EQ(rollout_of("      step_weight: 0.01\n").steps_bp.size(), 10000u);
}

TEST(RolloutConfig, ExactlyOneOfStepsOrStepWeight) {
  EXPECT_EQ(error_of("      steps: [50, 100]\n      step_weight: 10\n"),
            "t.yaml:18:7: routes[0].rollout.step_weight: expected exactly one of steps or "
            "step_weight, got both (steps at line 17)");
  EXPECT_EQ(error_of("      step_weight: 10\n      steps: [50, 100]\n"),
            "t.yaml:17:7: routes[0].rollout.step_weight: expected exactly one of steps or "
            "step_weight, got both (steps at line 18)");
  EXPECT_EQ(error_of("      interval: 1m\n"),
            "t.yaml:17:7: routes[0].rollout.steps: required key is missing");
  EXPECT_EQ(error_of("      steps: [50, 100]\n      max_weight: 50\n"),
            "t.yaml:18:7: routes[0].rollout.max_weight: only goes with step_weight (not with "
            "steps)");
  EXPECT_EQ(error_of("      max_weight: 50\n"),
            "t.yaml:17:7: routes[0].rollout.max_weight: only goes with step_weight (not with "
            "steps)");
}

TEST(RolloutConfig, StepWeightRanges) {
  EXPECT_EQ(error_of("      step_weight: 0\n"),
            "t.yaml:17:20: routes[0].rollout.step_weight: must be greater than 0, got 0");
  EXPECT_EQ(error_of("      step_weight: 120\n"),
            "t.yaml:17:20: routes[0].rollout.step_weight: must be between 0 and 100, got 120");
  EXPECT_EQ(error_of("      step_weight: 20\n      max_weight: 10\n"),
            "t.yaml:18:19: routes[0].rollout.max_weight: must be at least step_weight (20), got "
            "10");
  EXPECT_EQ(error_of("      step_weight: [10]\n"),
            "t.yaml:17:20: routes[0].rollout.step_weight: expected a percentage between 0 and "
            "100 like 10 or 12.5, got a sequence");
}

TEST(RolloutConfig, CompareToStableBoolOrMap) {
  const Rollout plain = rollout_of("      steps: [100]\n");
  EXPECT_TRUE(plain.compare_to_stable);  // on unless turned off
  EXPECT_FALSE(plain.compare_confidence);
  EXPECT_DOUBLE_EQ(plain.confidence, 0.995);
  EXPECT_DOUBLE_EQ(plain.power, 0.95);
  EXPECT_DOUBLE_EQ(plain.max_error_rate_ratio, 2);
  EXPECT_EQ(plain.start_delay, 0ms);

  EXPECT_EQ(plain, rollout_of("      steps: [100]\n      compare_to_stable: true\n"));

  // The comparison's own confidence, apart from the absolute checks' `confidence`.
  const Rollout map = rollout_of(
      "      steps: [100]\n      confidence: 0.99\n      compare_to_stable: {confidence: 0.999}\n");
  EXPECT_TRUE(map.compare_to_stable);
  EXPECT_DOUBLE_EQ(map.confidence, 0.99);
  EXPECT_EQ(map.compare_confidence, 0.999);

  const Rollout empty_map = rollout_of("      steps: [100]\n      compare_to_stable: {}\n");
  EXPECT_TRUE(empty_map.compare_to_stable);
  EXPECT_FALSE(empty_map.compare_confidence);
  EXPECT_FALSE(
      rollout_of("      steps: [100]\n      compare_to_stable: false\n").compare_to_stable);
}

TEST(RolloutConfig, CompareToStableErrors) {
  EXPECT_EQ(error_of("      steps: [100]\n      compare_to_stable: yes\n"),
            "t.yaml:18:26: routes[0].rollout.compare_to_stable: expected true, false or a map "
            "like {confidence: 0.99}, got \"yes\"");
  EXPECT_EQ(error_of("      steps: [100]\n      compare_to_stable: [0.99]\n"),
            "t.yaml:18:26: routes[0].rollout.compare_to_stable: expected true, false or a map "
            "like {confidence: 0.99}, got a sequence");
  EXPECT_EQ(error_of("      steps: [100]\n      compare_to_stable: {confidense: 0.99}\n"),
            "t.yaml:18:27: routes[0].rollout.compare_to_stable.confidense: unknown key (expected "
            "one of: confidence)");
  EXPECT_EQ(error_of("      steps: [100]\n      compare_to_stable: {confidence: 1}\n"),
            "t.yaml:18:39: routes[0].rollout.compare_to_stable.confidence: must be between 0.5 "
            "and 0.9999, got 1");
}

TEST(RolloutConfig, RatioAndPower) {
  const Rollout r =
      rollout_of("      steps: [100]\n      max_error_rate_ratio: 1.5\n      power: 0.99\n");
  EXPECT_DOUBLE_EQ(r.max_error_rate_ratio, 1.5);
  EXPECT_DOUBLE_EQ(r.power, 0.99);
  EXPECT_EQ(error_of("      steps: [100]\n      max_error_rate_ratio: 1\n"),
            "t.yaml:18:29: routes[0].rollout.max_error_rate_ratio: must be between 1.01 and "
            "1000, got 1");
  EXPECT_EQ(error_of("      steps: [100]\n      power: 0.3\n"),
            "t.yaml:18:14: routes[0].rollout.power: must be between 0.5 and 0.9999, got 0.3");
  EXPECT_FALSE(r.analyze_only);
  EXPECT_TRUE(rollout_of("      steps: [100]\n      mode: analyze\n").analyze_only);
  EXPECT_FALSE(rollout_of("      steps: [100]\n      mode: progressive\n").analyze_only);
  EXPECT_EQ(error_of("      steps: [100]\n      mode: dry-run\n").substr(0, 42),
            "t.yaml:18:13: routes[0].rollout.mode: expe");
  // The absolute increase over stable is gone, with a pointer to what replaced it.
  EXPECT_EQ(error_of("      steps: [100]\n      max_error_rate_increase: 0.005\n"),
            "t.yaml:18:7: routes[0].rollout.max_error_rate_increase: replaced by "
            "max_error_rate_ratio: the canary is compared with stable as a ratio of error rates "
            "on the same windows (docs/analysis.md)");
}

TEST(RolloutConfig, StartDelay) {
  EXPECT_EQ(rollout_of("      steps: [100]\n      start_delay: 2m\n").start_delay, 2min);
  EXPECT_EQ(rollout_of("      steps: [100]\n      start_delay: 0s\n").start_delay, 0ms);
  EXPECT_EQ(error_of("      steps: [100]\n      start_delay: soon\n").substr(0, 52),
            "t.yaml:18:20: routes[0].rollout.start_delay: expecte");
}

TEST(RolloutConfig, IssueExample) {
  const Rollout r = rollout_of(
      "      steps: [1, 5, 10, 25, 50, 100]\n"
      "      interval: 30s\n"
      "      min_requests: 50\n"
      "      max_error_rate: 0.01\n"
      "      max_error_rate_ratio: 1.5\n"
      "      max_p99_latency: 300ms\n"
      "      failure_limit: 2\n"
      "      consecutive_successes: 2\n"
      "      start_delay: 1m\n"
      "      compare_to_stable: {confidence: 0.99}\n");
  Rollout expected;
  expected.steps_bp = {100, 500, 1000, 2500, 5000, 10000};
  expected.interval = 30s;
  expected.min_requests = 50;
  expected.max_error_rate = 0.01;
  expected.max_error_rate_ratio = 1.5;
  expected.max_p99_latency = 300ms;
  expected.failure_limit = 2;
  expected.consecutive_successes = 2;
  expected.start_delay = 1min;
  expected.compare_to_stable = true;
  expected.compare_confidence = 0.99;
  EXPECT_EQ(r, expected);
}

}  // namespace
}  // namespace gp::config
