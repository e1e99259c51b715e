#!/usr/bin/env bash
# grayproxy vs HAProxy vs nginx: the same upstreams, the same 10% header-hash split, one
# worker each, the same wrk load.  See integration/bench/README.md.
#
# usage: integration/bench/run.sh            (as root if packages must be installed)
# env:   GRAYPROXY_BIN   proxy binary (default: build Release into build-bench/)
#        ROUNDS=3 DURATION=10s CONNS=64      small-response rounds (A B C repeated)
#        LARGE_CONNS=16 LARGE_DURATION=$DURATION   1 MiB-response rounds
#        IDLE_CONNS=4000                     idle keep-alive connections per proxy
#        WARMUP=3s                           per proxy before the rounds
#        PIN=1 WRK_CPU=0 PROXY_CPU=1 UPSTREAM_CPU=0   taskset pinning (PIN=0: none)
#        NGINX_PROXY_BUFFERING=off           nginx proxy_buffering (off = stream like grayproxy)
#        OUT=/tmp/grayproxy-bench-results.txt   where the table is written too
#        KEEP=0                              1 = keep the temp dir (configs, wrk output, logs)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
LARGE_CONNS="${LARGE_CONNS:-16}"
LARGE_DURATION="${LARGE_DURATION:-$DURATION}"
IDLE_CONNS="${IDLE_CONNS:-4000}"
WARMUP="${WARMUP:-3s}"
PIN="${PIN:-1}"
WRK_CPU="${WRK_CPU:-0}"
PROXY_CPU="${PROXY_CPU:-1}"
UPSTREAM_CPU="${UPSTREAM_CPU:-0}"
NGINX_PROXY_BUFFERING="${NGINX_PROXY_BUFFERING:-off}"
OUT="${OUT:-${TMPDIR:-/tmp}/grayproxy-bench-results.txt}"
KEEP="${KEEP:-0}"
PROXIES=(grayproxy haproxy nginx)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- packages and binary --------------------------------------------------------------
bash "$ROOT/scripts/deps.sh" bench
for t in wrk haproxy nginx curl taskset; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || die "$t not found"
done
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"

if [ -z "${GRAYPROXY_BIN:-}" ]; then
  log "building grayproxy (Release) into build-bench/"
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DGRAYPROXY_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build-bench" --target grayproxy -j"$(nproc)" >/dev/null
  GRAYPROXY_BIN="$ROOT/build-bench/proxy/grayproxy"
fi
[ -x "$GRAYPROXY_BIN" ] || die "GRAYPROXY_BIN=$GRAYPROXY_BIN is not executable"

# --- limits, pinning, temp dir, cleanup ------------------------------------------------
hard="$(ulimit -Hn)"
want=65536
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want="$hard"; fi
ulimit -n "$want" || true
[ "$(ulimit -n)" -ge $((IDLE_CONNS * 2 + 512)) ] ||
  log "warning: ulimit -n is $(ulimit -n); $IDLE_CONNS idle connections may not fit"

if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  pin_wrk=(taskset -c "$WRK_CPU"); pin_proxy=(taskset -c "$PROXY_CPU"); pin_up=(taskset -c "$UPSTREAM_CPU")
  PIN_DESC="wrk on CPU $WRK_CPU, proxy under test on CPU $PROXY_CPU, upstream nginx on CPU $UPSTREAM_CPU"
else
  pin_wrk=(); pin_proxy=(); pin_up=()
  PIN_DESC="no CPU pinning"
fi

W="$(mktemp -d /tmp/grayproxy-bench.XXXXXX)"
chmod 755 "$W"   # nginx workers (not root) read the 1 MiB file from here
PIDS=()
COPROC_PID_SAVED=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$COPROC_PID_SAVED" ] && kill "$COPROC_PID_SAVED" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 30); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; then log "kept $W"; else rm -rf "$W"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r P_STABLE P_CANARY P_GP P_GP_ADMIN P_HAP P_NGX < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(6):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

# --- configs ---------------------------------------------------------------------------
mkdir -p "$W/www" "$W/gp-state"
head -c 1048576 /dev/urandom > "$W/www/big"
chmod 644 "$W/www/big"

