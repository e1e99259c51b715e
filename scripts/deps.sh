#!/usr/bin/env bash
# Installs the Debian 12 packages grayproxy needs, only those that are missing.
# usage: scripts/deps.sh [build|test|bench|fuzz]...   (default: build)
set -euo pipefail

build=(g++ cmake make pkg-config ccache libboost1.81-dev libboost-json1.81-dev libyaml-cpp-dev
       libssl-dev prometheus-cpp-dev libxxhash-dev zlib1g-dev libgtest-dev libbenchmark-dev)
test=(curl wrk python3 python3-xxhash python3-websockets xxhash openssl prometheus procps iproute2 chromium
      fonts-liberation systemd clang-14 libclang-rt-14-dev etcd-server)
bench=(haproxy nginx-light wrk python3 curl)
fuzz=(clang-14 libclang-rt-14-dev)

wanted=("${build[@]}")
for what in "$@"; do
  case "$what" in
    build) ;;
    test) wanted+=("${test[@]}") ;;
    bench) wanted+=("${test[@]}" "${bench[@]}") ;;
    fuzz) wanted+=("${fuzz[@]}") ;;
    *) echo "deps.sh: unknown set '$what'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "deps.sh: run as root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
