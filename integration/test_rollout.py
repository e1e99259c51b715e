#!/usr/bin/python3
"""End-to-end tests of the rollout controller and its admin API (docs/analysis.md,
docs/design.md "Admin API") against the real binary, with `interval: 1s`.

The canary upstream is this very file run with `--serve`: a threaded HTTP/1.1 keep-alive
server that answers 500 to every Nth request (deterministically) and counts what it served,
so a test can tell whether the canary still receives traffic. Stable is integration/upstream.py.

Traffic comes from a background Load: a few keep-alive clients at a bounded rate, each
request with a fresh x-user-id (the route hashes on it), so about weight% of the requests go
to the canary.

Rollback speed is asserted on the judgements /status reports (their count from the first
window in which the canary got traffic), not on wall-clock seconds, so a loaded machine does
not make the tests flaky.
"""

import argparse
import http.client
import http.server
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

ROUTE = "shop"
TOKEN = "s3cret-rollout-token"
STEPS = [10, 50, 100]
FAILURE_LIMIT = 2
MIN_REQUESTS = 20
MAX_ERROR_RATE = 0.01
STATES = ("idle", "progressing", "paused", "promoted", "rolled_back")


# ---------------------------------------------------------------------------------------
# The canary upstream (this file with --serve)
# ---------------------------------------------------------------------------------------

class _CountingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, name, fail_every, delay_ms=0):
        super().__init__(addr, _CountingHandler)
        self.name = name
        self.fail_every = fail_every
        self.delay = delay_ms / 1000.0
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 30                   # idle keep-alive connections end eventually
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("x-upstream", self.server.name)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def _handle(self):
        self._drain_body()
        srv = self.server
        if self.path == "/__stats":
            with srv.lock:
                body = json.dumps({"requests": srv.requests, "errors": srv.errors}).encode()
            self._send(200, body)
            return
        if self.path.startswith("/__fail_every/"):  # the test changes the failure rate
            with srv.lock:
                srv.fail_every = int(self.path.rsplit("/", 1)[1])
            self._send(200, b"{}")
            return
        if srv.delay:
            time.sleep(srv.delay)
        with srv.lock:
            srv.requests += 1
            n = srv.requests
            fail = srv.fail_every > 0 and n % srv.fail_every == 0
            if fail:
                srv.errors += 1
        body = json.dumps({"name": srv.name, "n": n, "failed": fail}).encode()
        self._send(500 if fail else 200, body)

    do_GET = _handle
    do_HEAD = _handle
    do_POST = _handle


def serve_main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--name", default="canary")
    ap.add_argument("--fail-every", type=int, default=0, help="answer 500 to every Nth request")
    ap.add_argument("--delay-ms", type=int, default=0, help="answer every request this late")
    args = ap.parse_args(argv)
    srv = _CountingServer(("127.0.0.1", 0), args.name, args.fail_every, args.delay_ms)
    sys.stdout.write("LISTENING %d\n" % srv.server_address[1])
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------------------

class Load:
    """`conns` keep-alive clients at about `rate` requests/s in total, each request with a
    random x-user-id. Bounded by max_seconds; stop() ends it."""

    def __init__(self, port, rate=400, conns=4, max_seconds=150, seed=7):
        self.port = port
        self.rate = rate
        self.conns = conns
        self.max_seconds = max_seconds
        self.seed = seed
        self.lock = threading.Lock()
        self.by_upstream = {}
        self.by_status = {}
        self.failures = 0
        self.total = 0
        self.log = []  # (monotonic time, upstream, status), bounded
        self._halt = threading.Event()
        self._threads = []
        self.started = None

    def start(self):
        self.started = time.monotonic()
        for i in range(self.conns):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._halt.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def _record(self, upstream, status):
        with self.lock:
            self.total += 1
            self.by_upstream[upstream] = self.by_upstream.get(upstream, 0) + 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if len(self.log) < 200000:
                self.log.append((time.monotonic(), upstream, status))

    def _run(self, idx):
        rng = random.Random(self.seed * 1000 + idx)
        per_thread = float(self.rate) / self.conns
        deadline = self.started + self.max_seconds
        conn = None
        nxt = time.monotonic()
        for _ in range(10 ** 7):
            if self._halt.is_set() or time.monotonic() >= deadline:
                break
            now = time.monotonic()
            if nxt > now:
                if self._halt.wait(nxt - now):
                    break
            elif nxt < now - 0.5:
                nxt = now  # fell behind: no burst to catch up
            nxt += 1.0 / per_thread
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/", headers={"Host": "shop.test",
                                                  "x-user-id": "user-%d" % rng.getrandbits(48)})
                r = conn.getresponse()
                r.read()
                self._record(r.getheader("x-upstream", "?"), r.status)
                if (r.getheader("connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                self._halt.wait(0.05)
        if conn is not None:
            conn.close()

    def snapshot(self):
        with self.lock:
            return {"total": self.total, "by_upstream": dict(self.by_upstream),
                    "by_status": dict(self.by_status), "failures": self.failures,
                    "seconds": round(time.monotonic() - self.started, 2)}

    def since(self, t0):
        with self.lock:
            return [e for e in self.log if e[0] >= t0]


# ---------------------------------------------------------------------------------------
# Metrics text
# ---------------------------------------------------------------------------------------

parse_metrics = harness.parse_metrics  # one parser of the exposition format for all tests


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())))


# ---------------------------------------------------------------------------------------
# Fixture
# ---------------------------------------------------------------------------------------