upstream_conf() {  # name port
  mkdir -p "$W/up-$1"
  cat > "$W/up-$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $W/up-$1/nginx.pid;
error_log $W/up-$1/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/up-$1/body;
  proxy_temp_path $W/up-$1/proxy;
  fastcgi_temp_path $W/up-$1/fastcgi;
  uwsgi_temp_path $W/up-$1/uwsgi;
  scgi_temp_path $W/up-$1/scgi;
  default_type text/plain;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$2 backlog=4096;
    location = /big { root $W/www; default_type application/octet-stream; }
    location / { return 200 "$1\n"; }
  }
}
EOF
}
upstream_conf stable "$P_STABLE"
upstream_conf canary "$P_CANARY"

cat > "$W/grayproxy.yaml" <<EOF
workers: 1
state_dir: $W/gp-state
admin:
  address: 127.0.0.1:$P_GP_ADMIN
timeouts:
  request_header: 10s
  idle: 60s
  upstream_connect: 2s
  upstream_response: 30s
  drain: 2s
limits:
  max_connections: 10000
  max_idle_upstream_per_endpoint: 64
listeners:
  - { name: public, address: 127.0.0.1:$P_GP }
clusters:
  - { name: stable, endpoints: [127.0.0.1:$P_STABLE] }
  - { name: canary, endpoints: [127.0.0.1:$P_CANARY] }
routes:
  - name: bench
    match: { path_prefix: / }
    stable: stable
    canary: canary
    split:
      weight: 10
      hash_on: { header: x-user-id }
EOF

# HAProxy: same split share (xxh64 seed 0, not grayproxy's XXH3 rule), the same request
# rewriting grayproxy does (X-Forwarded-For/-Proto, x-gray-version), keep-alive to servers.
# and() clears the top bit: HAProxy integers are signed, so mod() of the half of the xxh64
# values above 2^63 would be negative and always "< 1000" (a 55% canary share).
cat > "$W/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  no log
  option http-keep-alive
  http-reuse always
  timeout connect 2s
  timeout client 60s
  timeout server 30s
  timeout http-request 10s
  timeout http-keep-alive 60s
frontend fe
  bind 127.0.0.1:$P_HAP
  option forwardfor
  http-request set-var(txn.bucket) req.hdr(x-user-id),xxh64,and(9223372036854775807),mod(10000)
  acl to_canary var(txn.bucket) -m int lt 1000
  http-request set-header X-Forwarded-Proto http
  http-request set-header x-gray-version canary if to_canary
  http-request set-header x-gray-version stable if !to_canary
  use_backend canary if to_canary
  default_backend stable
backend stable
  server s1 127.0.0.1:$P_STABLE
backend canary
  server c1 127.0.0.1:$P_CANARY
EOF

mkdir -p "$W/ngx"
cat > "$W/ngx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 30000;
daemon off;
pid $W/ngx/nginx.pid;
error_log $W/ngx/error.log error;
events { worker_connections 10000; }
http {
  access_log off;
  gzip off;
  client_body_temp_path $W/ngx/body;
  proxy_temp_path $W/ngx/proxy;
  fastcgi_temp_path $W/ngx/fastcgi;
  uwsgi_temp_path $W/ngx/uwsgi;
  scgi_temp_path $W/ngx/scgi;
  keepalive_timeout 60s;
  keepalive_requests 100000000;
  client_header_timeout 10s;
  tcp_nodelay on;
  split_clients "\${http_x_user_id}" \$variant {
    10% canary;
    *   stable;
  }
  upstream stable { server 127.0.0.1:$P_STABLE; keepalive 64; keepalive_requests 100000000; keepalive_timeout 60s; }
  upstream canary { server 127.0.0.1:$P_CANARY; keepalive 64; keepalive_requests 100000000; keepalive_timeout 60s; }
  server {
    listen 127.0.0.1:$P_NGX backlog=4096;
    location / {
      proxy_pass http://\$variant;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header x-gray-version \$variant;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
      proxy_send_timeout 30s;
      proxy_buffering $NGINX_PROXY_BUFFERING;
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
    }
  }
}
EOF

# --- start everything ------------------------------------------------------------------
declare -A PID PORT
PORT[grayproxy]=$P_GP; PORT[haproxy]=$P_HAP; PORT[nginx]=$P_NGX

