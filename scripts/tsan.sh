#!/usr/bin/env bash
# Builds the unit tests with ThreadSanitizer (g++) into build-tsan and runs them; any data
# race (or other TSan report) fails the run.
# usage: scripts/tsan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
export CCACHE_DIR=${CCACHE_DIR:-$PWD/.ccache}

cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug \
  "-DCMAKE_CXX_FLAGS=-fsanitize=thread -Wno-tsan" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build build-tsan -j"$jobs" --target config_tests routing_tests metrics_tests proxy_tests
# second_deadlock_stack: both stacks of a lock-order inversion; exitcode 66 marks a TSan report.
(cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66 ${TSAN_OPTIONS:-}" \
   ctest -L unit -j"$jobs" --output-on-failure --timeout 600)
echo "tsan: unit tests passed"