class RolloutBase(harness.ProxyTestCase):
    CANARY_FAIL_EVERY = 0
    CANARY_DELAY_MS = 0
    STABLE_FAIL_EVERY = None  # a number: stable is a counting server too, failing like that
    STABLE_DELAY_MS = 0       # with STABLE_FAIL_EVERY set
    MAX_P99_LATENCY = None    # e.g. "200ms"
    MAX_LATENCY_RATIO = None  # e.g. 1.5
    WITH_TOKEN = False

    def setUp(self):
        super().setUp()
        self.loads = []
        if self.STABLE_FAIL_EVERY is None:
            _, self.port_s = self.start_upstream("stable")
        else:
            _, self.port_s = self.start_canary("stable", self.STABLE_FAIL_EVERY,
                                               self.STABLE_DELAY_MS)
        self.canary_proc, self.port_c = self.start_canary("canary", self.CANARY_FAIL_EVERY,
                                                          self.CANARY_DELAY_MS)
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        self.cfg = self.make_config()
        self.start_proxy(self.cfg, self.listen)
        self.wait_admin()

    def tearDown(self):
        for ld in self.loads:
            ld.stop()
        super().tearDown()

    # -- processes ----------------------------------------------------------------------

    def start_canary(self, name, fail_every, delay_ms=0):
        err_path = os.path.join(self.tmp, "upstream-%s.stderr" % name)
        err = open(err_path, "ab")
        proc = subprocess.Popen([harness.PYTHON, os.path.abspath(__file__), "--serve", "--name", name,
                                 "--fail-every", str(fail_every), "--delay-ms", str(delay_ms)],
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        err.close()
        self._procs.append(("upstream-" + name, proc))
        self._logs.append(err_path)
        line = harness.read_first_line(proc, timeout=10.0)
        if not line.startswith(b"LISTENING "):
            self.fail("canary upstream did not start: %r" % line)
        return proc, int(line.split()[1])

    def make_config(self):
        clusters = [{"name": "v1", "endpoints": ["127.0.0.1:%d" % self.port_s]},
                    {"name": "v2", "endpoints": ["127.0.0.1:%d" % self.port_c]}]
        routes = [
            {"name": "plain", "match": {"path_prefix": "/plain"}, "stable": "v1", "canary": "v2",
             "split": {"weight": 0, "hash_on": {"header": "x-user-id"}, "fallback": "random"}},
            {"name": ROUTE, "match": {"path_prefix": "/"}, "stable": "v1", "canary": "v2",
             "split": {"weight": 0, "hash_on": {"header": "x-user-id"}, "fallback": "random"},
             "rollout": {"steps": list(STEPS), "interval": "1s", "min_requests": MIN_REQUESTS,
                         "max_error_rate": MAX_ERROR_RATE, "failure_limit": FAILURE_LIMIT,
                         "consecutive_successes": 1}},
        ]
        if self.MAX_P99_LATENCY:
            routes[1]["rollout"]["max_p99_latency"] = self.MAX_P99_LATENCY
        if self.MAX_LATENCY_RATIO:
            routes[1]["rollout"]["max_latency_ratio"] = self.MAX_LATENCY_RATIO
        cfg = harness.base_config(self.listen, self.admin, clusters=clusters, routes=routes,
                                  state_dir=self.state_dir)
        if self.WITH_TOKEN:
            token_file = os.path.join(self.tmp, "admin-token")
            with open(token_file, "w") as f:
                f.write(TOKEN + "\n")
            cfg["admin"]["token_file"] = token_file
        return cfg

    def wait_admin(self):
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy),
                        "admin listener not up; stderr:\n%s" % self.read_proxy_stderr())

    def kill9_and_restart(self):
        old = self.proxy
        old.send_signal(signal.SIGKILL)
        try:
            old.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("proxy did not die on SIGKILL")
        self.assertEqual(old.returncode, -signal.SIGKILL)
        self.start_proxy(self.cfg, self.listen)
        self.wait_admin()

    def load(self, **kw):
        ld = Load(self.listen, **kw).start()
        self.loads.append(ld)
        return ld

    # -- admin --------------------------------------------------------------------------

    def admin_call(self, method, path, body=None, token=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=15)
        try:
            h = dict(headers or {})
            if token is None and self.WITH_TOKEN:
                token = TOKEN
            if token:
                h["Authorization"] = "Bearer " + token
            data = None
            if body is not None:
                data = body if isinstance(body, bytes) else body.encode()
                h.setdefault("Content-Type", "application/json")
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            raw = r.read()
            ctype = r.getheader("content-type", "")
            js = None
            if "json" in ctype and raw:
                js = json.loads(raw)
            return r.status, js, raw
        finally:
            c.close()

    def post(self, path, body=None, token=None, expect=200):
        st, js, raw = self.admin_call("POST", path, body=body, token=token)
        self.assertEqual(st, expect, "POST %s %r -> %d %r" % (path, body, st, raw))
        return js

    def action(self, name, expect=200):
        js = self.post("/routes/%s/rollout/%s" % (ROUTE, name), expect=expect)
        self.assertIsInstance(js, dict, "POST %s: not a JSON object" % name)
        return js

    def set_weight(self, body, route=ROUTE, expect=200):
        return self.post("/routes/%s/weight" % route, body=body, expect=expect)

    def status(self, route=ROUTE):
        st, js, raw = self.admin_call("GET", "/status", token="")
        self.assertEqual(st, 200, raw)
        for r in js["routes"]:
            if r["name"] == route:
                return r
        self.fail("route %s not in /status: %r" % (route, js))

    def rollout(self):
        return self.status()["rollout"]

    def metrics(self):
        st, _, raw = self.admin_call("GET", "/metrics", token="")
        self.assertEqual(st, 200)
        return parse_metrics(raw.decode())

    def transitions(self):
        ms = self.metrics()
        return {s: metric(ms, "grayproxy_rollout_transitions_total", route=ROUTE, to=s) or 0.0
                for s in STATES}

    def assert_state_metrics(self, state, weight_percent, ms=None):
        ms = ms or self.metrics()
        self.assertEqual(metric(ms, "grayproxy_canary_weight_percent", route=ROUTE), weight_percent)
        got = {s: metric(ms, "grayproxy_rollout_state", route=ROUTE, state=s) for s in STATES}
        self.assertEqual(got, {s: (1.0 if s == state else 0.0) for s in STATES})

    def assert_status(self, state, weight_percent):
        st = self.status()
        ro = st["rollout"]
        self.assertEqual((ro["state"], st["weight_percent"], ro["weight_bp"]),
                         (state, weight_percent, int(round(weight_percent * 100))),
                         "rollout: %s" % json.dumps(ro)[:3000])
        return st

    def canary_served(self):
        _, js = harness.http_get_json(self.port_c, "/__stats")
        return js["requests"]

    def wait_rollout(self, pred, timeout, what, load=None):
        """Polls /status every 0.1 s until pred(rollout, route_status); fails with context."""
        seen = []
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.1) + 10):
            st = self.status()
            ro = st["rollout"]
            if not seen or seen[-1] != (ro["state"], ro["weight_bp"]):
                seen.append((ro["state"], ro["weight_bp"]))
            if pred(ro, st):
                return ro, seen
            if time.monotonic() >= deadline:
                break
            self.assert_proxy_alive()
            time.sleep(0.1)
        self.fail("timed out after %ss waiting for %s; states seen %r; load %r; judgements:\n%s"
                  % (timeout, what, seen, load.snapshot() if load else None,
                     summarize(self.rollout().get("judgements", []))))

    def wait_promoted(self):
        """Under load, waits for a promotion with no failed judgement; returns (judgements,
        the passes)."""
        ro, _, js = self.wait_decision(self.load(rate=100, conns=16), 120)
        self.assertEqual(ro["state"], "promoted", summarize(js))
        self.assertFalse([j for j in js if j["verdict"] == "fail"], summarize(js))
        passes = [j for j in js if j["verdict"] == "pass"]
        self.assertTrue(passes, summarize(js))
        return js, passes

    def wait_decision(self, load, timeout):
        """Waits for promoted or rolled_back; returns (rollout, states seen, judgements)."""
        ro, seen = self.wait_rollout(lambda r, s: r["state"] in ("rolled_back", "promoted"),
                                     timeout, "a decision", load=load)
        return ro, seen, ro["judgements"]

    def assert_same_judgements(self, got, want):
        self.assertTrue(approx_equal(got, want), "judgements differ:\n%s\nvs\n%s"
                        % (json.dumps(got)[:4000], json.dumps(want)[:4000]))

    def assert_judgement_numbers(self, j):
        """A judgement carries the measured numbers next to the thresholds."""
        for k in ("time_ms", "verdict", "reason", "step_index", "weight_bp", "window",
                  "canary", "stable", "thresholds", "consecutive_passes",
                  "consecutive_failures", "dispersion", "relative", "absolute", "latency",
                  "canary_breach_p", "stable_breach_p", "requests_to_pass"):
            self.assertIn(k, j)
        for v in ("canary", "stable"):
            for k in ("requests", "errors", "slow", "step_requests", "step_errors",
                      "error_rate"):
                self.assertIn(k, j[v])
        th = j["thresholds"]
        self.assertEqual(th["min_requests"], MIN_REQUESTS)
        self.assertAlmostEqual(th["max_error_rate"], MAX_ERROR_RATE)
        self.assertAlmostEqual(th["max_error_rate_ratio"], 2.0)
        self.assertIn(j["verdict"], ("pass", "fail", "inconclusive", "hold"))
        self.assertGreaterEqual(j["dispersion"], 1)
        c = j["canary"]
        if c["step_requests"] > 0:  # every window with traffic is judged, with its numbers
            self.assertAlmostEqual(c["error_rate"], c["step_errors"] / c["step_requests"], places=9)
            for test in ("relative", "absolute"):
                t = j[test]
                for k in ("evidence", "bar", "pass_evidence", "pass_bound", "pass_factor"):
                    self.assertIsInstance(t[k], (int, float), (test, k))
                self.assertAlmostEqual(t["bar"], math.log(1 / (1 - th["confidence"])), places=9)
            self.assertTrue(0 <= j["canary_breach_p"] <= 1)
        if j["verdict"] == "pass":
            self.assertGreaterEqual(c["step_requests"], MIN_REQUESTS)
            self.assertIn("rules out", j["reason"])