start() {  # name logfile cmd...
  local name="$1" logf="$2"; shift 2
  "$@" >"$logf" 2>&1 &
  PID[$name]=$!
  PIDS+=("$!")
}
wait_http() {  # port
  for _ in $(seq 200); do
    curl -fsS -o /dev/null -H 'x-user-id: probe' "http://127.0.0.1:$1/" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

"$NGINX" -t -q -p "$W/ngx" -c "$W/ngx/nginx.conf" -e "$W/ngx/error.log" || die "nginx proxy config invalid"
"$HAPROXY" -c -q -f "$W/haproxy.cfg" || die "haproxy config invalid"
"$GRAYPROXY_BIN" --check -c "$W/grayproxy.yaml" >/dev/null || die "grayproxy config invalid"

start up-stable "$W/up-stable/stderr" "${pin_up[@]}" "$NGINX" -p "$W/up-stable" -c "$W/up-stable/nginx.conf" -e "$W/up-stable/error.log"
start up-canary "$W/up-canary/stderr" "${pin_up[@]}" "$NGINX" -p "$W/up-canary" -c "$W/up-canary/nginx.conf" -e "$W/up-canary/error.log"
wait_http "$P_STABLE" || die "stable upstream did not start"
wait_http "$P_CANARY" || die "canary upstream did not start"
start grayproxy "$W/grayproxy.log" "${pin_proxy[@]}" "$GRAYPROXY_BIN" -c "$W/grayproxy.yaml"
start haproxy "$W/haproxy.log" "${pin_proxy[@]}" "$HAPROXY" -db -f "$W/haproxy.cfg"
start nginx "$W/ngx/stderr" "${pin_proxy[@]}" "$NGINX" -p "$W/ngx" -c "$W/ngx/nginx.conf" -e "$W/ngx/error.log"
for p in "${PROXIES[@]}"; do wait_http "${PORT[$p]}" || die "$p did not start (see $W)"; done
log "up: stable :$P_STABLE canary :$P_CANARY grayproxy :$P_GP haproxy :$P_HAP nginx :$P_NGX ($PIN_DESC)"

# --- measuring helpers -----------------------------------------------------------------
procs_of() { echo "$1"; pgrep -P "$1" || true; }   # a proxy's process and its children (nginx worker)
cpu_ticks() {  # utime+stime of the proxy's processes, in clock ticks
  local t=0 p s
  for p in $(procs_of "$1"); do
    s="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null)" || continue
    t=$((t + $(awk '{print $12 + $13}' <<<"$s")))
  done
  echo "$t"
}
rss_kib() {
  local t=0 p r
  for p in $(procs_of "$1"); do
    r="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)" || continue
    t=$((t + ${r:-0}))
  done
  echo "$t"
}
HZ="$(getconf CLK_TCK)"

RUNS="$W/runs.tsv"
printf 'proxy\tkind\tround\trequests\trps\tp50_us\tp99_us\tmax_us\tcpu_us_per_req\terrors\n' > "$RUNS"

run_wrk() {  # proxy kind round conns duration path -> appends to $RUNS
  local p="$1" kind="$2" round="$3" conns="$4" dur="$5" path="$6"
  local pid="${PID[$p]}" out="$W/wrk-$p-$kind-$round.txt" c0 c1
  kill -0 "$pid" 2>/dev/null || die "$p (pid $pid) is not running"
  c0="$(cpu_ticks "$pid")"
  "${pin_wrk[@]}" wrk -t1 -c"$conns" -d"$dur" --timeout 5s --latency -s "$HERE/req.lua" \
    "http://127.0.0.1:${PORT[$p]}$path" > "$out" 2>&1 || die "wrk failed against $p: $(tail -3 "$out")"
  c1="$(cpu_ticks "$pid")"
  kill -0 "$pid" 2>/dev/null || die "$p died during the run (see $W)"
  [ "$round" = warmup ] && return 0
  "$PY" - "$p" "$kind" "$round" "$c0" "$c1" "$HZ" "$out" >> "$RUNS" <<'EOF'
import re, sys
p, kind, rnd, c0, c1, hz, path = sys.argv[1:]
text = open(path).read()
m = re.search(r"^RESULT (.*)$", text, re.M)
if not m:
    sys.exit("no RESULT line in " + path)
r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
reqs = r["requests"]
rps = reqs / (r["duration_us"] / 1e6)
cpu = (int(c1) - int(c0)) * 1e6 / int(hz) / max(1, reqs)
errs = sum(v for k, v in r.items() if k.startswith("err_"))
print("\t".join(map(str, [p, kind, rnd, reqs, "%.1f" % rps, r["p50_us"], r["p99_us"], r["max_us"], "%.2f" % cpu, errs])))
EOF
  log "$(tail -1 "$RUNS" | awk -F'\t' '{printf "%-9s %-5s round %s: %8.0f req/s p50 %5.2f ms p99 %6.2f ms max %7.2f ms cpu %6.1f us/req errors %s", $1,$2,$3,$5,$6/1000,$7/1000,$8/1000,$9,$10}')"
}

# --- split check -----------------------------------------------------------------------
SPLIT="$W/split.txt"
for p in "${PROXIES[@]}"; do
  case "$p" in grayproxy) rule=(--rule xxh3:bench) ;; haproxy) rule=(--rule xxh64) ;; *) rule=() ;; esac
  res="$("$PY" "$HERE/split_check.py" "${PORT[$p]}" 2000 "${rule[@]}")"
  printf '%-9s %s\n' "$p" "$res" | tee -a "$SPLIT" >&2
