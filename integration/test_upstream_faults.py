#!/usr/bin/python3
"""End-to-end tests of upstream faults: route retries (connect failure, reset, 503), passive
outlier detection (ejection, the cap, the return), per-cluster circuit breakers (overflow)
and canary_unavailable: fallback_to_stable. Real binary ($GRAYPROXY_BIN), real upstreams
(upstream.py, one of them misbehaving through --default-query), raw-socket clients.

Every wait is bounded in time and in iterations."""

import http.client
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RawConn, request_bytes  # noqa: E402


class FaultsBase(harness.ProxyTestCase):
    """A healthy upstream "good", and helpers; each test writes its own clusters and routes."""

    def setUp(self):
        super().setUp()
        self.good, self.good_port = self.start_upstream("good")
        self.listen = harness.free_port()
        self.admin = harness.free_port()

    def start(self, clusters, routes, **overrides):
        # The catch-all route proves after each test that the proxy still serves normally.
        clusters = clusters + [{"name": "healthy", "endpoints": ["127.0.0.1:%d" % self.good_port]}]
        routes = routes + [{"name": "ok", "match": {"path_prefix": "/"}, "stable": "healthy"}]
        cfg = harness.base_config(self.listen, self.admin, clusters=clusters, routes=routes,
                                  state_dir=self.state_dir, **overrides)
        self.start_proxy(cfg, self.listen)

    def get(self, path, headers=(), method="GET", body=b""):
        with RawConn(self.listen, timeout=15) as c:
            c.send(request_bytes(method, path, headers=headers, body=body))
            return c.read_response(method)

    def status(self):
        st, js = harness.http_get_json(self.admin, "/status")
        self.assertEqual(st, 200)
        return js

    def cluster_status(self, name):
        for c in self.status()["clusters"]:
            if c["name"] == name:
                return c
        self.fail("cluster %s not in /status" % name)

    def endpoint_status(self, cluster, port):
        for e in self.cluster_status(cluster)["endpoint_health"]:
            if e["endpoint"] == "127.0.0.1:%d" % port:
                return e
        self.fail("endpoint %d of %s not in /status" % (port, cluster))

    def served(self, port):
        return harness.upstream_stats(port)["requests"]

    def assert_serves_normally(self):
        self.assert_proxy_alive()
        r = self.get("/fine")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["name"], "good")


