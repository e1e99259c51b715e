#!/usr/bin/env bash
# Builds grayproxy and runs every test: unit tests, the rollout simulation, the
# integration tests against the real binary, the unit tests and the integration tests
# again under ASan+UBSan, the unit tests under TSan, and both fuzzers
# for a bounded time (FUZZ_SECONDS, default 30 each).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build test
jobs=$(nproc)
export CCACHE_DIR=${CCACHE_DIR:-$PWD/.ccache}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest -L 'unit|sim' -j"$jobs" --output-on-failure --timeout 300)
# Integration tests measure memory and timeouts of a real process: one at a time.
(cd build && ctest -L integration --output-on-failure)

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGRAYPROXY_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" --target config_tests routing_tests metrics_tests proxy_tests \
  grayproxy
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest -L unit -j"$jobs" --output-on-failure --timeout 600)
# End to end under ASan+UBSan: every suite but deploy (it checks the release binary's linked
# libraries), about six minutes. ctest passes the sanitizer options and the harness fails a
# test on any report (integration/CMakeLists.txt).
(cd build-asan && ctest -L integration --output-on-failure -E '^integration[.]deploy$')
scripts/tsan.sh
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
echo "all tests passed"