done

# --- throughput / latency / CPU rounds -------------------------------------------------
for p in "${PROXIES[@]}"; do
  run_wrk "$p" small warmup "$CONNS" "$WARMUP" /
  run_wrk "$p" large warmup "$LARGE_CONNS" 1s /big
done
for r in $(seq "$ROUNDS"); do
  for p in "${PROXIES[@]}"; do run_wrk "$p" small "$r" "$CONNS" "$DURATION" /; done
done
for r in $(seq "$ROUNDS"); do
  for p in "${PROXIES[@]}"; do run_wrk "$p" large "$r" "$LARGE_CONNS" "$LARGE_DURATION" /big; done
done

# --- idle keep-alive connections, one proxy at a time ----------------------------------
IDLE="$W/idle.tsv"
printf 'proxy\tconns_ok\tconns_failed\trss_before_kib\trss_after_kib\tstill_open\n' > "$IDLE"
for p in "${PROXIES[@]}"; do
  pid="${PID[$p]}"
  sleep 1
  before="$(rss_kib "$pid")"
  coproc IDLEC { "${pin_wrk[@]}" "$PY" "$HERE/idle_conns.py" "${PORT[$p]}" "$IDLE_CONNS"; }
  COPROC_PID_SAVED="$IDLEC_PID"
  read -r ready <&"${IDLEC[0]}" || die "idle client failed against $p"
  sleep 2
  after="$(rss_kib "$pid")"
  echo close >&"${IDLEC[1]}"
  read -r closed <&"${IDLEC[0]}" || closed="CLOSED alive=?"
  wait "$IDLEC_PID" 2>/dev/null || true
  COPROC_PID_SAVED=""
  ok="$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$ready")"
  failed="$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$ready")"
  alive="$(sed -n 's/.*alive=\([0-9?]*\).*/\1/p' <<<"$closed")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$ok" "$failed" "$before" "$after" "$alive" >> "$IDLE"
  log "$p idle: $ready, RSS $before -> $after KiB, still open after 2 s: $alive"
  kill -0 "$pid" 2>/dev/null || die "$p died during the idle test"
done

# --- report ----------------------------------------------------------------------------
gp_warn="$(grep -c 'level=\(warn\|error\)' "$W/grayproxy.log" || true)"
{
  echo "grayproxy vs HAProxy $("$HAPROXY" -v | awk 'NR==1{print $3}') vs nginx $("$NGINX" -v 2>&1 | sed 's|.*/||')," \
       "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $PIN_DESC"
  echo "small: $ROUNDS rounds x $DURATION, $CONNS connections, wrk -t1, response \"stable\\n\"/\"canary\\n\";" \
       "1MiB: $ROUNDS rounds x $LARGE_DURATION, $LARGE_CONNS connections; idle: $IDLE_CONNS connections"
  echo
  "$PY" "$HERE/report.py" "$RUNS" "$IDLE"
  echo
  echo "split check (2000 distinct keys each; haproxy is xxh64 seed 0, nginx split_clients is MurmurHash2):"
  cat "$SPLIT"
  echo
  echo "per run:"
  column -t -s $'\t' "$RUNS"
  echo
  echo "idle:"
  column -t -s $'\t' "$IDLE"
  echo
  echo "grayproxy log: $gp_warn warn/error lines"
  grep 'level=\(warn\|error\)' "$W/grayproxy.log" | cut -c1-200 | sort | uniq -c | sort -rn | head -5 || true
} > "$OUT"
cat "$OUT"
log "results written to $OUT"