class Retries(FaultsBase):
    # No ejection in these tests: every request meets the faulty endpoint as often as the
    # round robin sends it there.
    NO_EJECTION = {"consecutive_failures": 1000}

    def test_connect_failure_is_retried_on_the_other_endpoint(self):
        dead = harness.free_port()
        self.start([{"name": "pair", "endpoints": ["127.0.0.1:%d" % dead,
                                                   "127.0.0.1:%d" % self.good_port],
                     "outlier_detection": self.NO_EJECTION}],
                   [{"name": "r", "match": {"path_prefix": "/r"}, "stable": "pair",
                     "retries": {"attempts": 1, "on": ["connect-failure"]}}])
        # Six connections over two workers: a worker with two of them starts one at the
        # dead endpoint (round robin), so at least one request needs the retry.
        for i in range(6):
            r = self.get("/r/%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["name"], "good")
        connect_errors = self.metric("grayproxy_upstream_errors_total", route="r",
                                     version="stable", reason="connect")
        self.assertGreaterEqual(connect_errors, 1)
        # Every failed connection was followed by exactly one retry.
        self.assertEqual(self.metric("grayproxy_upstream_retries_total", route="r",
                                     version="stable"), connect_errors)
        self.assertEqual(self.metric("grayproxy_requests_total", route="r", version="stable",
                                     code_class="2xx"), 6)
        self.assertEqual(self.metric("grayproxy_requests_total", route="r", version="stable",
                                     code_class="5xx"), 0)
        self.assert_serves_normally()

    def test_reset_and_503_are_retried_for_idempotent_requests_only(self):
        _, rst_port = self.start_upstream("rst", args=["--default-query", "close=rst"])
        _, u503_port = self.start_upstream("u503", args=["--default-query", "status=503"])
        on = ["connect-failure", "reset", "503"]
        self.start([{"name": "rst", "endpoints": ["127.0.0.1:%d" % rst_port,
                                                  "127.0.0.1:%d" % self.good_port],
                     "outlier_detection": self.NO_EJECTION},
                    {"name": "u503", "endpoints": ["127.0.0.1:%d" % u503_port,
                                                   "127.0.0.1:%d" % self.good_port],
                     "outlier_detection": self.NO_EJECTION}],
                   [{"name": "rst", "match": {"path_prefix": "/rst"}, "stable": "rst",
                     "retries": {"attempts": 1, "on": on}},
                    {"name": "u503", "match": {"path_prefix": "/u503"}, "stable": "u503",
                     "retries": {"attempts": 1, "on": on}}])
        for prefix, port in (("/rst", rst_port), ("/u503", u503_port)):
            bad_before, good_before = self.served(port), self.served(self.good_port)
            for i in range(6):
                r = self.get("%s/get%d" % (prefix, i))
                self.assertEqual(r.status, 200, (prefix, r))
                self.assertEqual(r.json()["name"], "good")
            # Every GET was answered by good; the faulty endpoint saw some of them first.
            self.assertEqual(self.served(self.good_port) - good_before, 6)
            retried = self.served(port) - bad_before
            self.assertGreaterEqual(retried, 1, prefix)

            # POST with a body is never sent twice: what met the faulty endpoint fails.
            bad_before, good_before = self.served(port), self.served(self.good_port)
            codes = [self.get("%s/post%d" % (prefix, i), method="POST", body=b"x" * 10).status
                     for i in range(6)]
            bad = self.served(port) - bad_before
            good = self.served(self.good_port) - good_before
            self.assertEqual(bad + good, 6, (prefix, codes))
            self.assertGreaterEqual(bad, 1, (prefix, codes))
            self.assertEqual(codes.count(200), good, (prefix, codes))
            self.assertEqual(codes.count(502 if prefix == "/rst" else 503), bad, (prefix, codes))
            # One retry per GET the faulty endpoint saw, none for the POSTs.
            self.assertEqual(self.metric("grayproxy_upstream_retries_total", route=prefix[1:],
                                         version="stable"), retried, prefix)
        self.assertGreaterEqual(self.metric("grayproxy_upstream_errors_total", route="rst",
                                            version="stable", reason="reset"), 2)
        self.assert_serves_normally()


class OutlierDetection(FaultsBase):
    def test_ejection_status_metrics_and_return(self):
        _, bad_port = self.start_upstream("bad", args=["--default-query", "status=503"])
        _, bad2_port = self.start_upstream("bad2", args=["--default-query", "status=503"])
        ejection_s = 2
        self.start([{"name": "mixed", "endpoints": ["127.0.0.1:%d" % bad_port,
                                                    "127.0.0.1:%d" % self.good_port],
                     "outlier_detection": {"consecutive_failures": 2,
                                           "ejection_time": "%ds" % ejection_s,
                                           "max_ejection_percent": 50}},
                    {"name": "allbad", "endpoints": ["127.0.0.1:%d" % bad_port,
                                                     "127.0.0.1:%d" % bad2_port],
                     "outlier_detection": {"consecutive_failures": 1, "ejection_time": "30s",
                                           "max_ejection_percent": 50}}],
                   [{"name": "mixed", "match": {"path_prefix": "/mixed"}, "stable": "mixed",
                     "retries": {"attempts": 0}},
                    {"name": "allbad", "match": {"path_prefix": "/allbad"}, "stable": "allbad"}])
        bad_ep = "127.0.0.1:%d" % bad_port
        self.assertEqual(self.endpoint_status("mixed", bad_port)["state"], "healthy")

        # Two 503s in a row from bad eject it (at most 20 requests to get there).
        for i in range(20):
            self.get("/mixed/%d" % i)
            if self.endpoint_status("mixed", bad_port)["state"] == "ejected":
                break
        st = self.endpoint_status("mixed", bad_port)
        self.assertEqual(st["state"], "ejected", st)
        self.assertEqual(st["times_ejected"], 1)
        self.assertGreater(st["ejection_remaining_ms"], 0)
        self.assertLessEqual(st["ejection_remaining_ms"], ejection_s * 1000)
        self.assertIsNotNone(st["ejected_until_unix_ms"])
        self.assertEqual(self.endpoint_status("mixed", self.good_port)["state"], "healthy")
        self.assertEqual(self.metric("grayproxy_upstream_endpoint_ejected", cluster="mixed",
                                     endpoint=bad_ep), 1)
        self.assertEqual(self.metric("grayproxy_upstream_ejections_total", cluster="mixed",
                                     endpoint=bad_ep), 1)
        self.assertIn("upstream endpoint ejected", self.read_proxy_stderr())

        # A reload keeps the state of an endpoint that stays configured.
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        try:
            c.request("POST", "/reload")
            r = c.getresponse()
            self.assertEqual(r.status, 200, r.read())
        finally:
            c.close()
        st = self.endpoint_status("mixed", bad_port)
        self.assertEqual((st["state"], st["times_ejected"]), ("ejected", 1), st)

        # While it is out, requests go to good only (checked while /status still says so).
        bad_before = self.served(bad_port)
        for i in range(6):
            r = self.get("/mixed/out%d" % i)
            self.assertEqual(r.status, 200, r)
        still_out = self.endpoint_status("mixed", bad_port)["state"] == "ejected"
        if still_out:
            self.assertEqual(self.served(bad_port), bad_before)

        # After ejection_time it returns and is tried again.
        self.assertTrue(harness.wait_until(
            lambda: self.endpoint_status("mixed", bad_port)["state"] == "healthy",
            timeout=ejection_s + 3, interval=0.1), self.endpoint_status("mixed", bad_port))
        self.assertEqual(self.metric("grayproxy_upstream_endpoint_ejected", cluster="mixed",
                                     endpoint=bad_ep), 0)
        bad_before = self.served(bad_port)
        codes = [self.get("/mixed/back%d" % i).status for i in range(6)]
        self.assertIn(503, codes)
        self.assertGreaterEqual(self.served(bad_port) - bad_before, 1)

        # The cap: both endpoints of allbad fail, only one of two (50%) is ever ejected.
        codes = [self.get("/allbad/%d" % i).status for i in range(8)]
        self.assertTrue(all(c == 503 for c in codes), codes)
        states = [e["state"] for e in self.cluster_status("allbad")["endpoint_health"]]
        self.assertEqual(sorted(states), ["ejected", "healthy"], states)
        self.assert_serves_normally()


class CircuitBreaker(FaultsBase):
    def test_overflow_answers_503_at_once(self):
        _, slow_port = self.start_upstream("slow")
        self.start([{"name": "slow", "endpoints": ["127.0.0.1:%d" % slow_port],
                     "limits": {"max_active_requests": 2}}],
                   [{"name": "slow", "match": {"path_prefix": "/slow"}, "stable": "slow"}],
                   timeouts={"request_header": "2s", "idle": "5s", "upstream_connect": "1s",
                             "upstream_response": "10s", "drain": "2s"})
        results = []

        def hold():
            results.append(self.get("/slow/hold?delay_ms=2500").status)

        threads = [threading.Thread(target=hold, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        self.assertTrue(harness.wait_until(
            lambda: self.cluster_status("slow")["active_requests"] == 2, timeout=5),
            self.cluster_status("slow"))
        self.assertEqual(self.cluster_status("slow")["limits"]["max_active_requests"], 2)
        t0 = time.monotonic()
        r = self.get("/slow/third")
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 503, r)
        self.assertLess(elapsed, 1.5)  # not queued behind the slow ones
        self.assertEqual(self.metric("grayproxy_upstream_errors_total", route="slow",
                                     version="stable", reason="overflow"), 1)
        self.assertIn("cluster overflow (max_active_requests)", self.read_proxy_stderr())
        for t in threads:
            t.join(timeout=10)
        self.assertEqual(results, [200, 200])
        self.assertTrue(harness.wait_until(
            lambda: self.cluster_status("slow")["active_requests"] == 0, timeout=5))
        r = self.get("/slow/after")
        self.assertEqual(r.status, 200, r)
        self.assert_serves_normally()


    def test_pending_overflow_while_a_connect_hangs(self):
        # A listener that never accepts, its accept queue full: Linux drops further SYNs,
        # so the proxy's connect to it hangs until upstream_connect (a real hanging
        # connect on loopback, no firewall needed).
        hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(hole.close)
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        hole_port = hole.getsockname()[1]
        fillers = []
        for _ in range(3):  # the queue holds backlog + 1; stop at the first that hangs
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(f.close)
            f.settimeout(0.5)
            try:
                f.connect(("127.0.0.1", hole_port))
                fillers.append(f)
            except socket.timeout:
                break
        else:
            self.fail("the listener kept accepting into its queue: no hanging connect")
        self.start([{"name": "hole", "endpoints": ["127.0.0.1:%d" % hole_port],
                     "limits": {"max_pending_requests": 1}}],
                   [{"name": "hole", "match": {"path_prefix": "/hole"}, "stable": "hole"}],
                   timeouts={"request_header": "2s", "idle": "5s", "upstream_connect": "3s",
                             "upstream_response": "10s", "drain": "2s"})
        results = []

        def hang():
            results.append(self.get("/hole/first").status)

        t = threading.Thread(target=hang, daemon=True)
        t.start()
        self.assertTrue(harness.wait_until(
            lambda: self.cluster_status("hole")["pending_requests"] == 1, timeout=5),
            self.cluster_status("hole"))
        t0 = time.monotonic()
        r = self.get("/hole/second")
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 503, r)
        self.assertLess(elapsed, 1.5)  # refused at once, not queued behind the connect
        self.assertEqual(self.metric("grayproxy_upstream_errors_total", route="hole",
                                     version="stable", reason="overflow"), 1)
        self.assertIn("cluster overflow (max_pending_requests)", self.read_proxy_stderr())
        t.join(timeout=10)
        self.assertEqual(results, [504])  # the hanging connect timed out
        self.assertEqual(self.metric("grayproxy_upstream_errors_total", route="hole",
                                     version="stable", reason="timeout"), 1)
        self.assertEqual(self.cluster_status("hole")["pending_requests"], 0)
        self.assert_serves_normally()


class CanaryFallback(FaultsBase):
    def test_fallback_to_stable_counts_the_canary_error(self):
        dead = harness.free_port()
        split = {"weight": 50, "hash_on": {"header": "x-user-id"}, "expose_version": True,
                 "overrides": [{"header": "x-canary", "value": "always", "to": "canary"}]}
        self.start([{"name": "stable", "endpoints": ["127.0.0.1:%d" % self.good_port]},
                    {"name": "canary", "endpoints": ["127.0.0.1:%d" % dead]}],
                   [{"name": "fb", "match": {"path_prefix": "/fb"}, "stable": "stable",
                     "canary": "canary",
                     "split": dict(split, canary_unavailable="fallback_to_stable"),
                     "rollout": {"steps": [50, 100], "interval": "1s", "min_requests": 3,
                                 "max_error_rate": 0.01, "failure_limit": 1}},
                    {"name": "nofb", "match": {"path_prefix": "/nofb"}, "stable": "stable",
                     "canary": "canary", "split": split}])
        canary = [("x-canary", "always")]
        n = 4
        for i in range(n):
            r = self.get("/fb/%d" % i, headers=canary)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["name"], "good")
            self.assertEqual(r.json()["headers"]["x-gray-version"], "stable")
            self.assertEqual(r.get("x-gray-version"), "stable")
        m = self.metrics()

        def val(name, **labels):
            return m.get((name, frozenset(labels.items())), 0.0)
        # Each request: one canary 5xx (what the judge reads) and one stable 2xx.
        self.assertEqual(val("grayproxy_requests_total", route="fb", version="canary",
                             code_class="5xx"), n)
        self.assertEqual(val("grayproxy_requests_total", route="fb", version="stable",
                             code_class="2xx"), n)
        errors = sum(val("grayproxy_upstream_errors_total", route="fb", version="canary",
                         reason=reason) for reason in ("connect", "no_endpoint"))
        self.assertEqual(errors, n)
        self.assertGreaterEqual(val("grayproxy_upstream_errors_total", route="fb",
                                    version="canary", reason="connect"), 1)
        self.assertIn("canary unavailable, falling back to stable", self.read_proxy_stderr())

        # Without the fallback the client gets the error.
        r = self.get("/nofb/x", headers=canary)
        self.assertIn(r.status, (502, 503), r)

        # The rollout judge sees the canary failing and rolls back (bounded: 10 s).
        def rolled_back():
            self.get("/fb/more", headers=canary)
            for route in self.status()["routes"]:
                if route["name"] == "fb":
                    return route["rollout"]["state"] == "rolled_back"
            return False
        self.assertTrue(harness.wait_until(rolled_back, timeout=10, interval=0.2),
                        [r for r in self.status()["routes"] if r["name"] == "fb"])
        self.assert_serves_normally()


if __name__ == "__main__":
    unittest.main(verbosity=2)
