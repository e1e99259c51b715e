#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang-14 + ASan + UBSan) into build-fuzz and runs
# each for a bounded time on a scratch copy of its seed corpus (the repository corpus is never
# grown). Exits non-zero on any finding: crash, sanitizer report, leak, timeout or OOM.
# usage: scripts/fuzz.sh [SECONDS]   (default 60, per target; the targets run in parallel)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=(config_fuzz request_fuzz)

scripts/deps.sh fuzz  # clang-14 and its libFuzzer runtime, if missing

export CCACHE_DIR=${CCACHE_DIR:-$PWD/.ccache}
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
CXX=clang++-14 cmake -S tests/fuzz -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j"$(nproc)"

work=build-fuzz/run
rm -rf "$work"
mkdir -p "$work/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

pids=()
# A fuzzer still running when this script stops (error, Ctrl-C) is stopped with it.
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
for t in "${targets[@]}"; do
  name=${t%_fuzz}
  mkdir -p "$work/corpus-$name"
  cp tests/fuzz/corpus/"$name"/* "$work/corpus-$name/"
  # The targets run side by side, one process each (sized for a two-core runner).
  # The harness's watchdog (tests/fuzz/watchdog.hpp) catches a hanging input after 8 s;
  # timeout(1) only bounds the wall time should everything else fail.
  timeout -s KILL $((seconds + 120)) build-fuzz/"$t" "$work/corpus-$name" \
    -dict=tests/fuzz/"$name".dict \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/$t-" \
    >"$work/$t.log" 2>&1 &
  pids+=($!)
done

failed=0
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  if wait "${pids[$i]}"; then rc=0; else rc=$?; fi
  stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$work/$t.log" |
          sed 's/^stat:://' | tr -s ' \n' ' ' || true)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$work/$t.log" | tail -1 || true)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $t ok (${seconds}s; $stats; $cov)"
  else
    failed=1
    echo "fuzz: $t FAILED (exit $rc); log: $work/$t.log" >&2
    grep -E -A40 '^==[0-9]+==ERROR|^==gp-fuzz-watchdog==|^FINDING|runtime error|out-of-memory|LeakSanitizer' \
      "$work/$t.log" | head -80 >&2 || tail -40 "$work/$t.log" >&2
    for a in "$work"/artifacts/"$t"-*; do
      [ -e "$a" ] || continue
      echo "reproducer $a (base64; run: build-fuzz/$t FILE):" >&2
      base64 -w0 "$a" >&2
      echo >&2
    done
  fi
done
exit "$failed"
