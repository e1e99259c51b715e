#!/usr/bin/env bash
# Builds grayproxy and starts the demo: the proxy plus built-in stable and canary upstreams.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRAYPROXY_TESTS=OFF >/dev/null
cmake --build build --target grayproxy -j"$(nproc)"
exec ./build/proxy/grayproxy --demo "$@"