def approx_equal(a, b, rel=1e-12):
    """Equal, floats up to rel (the state file's doubles may come back a few ulps off)."""
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(approx_equal(x, y, rel) for x, y in zip(a, b))
    return a == b


def summarize(judgements):
    return "\n".join(
        "  w=%s win=%s %s canary %s/%s (step %s/%s) stable %s/%s fails=%s passes=%s: %s"
        % (j.get("weight_bp"), j.get("window"), j.get("verdict"),
           j["canary"]["errors"], j["canary"]["requests"], j["canary"]["step_errors"],
           j["canary"]["step_requests"], j["stable"]["errors"], j["stable"]["requests"],
           j.get("consecutive_failures"), j.get("consecutive_passes"), j.get("reason"))
        for j in judgements)


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------

class TestHealthyCanary(RolloutBase):

    def test_climbs_every_step_to_promoted(self):
        # Weight 0 with a rollout starts at the first step.
        st = self.assert_status("progressing", 10.0)
        self.assertEqual(st["rollout"]["step_index"], 0)
        self.assertEqual(st["configured_weight_percent"], 0)
        self.assert_state_metrics("progressing", 10.0)

        ld = self.load(rate=400)
        ro, seen = self.wait_rollout(lambda r, s: r["state"] == "promoted", 90,
                                     "promotion", load=ld)
        # Weights only went up, through the steps, in order.
        weights = [w for _, w in seen]
        self.assertEqual(weights, sorted(weights), seen)
        self.assertTrue(set(weights) <= {1000, 5000, 10000}, seen)
        self.assertTrue(all(s == "progressing" for s, w in seen if w < 10000), seen)
        st = self.assert_status("promoted", 100.0)
        self.assertIn("promoted after", ro["reason"])

        # The judgements explain it: one pass at each step, no failure, numbers included.
        js = ro["judgements"]
        for j in js:
            self.assert_judgement_numbers(j)
        self.assertFalse([j for j in js if j["verdict"] == "fail"], summarize(js))
        passes = [j for j in js if j["verdict"] == "pass"]
        self.assertEqual([j["weight_bp"] for j in passes], [1000, 5000, 10000], summarize(js))
        for j in passes:
            self.assertEqual(j["canary"]["step_errors"], 0)
            self.assertEqual(j["canary"]["error_rate"], 0)
            self.assertEqual(j["consecutive_passes"], 1)
        # At 100% stable gets nothing new; only requests in flight when the weight moved
        # (at most one per keep-alive client) can complete, and count, in the 100% step.
        self.assertLessEqual(passes[-1]["stable"]["step_requests"], ld.conns, summarize(js))
        self.assertIsInstance(passes[0]["stable"]["error_rate"], (int, float))

        # Metrics: weight, state, the one state transition, the last judgement's numbers.
        ms = self.metrics()
        self.assert_state_metrics("promoted", 100.0, ms)
        self.assertEqual(metric(ms, "grayproxy_rollout_transitions_total", route=ROUTE,
                                to="promoted"), 1.0)
        self.assertFalse(metric(ms, "grayproxy_rollout_transitions_total", route=ROUTE,
                                to="rolled_back"))
        self.assertEqual(metric(ms, "grayproxy_rollout_observed", route=ROUTE,
                                check="error_rate"), 0.0)
        self.assertEqual(metric(ms, "grayproxy_rollout_threshold", route=ROUTE,
                                check="error_rate"), MAX_ERROR_RATE)

        # At 100% every request goes to the canary.
        time.sleep(0.5)
        t0 = time.monotonic()
        time.sleep(1.5)
        after = ld.since(t0)
        ld.stop()
        self.assertGreater(len(after), 50, ld.snapshot())
        self.assertEqual({u for _, u, _ in after}, {"canary"}, ld.snapshot())
        self.assertEqual({s for _, _, s in after}, {200})

        # kill -9 and restart: still promoted at 100%.
        self.kill9_and_restart()
        st2 = self.assert_status("promoted", 100.0)
        self.assert_same_judgements(st2["rollout"]["judgements"], ro["judgements"])
        self.assert_state_metrics("promoted", 100.0)


