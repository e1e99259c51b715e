#!/usr/bin/env bash
# TLS termination throughput: wrk over https (keep-alive) against a grayproxy TLS listener,
# compared with wrk over http against a plain listener of the same proxy, in the same run.
# One grayproxy worker; the upstream is nginx `return 200`. A throw-away CA and server
# certificate are made with the openssl CLI in a temp dir (removed at exit).
#
# usage: integration/bench/tls_bench.sh
# env:   GRAYPROXY_BIN   proxy binary (default: the first build*/proxy/grayproxy)
#        CONNS=32 DURATION=10s THREADS=1 ROUNDS=1 (each round: http then https)
#        PIN=1 (wrk + nginx on CPU 0, grayproxy on CPU 1, if there are >= 2 CPUs)
#        KEEP=0 (1 = keep the temp dir)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONNS="${CONNS:-32}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-1}"
ROUNDS="${ROUNDS:-1}"
PIN="${PIN:-1}"
KEEP="${KEEP:-0}"

log() { printf '[tls-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for t in wrk openssl curl; do command -v "$t" >/dev/null || die "$t not found"; done
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$NGINX" ] || die "nginx not found"
if [ -z "${GRAYPROXY_BIN:-}" ]; then
  for c in "$ROOT"/build*/proxy/grayproxy; do [ -x "$c" ] && GRAYPROXY_BIN="$c" && break; done
fi
[ -x "${GRAYPROXY_BIN:-}" ] || die "set GRAYPROXY_BIN to a grayproxy binary"

if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_load=(taskset -c 0); pin_proxy=(taskset -c 1); PIN_DESC="wrk+nginx on CPU 0, grayproxy on CPU 1"
else
  pin_load=(); pin_proxy=(); PIN_DESC="no CPU pinning"
fi

W="$(mktemp -d /tmp/grayproxy-tls-bench.XXXXXX)"
chmod 755 "$W"
PIDS=()
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  if [ "$KEEP" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

read -r P_UP P_PLAIN P_TLS P_ADMIN < <(/usr/bin/python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

# --- certificates ------------------------------------------------------------------------
cat > "$W/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = grayproxy bench CA
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
EOF
cat > "$W/leaf.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = proxy.test
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:proxy.test,IP:127.0.0.1
EOF
ossl() { openssl "$@" 2>>"$W/openssl.log" || die "openssl $1 failed: $(tail -3 "$W/openssl.log")"; }
ossl req -x509 -new -config "$W/ca.cnf" -extensions ext -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -nodes -keyout "$W/ca.key" -out "$W/ca.crt" -days 2
ossl req -new -config "$W/leaf.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$W/proxy.key" -out "$W/proxy.csr"
ossl x509 -req -in "$W/proxy.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -set_serial 1 -days 2 \
  -extfile "$W/leaf.cnf" -extensions ext -out "$W/proxy.crt"

# --- nginx upstream ----------------------------------------------------------------------
mkdir -p "$W/nginx" "$W/gp-state"
cat > "$W/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/nginx/body;
  proxy_temp_path $W/nginx/proxy;
  fastcgi_temp_path $W/nginx/fastcgi;
  uwsgi_temp_path $W/nginx/uwsgi;
  scgi_temp_path $W/nginx/scgi;
  default_type text/plain;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$P_UP backlog=4096;
    location / { return 200 "ok\n"; }
  }
}
EOF
"${pin_load[@]}" "$NGINX" -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" \
  >"$W/nginx/stdout.log" 2>&1 &
PIDS+=($!)

# --- grayproxy: one worker, a plain and a TLS listener, same route -----------------------
cat > "$W/grayproxy.yaml" <<EOF
workers: 1
state_dir: $W/gp-state
admin:
  address: 127.0.0.1:$P_ADMIN
timeouts:
  request_header: 10s
  idle: 60s
  upstream_connect: 2s
  upstream_response: 30s
  drain: 2s
listeners:
  - name: plain
    address: 127.0.0.1:$P_PLAIN
  - name: secure
    address: 127.0.0.1:$P_TLS
    tls:
      cert_file: $W/proxy.crt
      key_file: $W/proxy.key
clusters:
  - name: up
    endpoints: [127.0.0.1:$P_UP]
routes:
  - name: all
    match: {path_prefix: /}
    stable: up
EOF
"${pin_proxy[@]}" "$GRAYPROXY_BIN" -c "$W/grayproxy.yaml" >"$W/grayproxy.log" 2>&1 &
PIDS+=($!)

wait_ok() {  # url [curl args]
  local url="$1"; shift
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
wait_ok "http://127.0.0.1:$P_UP/" || die "nginx did not start: $(tail -5 "$W/nginx/error.log" 2>/dev/null)"
wait_ok "http://127.0.0.1:$P_PLAIN/" || die "grayproxy plain listener not ready: $(tail -5 "$W/grayproxy.log")"
wait_ok "https://proxy.test:$P_TLS/" --cacert "$W/ca.crt" --resolve "proxy.test:$P_TLS:127.0.0.1" ||
  die "grayproxy TLS listener not ready: $(tail -5 "$W/grayproxy.log")"
PROTO="$(echo | openssl s_client -connect "127.0.0.1:$P_TLS" -servername proxy.test 2>/dev/null |
  sed -n 's/^New, \(TLSv[0-9.]*\), Cipher is \(.*\)$/\1 \2/p' | head -1)"

run_wrk() {  # label url
  local out="$W/wrk-$1-$2.txt"
  "${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$3" >"$out" 2>&1 ||
    die "wrk failed: $(tail -5 "$out")"
  local rps p50 p99 errs
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  p50="$(awk '$1 == "50%" {print $2}' "$out")"
  p99="$(awk '$1 == "99%" {print $2}' "$out")"
  errs="$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$out")"
  printf '%-6s round %d  %12s req/s   p50 %8s   p99 %8s  %s\n' "$1" "$2" "$rps" "$p50" "$p99" "$errs"
  echo "$1 $rps" >>"$W/rps.txt"
}

log "warm-up (2 s each)"
"${pin_load[@]}" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$P_PLAIN/" >/dev/null 2>&1 || true
"${pin_load[@]}" wrk -t1 -c"$CONNS" -d2s "https://127.0.0.1:$P_TLS/" >/dev/null 2>&1 || true

echo "grayproxy TLS termination: wrk -t$THREADS -c$CONNS -d$DURATION (keep-alive), 1 proxy worker,"
echo "nginx 'return 200' upstream, $PIN_DESC; TLS: ${PROTO:-?}"
for r in $(seq "$ROUNDS"); do
  run_wrk http "$r" "http://127.0.0.1:$P_PLAIN/"
  run_wrk https "$r" "https://127.0.0.1:$P_TLS/"
done
awk '{s[$1] += $2; n[$1]++} END {
  h = s["http"] / n["http"]; t = s["https"] / n["https"];
  printf "mean: http %.0f req/s, https %.0f req/s, https/http = %.2f\n", h, t, (h > 0 ? t / h : 0) }' "$W/rps.txt"
grep -q "session ended by an exception\|level=error" "$W/grayproxy.log" &&
  log "grayproxy logged errors: $(grep -m3 'level=error' "$W/grayproxy.log")"
exit 0
