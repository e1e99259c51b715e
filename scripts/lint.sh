#!/usr/bin/env bash
# clang-format (check only) and clang-tidy over the project's sources.
# usage: scripts/lint.sh [build-dir-with-compile_commands.json]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
files=$(git ls-files 'config/*.cpp' 'routing/*.cpp' 'metrics/*.cpp' 'proxy/*.cpp')
status=0
git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run --Werror || status=1
[ -f "$build/compile_commands.json" ] || cmake -S . -B "$build" >/dev/null
echo "$files" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet 2>/dev/null |
  grep -E 'warning:|error:' && status=1
exit $status