class TestBadCanary(RolloutBase):
    CANARY_FAIL_EVERY = 5  # 20% of the canary's answers are 500

    def test_rolled_back_within_failure_limit_plus_one_windows(self):
        self.assert_status("progressing", 10.0)
        ld = self.load(rate=400)
        ro, seen = self.wait_rollout(lambda r, s: r["state"] == "rolled_back", 60,
                                     "rollback", load=ld)
        t_rolled_back = time.monotonic()
        self.assertTrue(all(w == 1000 for s, w in seen if s == "progressing"),
                        "stepped up a failing canary: %r" % seen)
        st = self.assert_status("rolled_back", 0.0)
        js = ro["judgements"]
        for j in js:
            self.assert_judgement_numbers(j)
        first = next((i for i, j in enumerate(js) if j["canary"]["requests"] > 0), None)
        self.assertIsNotNone(first, "no judgement saw canary traffic:\n" + summarize(js))
        bad = js[first:]
        self.assertLessEqual(len(bad), FAILURE_LIMIT + 1,
                             "rolled back only at window %d after the canary got traffic "
                             "(failure_limit %d):\n%s" % (len(bad), FAILURE_LIMIT, summarize(js)))
        self.assertFalse([j for j in js if j["verdict"] == "pass"], summarize(js))
        last = js[-1]
        self.assertEqual(last["verdict"], "fail", summarize(js))
        self.assertEqual(last["consecutive_failures"], FAILURE_LIMIT, summarize(js))
        self.assertEqual(len([j for j in bad if j["verdict"] == "fail"]), FAILURE_LIMIT,
                         summarize(js))
        self.assertEqual(last["weight_bp"], 1000)
        self.assertGreater(last["canary"]["error_rate"], 0.1)
        # Over the bar of the comparison with stable, and this window alone above the limit.
        self.assertGreaterEqual(last["relative"]["evidence"], last["relative"]["bar"])
        self.assertLess(last["canary_breach_p"], 1 - last["thresholds"]["confidence"])
        self.assertGreater(last["canary"]["step_errors"], 0)
        self.assertEqual(last["stable"]["errors"], 0)
        self.assertIn("rolled back after %d failures" % FAILURE_LIMIT, ro["reason"])
        self.assertEqual(st["rollout"]["step_index"], 0)

        # Metrics.
        ms = self.metrics()
        self.assert_state_metrics("rolled_back", 0.0, ms)
        self.assertEqual(metric(ms, "grayproxy_rollout_transitions_total", route=ROUTE,
                                to="rolled_back"), 1.0)
        obs = metric(ms, "grayproxy_rollout_observed", route=ROUTE, check="error_rate")
        self.assertIsNotNone(obs)
        self.assertAlmostEqual(obs, last["canary"]["error_rate"], places=6)
        self.assertEqual(metric(ms, "grayproxy_rollout_threshold", route=ROUTE,
                                check="error_rate"), MAX_ERROR_RATE)
        c5 = metric(ms, "grayproxy_requests_total", route=ROUTE, version="canary",
                    code_class="5xx")
        self.assertTrue(c5 and c5 > 0, "canary 5xx not counted")

        # Then the canary receives no traffic (after in-flight requests settle).
        wait = t_rolled_back + 0.5 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        served0 = self.canary_served()
        t0 = time.monotonic()
        time.sleep(3.0)  # three intervals under load
        after = ld.since(t0)
        served1 = self.canary_served()
        self.assertGreater(len(after), 100, ld.snapshot())
        self.assertEqual(served1, served0, "canary got %d requests after the rollback"
                         % (served1 - served0))
        self.assertEqual({u for _, u, _ in after}, {"stable"})
        self.assertEqual({s for _, _, s in after}, {200})
        ro2 = self.rollout()
        self.assertEqual(ro2["judgements"], js, "judged after the rollback")
        ld.stop()

        # kill -9 and restart: still rolled back at 0%, the canary still gets nothing.
        self.kill9_and_restart()
        st = self.assert_status("rolled_back", 0.0)
        self.assert_same_judgements(st["rollout"]["judgements"], js)
        self.assertEqual(st["rollout"]["reason"], ro["reason"])
        self.assert_state_metrics("rolled_back", 0.0)
        served0 = self.canary_served()
        ld2 = self.load(rate=300)
        time.sleep(2.5)
        ld2.stop()
        self.assertGreater(ld2.snapshot()["total"], 100, ld2.snapshot())
        self.assertEqual(ld2.snapshot()["by_upstream"], {"stable": ld2.snapshot()["total"]})
        self.assertEqual(self.canary_served(), served0)
        self.assertEqual(self.rollout()["state"], "rolled_back")


class TestSlowCanary(RolloutBase):
    """A canary answering in 300 ms against max_p99_latency 200ms at low traffic (about two
    canary requests a window): every request is over the limit, so it fails however few
    requests a window holds, and is rolled back, never promoted."""
    CANARY_DELAY_MS = 300
    MAX_P99_LATENCY = "200ms"

    def test_rolled_back_never_promoted(self):
        ro, seen, js = self.wait_decision(self.load(rate=20, conns=8), 60)
        self.assertEqual(ro["state"], "rolled_back", summarize(js))
        self.assertTrue(all(w == 1000 for s, w in seen if s == "progressing"), seen)
        self.assertFalse([j for j in js if j["verdict"] == "pass"], summarize(js))
        last = js[-1]
        self.assertEqual(last["verdict"], "fail", summarize(js))
        self.assertIn("slower than max_p99_latency 200ms", last["reason"])
        self.assertLess(last["canary"]["step_requests"], 10 * MIN_REQUESTS, summarize(js))
        self.assertEqual(last["canary"]["slow"], last["canary"]["requests"], summarize(js))
        self.assertAlmostEqual(last["thresholds"]["max_p99_seconds"], 0.2)


class TestCanaryWithinLatencyLimit(RolloutBase):
    """A canary at 0.87x max_p99_latency (174 ms against 200ms) is promoted."""
    CANARY_DELAY_MS = 174
    MAX_P99_LATENCY = "200ms"

    def test_promoted(self):
        js, passes = self.wait_promoted()
        self.assertIn("latency: rules out", passes[-1]["reason"])


class LatencyRatioBase(RolloutBase):
    """Stable answering in 20 ms, the canary judged against it with max_latency_ratio 1.5."""
    STABLE_FAIL_EVERY = 0
    STABLE_DELAY_MS = 20
    MAX_LATENCY_RATIO = 1.5


class TestCanarySlowerThanStable(LatencyRatioBase):
    """A canary at 3x stable's latency (60 ms against 20 ms): the rank test on the two versions'
    latency sketches fails it; rolled back, never promoted."""
    CANARY_DELAY_MS = 60

    def test_rolled_back_never_promoted(self):
        ro, seen, js = self.wait_decision(self.load(rate=100, conns=16), 60)
        self.assertEqual(ro["state"], "rolled_back", summarize(js))
        self.assertTrue(all(w == 1000 for s, w in seen if s == "progressing"), seen)
        self.assertFalse([j for j in js if j["verdict"] == "pass"], summarize(js))
        last = js[-1]
        self.assertEqual(last["verdict"], "fail", summarize(js))
        self.assertIn("canary's latency above max_latency_ratio 1.5x stable's", last["reason"])
        # Every canary request / 1.5 (>= 40 ms) is slower than every stable one (~20 ms).
        self.assertGreater(last["rank_probability"], 0.9, summarize(js))
        self.assertEqual(last["thresholds"]["max_latency_ratio"], 1.5)
        self.assertGreaterEqual(last["latency_ratio"]["evidence"], last["latency_ratio"]["bar"])
        # The window's p99 is read from the sketch: within 2% of what the upstream took.
        self.assertGreaterEqual(last["canary"]["p99_seconds"], 0.060 * 0.98, summarize(js))
        ms = self.metrics()
        self.assertEqual(metric(ms, "grayproxy_rollout_threshold", route=ROUTE,
                                check="latency_ratio"), 1.5)
        self.assertGreater(metric(ms, "grayproxy_rollout_observed", route=ROUTE,
                                  check="rank_probability"), 0.9)


class TestCanaryAsFastAsStable(LatencyRatioBase):
    """A canary as fast as stable (both 20 ms): promoted, every step passing the rank test."""
    CANARY_DELAY_MS = 20

    def test_promoted(self):
        js, passes = self.wait_promoted()
        self.assertIn("latency against stable: rules out 1.5x stable's latency",
                      passes[-1]["reason"])
        # Each step begins with a warm-up window that is not judged.
        self.assertTrue([j for j in js if j.get("warmup")], summarize(js))
        self.assertFalse([j for j in js if j.get("warmup") and j["verdict"] == "pass"],
                         summarize(js))


class TestSharedOutage(RolloutBase):
    """Both versions failing together (every 20th request: 5% against max_error_rate 1%) is not
    the canary's fault: the rollout holds, neither passing nor failing, and resumes to
    promotion once stable recovers."""
    CANARY_FAIL_EVERY = 20
    STABLE_FAIL_EVERY = 20

    def set_fail_every(self, port, n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("GET", "/__fail_every/%d" % n)
            self.assertEqual(c.getresponse().status, 200)
        finally:
            c.close()

    def test_held_then_resumes(self):
        ld = self.load(rate=400)
        ro, _ = self.wait_rollout(
            lambda r, s: len([j for j in r.get("judgements", []) if j["verdict"] == "hold"]) >= 4,
            60, "four holds", load=ld)
        js = ro["judgements"]
        self.assertEqual(ro["state"], "progressing", summarize(js))
        self.assertEqual(ro["weight_bp"], 1000, summarize(js))
        self.assertFalse([j for j in js if j["verdict"] in ("pass", "fail")], summarize(js))
        hold = [j for j in js if j["verdict"] == "hold"][-1]
        self.assertIn("holding: stable itself above max_error_rate", hold["reason"])
        self.assertGreater(hold["stable"]["errors"], 0)
        self.assertGreater(hold["canary"]["errors"] + hold["stable"]["errors"], 0)
        self.assertGreaterEqual(ro["holds"], 4)
        self.assertGreaterEqual(metric(self.metrics(), "grayproxy_rollout_judgements_total",
                                       route=ROUTE, verdict="hold"), 4)

        self.set_fail_every(self.port_s, 0)  # the shared dependency is back
        self.set_fail_every(self.port_c, 0)
        ro, _, js = self.wait_decision(ld, 90)
        self.assertEqual(ro["state"], "promoted", summarize(js))


class TestRestart(RolloutBase):

    def test_kill9_resumes_weight_state_and_evidence(self):
        # Reach a weight the configuration would not give (step 2 of 3), without traffic so
        # that nothing moves by itself, then kill -9.
        self.assert_status("progressing", 10.0)
        js = self.set_weight('{"weight": 50}')
        self.assertEqual((js["state"], js["weight_percent"]), ("progressing", 50.0))
        time.sleep(2.5)  # a couple of (inconclusive, empty) windows
        before = self.assert_status("progressing", 50.0)
        self.assertEqual(before["rollout"]["step_index"], 1)
        self.kill9_and_restart()
        after = self.assert_status("progressing", 50.0)
        self.assertEqual(after["rollout"]["step_index"], 1)
        self.assertEqual(after["rollout"]["since_ms"], before["rollout"]["since_ms"])
        self.assertEqual(after["rollout"]["reason"], before["rollout"]["reason"])
        self.assert_same_judgements(
            after["rollout"]["judgements"][:len(before["rollout"]["judgements"])],
            before["rollout"]["judgements"])
        self.assert_state_metrics("progressing", 50.0)
        with open(os.path.join(self.state_dir, "rollout-state.json")) as f:
            saved = json.load(f)
        self.assertEqual(saved["routes"][ROUTE]["weight_bp"], 5000)
        self.assertEqual(saved["routes"][ROUTE]["rollout"]["state"], "progressing")

        # It continues from 50%, not from the first step.
        ld = self.load(rate=400)
        ro, seen = self.wait_rollout(lambda r, s: r["state"] == "promoted", 60,
                                     "promotion after restart", load=ld)
        ld.stop()
        self.assertTrue(all(w >= 5000 for _, w in seen), seen)
        new = [j for j in ro["judgements"] if j["time_ms"] > before["rollout"]["since_ms"]
               and j["verdict"] == "pass"]
        self.assertEqual([j["weight_bp"] for j in new], [5000, 10000], summarize(ro["judgements"]))

        # Paused survives a kill -9 too, and resume works after it.
        js = self.set_weight("25")
        self.assertEqual((js["state"], js["weight_percent"]), ("idle", 25.0))
        self.action("resume")
        self.action("pause")
        self.kill9_and_restart()
        self.assert_status("paused", 25.0)
        self.assert_state_metrics("paused", 25.0)
        js = self.action("resume")
        self.assertEqual((js["state"], js["weight_percent"]), ("progressing", 25.0))
        self.assert_status("progressing", 25.0)


class TestAdminActions(RolloutBase):
    WITH_TOKEN = True

    def test_token_guards_writes(self):
        self.assert_status("progressing", 10.0)
        path = "/routes/%s/rollout/abort" % ROUTE
        for hdrs in ({}, {"Authorization": "Bearer wrong-token"},
                     {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN},
                     {"Authorization": "Bearer " + TOKEN + "x"}):
            st, js, raw = self.admin_call("POST", path, token="", headers=hdrs)
            self.assertEqual(st, 401, "%r -> %d %r" % (hdrs, st, raw))
            self.assertIsInstance(js, dict, raw)
        st, js, raw = self.admin_call("POST", "/routes/%s/weight" % ROUTE, body='{"weight": 40}',
                                      token="")
        self.assertEqual(st, 401, raw)
        st, js, raw = self.admin_call("POST", "/reload", token="")
        self.assertEqual(st, 401, raw)
        # Nothing changed; reads need no token.
        self.assert_status("progressing", 10.0)
        for p in ("/status", "/metrics", "/healthz", "/ready"):
            st, _, raw = self.admin_call("GET", p, token="")
            self.assertEqual(st, 200, "%s -> %d" % (p, st))
        self.assertEqual(self.transitions()["rolled_back"], 0.0)
        # With the token the write goes through.
        js = self.action("abort")
        self.assertEqual(js, {"route": ROUTE, "state": "rolled_back", "weight_percent": 0})
        self.assert_status("rolled_back", 0.0)

    def test_errors(self):
        # Unknown route: 404 JSON.
        for p in ("/routes/nosuch/rollout/pause", "/routes/nosuch/weight"):
            st, js, raw = self.admin_call("POST", p, body='{"weight": 5}')
            self.assertEqual(st, 404, "%s -> %d %r" % (p, st, raw))
            self.assertIsInstance(js, dict, raw)
            self.assertIn("error", js)
        # Route without a rollout policy: actions 409, weight works.
        for a in ("pause", "resume", "promote", "abort"):
            st, js, raw = self.admin_call("POST", "/routes/plain/rollout/%s" % a)
            self.assertEqual(st, 409, "%s -> %d %r" % (a, st, raw))
            self.assertIn("error", js)
        js = self.set_weight('{"weight": 33}', route="plain")
        self.assertEqual(js["weight_percent"], 33.0)
        self.assertEqual(self.status("plain")["weight_percent"], 33.0)
        # Bad weights: 400, nothing changes.
        for body in ('{"weight": 150}', "101", "abc", '{"weight": "x"}', '{"w": 5}', "-5",
                     "12.345", ""):
            st, js, raw = self.admin_call("POST", "/routes/%s/weight" % ROUTE, body=body)
            self.assertEqual(st, 400, "%r -> %d %r" % (body, st, raw))
        self.assert_status("progressing", 10.0)
        # Not allowed in this state: 409, nothing changes.
        self.action("promote")
        self.action("pause", expect=409)
        self.action("resume", expect=409)
        self.assert_status("promoted", 100.0)

    def test_pause_resume_promote_abort_weight(self):
        self.assert_status("progressing", 10.0)
        t = self.transitions()

        def expect_transition(to):
            nonlocal t
            now = self.transitions()
            delta = {s: now[s] - t[s] for s in STATES}
            self.assertEqual(delta, {s: (1.0 if s == to else 0.0) for s in STATES},
                             "transitions_total deltas, expected one to %s" % to)
            t = now

        # pause: the weight holds under traffic, nothing is judged.
        js = self.action("pause")
        self.assertEqual((js["route"], js["state"], js["weight_percent"]), (ROUTE, "paused", 10.0))
        expect_transition("paused")
        self.assert_state_metrics("paused", 10.0)
        n_judged = len(self.rollout()["judgements"])
        served0 = self.canary_served()
        ld = self.load(rate=400)
        deadline = time.monotonic() + 4.5  # four intervals and a half
        for _ in range(100):
            if time.monotonic() >= deadline:
                break
            self.assert_status("paused", 10.0)
            time.sleep(0.2)
        ro = self.rollout()
        self.assertEqual(len(ro["judgements"]), n_judged, summarize(ro["judgements"]))
        self.assertGreater(self.canary_served() - served0, 4 * MIN_REQUESTS,
                           "the paused canary should keep its 10%% (%r)" % ld.snapshot())
        self.assertEqual(self.transitions(), t)

        # resume: judging continues from 10% and steps up.
        js = self.action("resume")
        self.assertEqual((js["state"], js["weight_percent"]), ("progressing", 10.0))
        expect_transition("progressing")
        t_resume = self.rollout()["since_ms"]
        ro, seen = self.wait_rollout(lambda r, s: r["weight_bp"] >= 5000, 60,
                                     "a step up after resume", load=ld)
        ld.stop()
        passes = [j for j in ro["judgements"] if j["time_ms"] >= t_resume and j["verdict"] == "pass"]
        self.assertTrue(passes and passes[0]["weight_bp"] == 1000, summarize(ro["judgements"]))
        self.assert_judgement_numbers(passes[0])

        # Whatever the race with the next tick left (50% progressing or promoted), abort and
        # start over from a deterministic state without traffic. First let the ticks judge
        # the last window that had traffic, so nothing moves by itself any more.
        time.sleep(2.5)
        t = self.transitions()
        js = self.action("abort")
        self.assertEqual((js["state"], js["weight_percent"]), ("rolled_back", 0))
        expect_transition("rolled_back")
        self.assert_state_metrics("rolled_back", 0.0)
        js = self.action("abort")  # again: a no-op
        self.assertEqual(js["state"], "rolled_back")
        self.assertEqual(self.transitions(), t)

        # set weight after a finished rollout: idle at that weight.
        js = self.set_weight('{"weight": 30}')
        self.assertEqual((js["state"], js["weight_percent"]), ("idle", 30.0))
        expect_transition("idle")
        self.assert_status("idle", 30.0)
        self.assert_state_metrics("idle", 30.0)
        js = self.action("resume")
        self.assertEqual((js["state"], js["weight_percent"]), ("progressing", 30.0))
        expect_transition("progressing")
        self.assertEqual(self.rollout()["step_index"], 1)

        # promote from paused.
        self.action("pause")
        expect_transition("paused")
        js = self.action("promote")
        self.assertEqual((js["state"], js["weight_percent"]), ("promoted", 100.0))
        expect_transition("promoted")
        st = self.assert_status("promoted", 100.0)
        self.assertIn("promoted by operator", st["rollout"]["reason"])
        self.assert_state_metrics("promoted", 100.0)

        # abort from promoted: 0% at once.
        js = self.action("abort")
        self.assertEqual((js["state"], js["weight_percent"]), ("rolled_back", 0))
        expect_transition("rolled_back")
        self.assert_status("rolled_back", 0.0)

        # The weight body forms: JSON number, JSON string, bare number.
        js = self.set_weight('{"weight": 12.5}')
        self.assertEqual((js["state"], js["weight_percent"]), ("idle", 12.5))
        expect_transition("idle")
        js = self.set_weight('{"weight": "7.25"}')
        self.assertEqual(js["weight_percent"], 7.25)
        js = self.set_weight("12.5")
        self.assertEqual(js["weight_percent"], 12.5)
        js = self.set_weight("7.25\n")
        self.assertEqual(js["weight_percent"], 7.25)
        self.assertEqual(self.transitions(), t)
        st = self.assert_status("idle", 7.25)
        self.assertEqual(self.metrics().get(("grayproxy_canary_weight_percent",
                                             frozenset({("route", ROUTE)}))), 7.25)
        with open(os.path.join(self.state_dir, "rollout-state.json")) as f:
            self.assertEqual(json.load(f)["routes"][ROUTE]["weight_bp"], 725)

        # resume from idle between steps: judged as step 1, moves up to 10% on a pass.
        js = self.action("resume")
        self.assertEqual((js["state"], js["weight_percent"]), ("progressing", 7.25))
        expect_transition("progressing")
        self.assertEqual(self.rollout()["step_index"], 0)
        t_idle_resume = self.rollout()["since_ms"]
        ld = self.load(rate=500)
        ro, seen = self.wait_rollout(lambda r, s: r["weight_bp"] >= 1000, 60,
                                     "7.25% -> 10%", load=ld)
        self.assertEqual(seen[0], ("progressing", 725), seen)
        # The pass at 7.25% moved it to the step it was judged as (10%), not past it.
        later = [j["weight_bp"] for j in ro["judgements"] if j["time_ms"] >= t_idle_resume]
        path = later + [ro["weight_bp"]]
        self.assertEqual(path[0], 725, summarize(ro["judgements"]))
        self.assertEqual(sorted(path), path, summarize(ro["judgements"]))
        self.assertEqual([w for w in path if w != 725][0], 1000, summarize(ro["judgements"]))
        pass725 = [j for j in ro["judgements"] if j["weight_bp"] == 725 and j["verdict"] == "pass"]
        self.assertEqual(len(pass725), 1, summarize(ro["judgements"]))

        # abort under traffic: 0% at once, the canary gets nothing more.
        js = self.action("abort")
        self.assertEqual((js["state"], js["weight_percent"]), ("rolled_back", 0))
        time.sleep(0.5)
        served0 = self.canary_served()
        t0 = time.monotonic()
        time.sleep(2.0)
        after = ld.since(t0)
        ld.stop()
        self.assertGreater(len(after), 100, ld.snapshot())
        self.assertEqual(self.canary_served(), served0)
        self.assertEqual({u for _, u, _ in after}, {"stable"})


class TestCorruptStateFile(RolloutBase):

    def setUp(self):
        # The corrupt file must be there before the proxy starts: write it, then start.
        harness.ProxyTestCase.setUp(self)
        self.loads = []
        self.garbage = b'{"version": 1, "routes": {"shop": {"weight_bp": 5000, '  # truncated
        with open(os.path.join(self.state_dir, "rollout-state.json"), "wb") as f:
            f.write(self.garbage)
        _, self.port_s = self.start_upstream("stable")
        self.canary_proc, self.port_c = self.start_canary("canary", 0)
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        self.cfg = self.make_config()
        self.cfg["routes"][0]["split"]["weight"] = 20  # plain route: static weight
        self.start_proxy(self.cfg, self.listen)
        self.wait_admin()

    def test_corrupt_file_moved_aside_and_counted(self):
        path = os.path.join(self.state_dir, "rollout-state.json")
        # Started from the configuration.
        st = self.assert_status("progressing", 10.0)
        self.assertEqual(st["rollout"]["step_index"], 0)
        self.assertEqual(self.status("plain")["weight_percent"], 20.0)
        # The file was moved aside, byte for byte, and counted.
        with open(path + ".corrupt", "rb") as f:
            self.assertEqual(f.read(), self.garbage)
        ms = self.metrics()
        self.assertEqual(metric(ms, "grayproxy_state_load_failures_total"), 1.0)
        self.assertIn("state file", self.read_proxy_stderr())
        # A fresh, valid state file replaced it.
        with open(path) as f:
            saved = json.load(f)
        self.assertEqual(saved["routes"][ROUTE]["weight_bp"], 1000)
        # That one loads after a kill -9, with nothing counted.
        self.set_weight("50")
        self.kill9_and_restart()
        self.assert_status("progressing", 50.0)
        self.assertEqual(metric(self.metrics(), "grayproxy_state_load_failures_total"), 0.0)
        with open(path + ".corrupt", "rb") as f:
            self.assertEqual(f.read(), self.garbage)


if __name__ == "__main__":
    if "--serve" in sys.argv[1:]:
        serve_main(sys.argv[1:])
    else:
        unittest.main()
