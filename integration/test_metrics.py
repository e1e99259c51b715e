#!/usr/bin/python3
"""End-to-end tests of the admin listener's /metrics (docs/design.md "Metrics", "Admin API").

A known mix of requests goes through the proxy (keys chosen so each request's version is
known from the cohort rule, upstream statuses 404/503, upstream resets, garbage, a timeout,
a dead endpoint, unrouted paths); the exposition text is parsed here and every counter
compared exactly. promtool checks the page; a real Prometheus scrapes it; /metrics is
scraped 1,000 times under load.
"""

import gzip
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

import xxhash

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RawConn, request_bytes  # noqa: E402

HOST = "example.test"
CODE_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"]
REASONS = ["connect", "timeout", "reset", "protocol", "no_endpoint", "overflow"]
VERSIONS = ["stable", "canary"]
SHOP_WEIGHT = 30


def expected_version(key, salt, percent):
    seed = xxhash.xxh3_64_intdigest(salt.encode())
    b = xxhash.xxh3_64_intdigest(key.encode(), seed=seed) % 10000
    return "canary" if b < int(round(percent * 100)) else "stable"


def keys_for(salt, percent, version, n, prefix="k"):
    out = []
    for i in range(100000):
        k = "%s-%d" % (prefix, i)
        if expected_version(k, salt, percent) == version:
            out.append(k)
            if len(out) == n:
                return out
    raise AssertionError("not enough keys")


# ---------------------------------------------------------------------------------------
# Prometheus text format 0.0.4, parsed independently of the proxy
# ---------------------------------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$" % _NAME)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(v):
    out = []
    i = 0
    while i < len(v):
        c = v[i]
        if c == "\\" and i + 1 < len(v):
            n = v[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(n, "\\" + n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _parse_value(s):
    if s in ("+Inf", "Inf"):
        return float("inf")
    if s == "-Inf":
        return float("-inf")
    if s == "NaN":
        return float("nan")
    return float(s)


class Exposition:
    """families: {name: {"type", "help"}}; samples: [(name, frozenset(labels), value)]."""

    def __init__(self, text):
        self.families = {}
        self.samples = []
        self.values = {}
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    fam = self.families.setdefault(parts[2], {})
                    key = parts[1].lower()
                    if key in fam:
                        raise ValueError("line %d: second %s for %s" % (lineno, parts[1], parts[2]))
                    fam[key] = parts[3] if len(parts) > 3 else ""
                continue
            m = _SAMPLE.match(line)
            if not m:
                raise ValueError("line %d: not a sample: %r" % (lineno, line))
            name, labeltxt, value = m.group(1), m.group(2) or "", m.group(3)
            labels = {}
            pos = 0
            for _ in range(1000):
                if pos >= len(labeltxt):
                    break
                lm = _LABEL.match(labeltxt, pos)
                if not lm:
                    raise ValueError("line %d: bad labels %r" % (lineno, labeltxt))
                if lm.group(1) in labels:
                    raise ValueError("line %d: repeated label" % lineno)
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
            key = (name, frozenset(labels.items()))
            if key in self.values:
                raise ValueError("line %d: duplicate series %r" % (lineno, line))
            v = _parse_value(value)
            self.samples.append((name, key[1], v))
            self.values[key] = v
        for name, fam in self.families.items():
            if "type" not in fam:
                raise ValueError("family %s has no TYPE" % name)
        for name, _, _ in self.samples:
            if self.family_of(name) is None:
                raise ValueError("sample %s has no TYPE line" % name)

    def family_of(self, sample_name):
        if sample_name in self.families:
            return sample_name
        for suffix in ("_bucket", "_sum", "_count"):
            if sample_name.endswith(suffix):
                base = sample_name[: -len(suffix)]
                if self.families.get(base, {}).get("type") in ("histogram", "summary"):
                    return base
        return None

    def get(self, name, **labels):
        return self.values.get((name, frozenset(labels.items())))

    def series(self, name):
        return [(dict(l), v) for n, l, v in self.samples if n == name]

    def structure(self):
        return ({n: (f.get("type"), f.get("help")) for n, f in self.families.items()},
                sorted((n, tuple(sorted(l))) for n, l, _ in self.samples
                       if n not in ("process_start_time_seconds",)))


# ---------------------------------------------------------------------------------------
# Fixture
# ---------------------------------------------------------------------------------------

class MetricsBase(harness.ProxyTestCase):
    WORKERS = 1  # ejection is per worker: one worker makes 502-then-503 deterministic
    CATCH_ALL = False

    def setUp(self):
        super().setUp()
        self.up_s, self.port_s = self.start_upstream("stable")
        self.up_c, self.port_c = self.start_upstream("canary")
        self.dead_port = harness.free_port()
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        split = {"weight": SHOP_WEIGHT, "hash_on": {"header": "x-user-id"}}
        routes = [
            {"name": "shop", "match": {"path_prefix": "/shop"}, "stable": "stable",
             "canary": "canary", "split": split},
            {"name": "dead", "match": {"path_prefix": "/dead"}, "stable": "dead"},
            {"name": "cdead", "match": {"path_prefix": "/cdead"}, "stable": "stable",
             "canary": "dead", "split": {"weight": 100, "hash_on": {"header": "x-user-id"}}},
        ]
        if self.CATCH_ALL:
            routes.append({"name": "all", "match": {"path_prefix": "/"}, "stable": "stable"})
        self.cfg = harness.base_config(
            self.listen, self.admin,
            clusters=[{"name": "stable", "endpoints": ["127.0.0.1:%d" % self.port_s]},
                      {"name": "canary", "endpoints": ["127.0.0.1:%d" % self.port_c]},
                      {"name": "dead", "endpoints": ["127.0.0.1:%d" % self.dead_port]}],
            routes=routes, state_dir=self.state_dir, workers=self.WORKERS)
        self.cfg["timeouts"]["upstream_response"] = "1s"
        self.start_proxy(self.cfg, self.listen)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy),
                        "admin listener not up")

    # -- admin / public helpers ---------------------------------------------------------

    def admin_req(self, method, path, headers=None, port=None):
        c = http.client.HTTPConnection("127.0.0.1", port or self.admin, timeout=15)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def scrape(self):
        st, hdrs, body = self.admin_req("GET", "/metrics")
        self.assertEqual(st, 200, body[:300])
        return Exposition(body.decode("utf-8"))

    def one(self, target, headers=(), conn=None):
        own = conn is None
        c = conn or RawConn(self.listen, timeout=15)
        try:
            c.send(request_bytes("GET", target, host=HOST, headers=list(headers)))
            return c.read_response()
        finally:
            if own:
                c.close()

    def expect_status(self, target, headers, status, upstream=None, conn=None):
        r = self.one(target, headers, conn=conn)
        self.assertEqual(r.status, status, "GET %s %r -> %r %r\nproxy stderr:\n%s"
                         % (target, headers, r, r.body[:200], self.read_proxy_stderr()))
        if upstream:
            self.assertEqual(r.get("x-upstream"), upstream, "GET %s %r answered by %r"
                             % (target, headers, r.get("x-upstream")))
        return r

    def wait_total(self, want, routes=None, timeout=10):
        """Poll /metrics until the sum of requests_total (over routes) reaches want:
        the proxy counts a request after its last byte is written."""
        def total():
            e = self.scrape()
            s = sum(v for l, v in e.series("grayproxy_requests_total")
                    if routes is None or l["route"] in routes)
            return e if s >= want else None
        e = harness.wait_until(total, timeout=timeout, interval=0.05)
        return e or self.scrape()


class TestExactCounts(MetricsBase):

    def drive_mix(self):
        """Returns (requests {(route, version, class): n}, errors {(route, version, reason): n})."""
        st = keys_for("shop", SHOP_WEIGHT, "stable", 40, "s")
        ca = keys_for("shop", SHOP_WEIGHT, "canary", 20, "c")
        req = {}
        err = {}

        def add(d, k, n=1):
            d[k] = d.get(k, 0) + n

        with RawConn(self.listen, timeout=15) as c:
            plan = [  # (version keys, count, query, status, class)
                (st, 23, "", 200, "2xx"), (ca, 11, "", 200, "2xx"),
                (st, 2, "?status=302", 302, "3xx"), (ca, 1, "?status=302", 302, "3xx"),
                (st, 7, "?status=404", 404, "4xx"), (ca, 4, "?status=404", 404, "4xx"),
                (st, 5, "?status=503", 503, "5xx"), (ca, 3, "?status=503", 503, "5xx"),
            ]
            for keys, n, q, status, cls in plan:
                version = "stable" if keys is st else "canary"
                for i in range(n):
                    self.expect_status("/shop/item%s" % q, [("x-user-id", keys[i])], status,
                                       upstream=version, conn=c)
                    add(req, ("shop", version, cls))
        # Upstream failures (fresh client connections: the proxy may close after a 502).
        self.expect_status("/shop/x?close=rst", [("x-user-id", st[0])], 502)
        add(req, ("shop", "stable", "5xx"))
        add(err, ("shop", "stable", "reset"))
        self.expect_status("/shop/x?garbage=1", [("x-user-id", ca[0])], 502)
        add(req, ("shop", "canary", "5xx"))
        add(err, ("shop", "canary", "protocol"))
        self.expect_status("/shop/x?delay_ms=1600", [("x-user-id", ca[1])], 504)
        add(req, ("shop", "canary", "5xx"))
        add(err, ("shop", "canary", "timeout"))
        # A dead endpoint: refused once (502), then ejected for 5 s (503 no_endpoint), also
        # for the canary of another route that uses the same cluster.
        self.expect_status("/dead/a", [], 502)
        add(req, ("dead", "stable", "5xx"))
        add(err, ("dead", "stable", "connect"))
        for _ in range(2):
            self.expect_status("/dead/b", [], 503)
            add(req, ("dead", "stable", "5xx"))
            add(err, ("dead", "stable", "no_endpoint"))
        for k in st[:2]:  # weight 100: canary whatever the key
            self.expect_status("/cdead/b", [("x-user-id", k)], 503)
            add(req, ("cdead", "canary", "5xx"))
            add(err, ("cdead", "canary", "no_endpoint"))
        # No route.
        with RawConn(self.listen, timeout=15) as c:
            for p in ("/nowhere", "/", "/sho", "/metrics"):
                self.expect_status(p, [], 404, conn=c)
                add(req, ("none", "stable", "4xx"))
        return req, err

    def test_exact_counts_after_known_mix(self):
        req, err = self.drive_mix()
        total = sum(req.values())
        e = self.wait_total(total)
        routes = ["shop", "dead", "cdead", "none"]
        got_req = {}
        for route in routes:
            for v in VERSIONS:
                for cls in CODE_CLASSES:
                    val = e.get("grayproxy_requests_total", route=route, version=v, code_class=cls)
                    self.assertIsNotNone(val, "no series requests_total{%s,%s,%s}" % (route, v, cls))
                    got_req[(route, v, cls)] = val
        want_req = {k: req.get(k, 0) for k in got_req}
        self.assertEqual({k: v for k, v in got_req.items() if v != want_req[k]},
                         {k: v for k, v in want_req.items() if v != got_req[k]},
                         "requests_total differs (got vs want)")
        # No other route label appears.
        self.assertEqual({l["route"] for l, _ in e.series("grayproxy_requests_total")}, set(routes))

        got_err = {}
        for route in routes:
            for v in VERSIONS:
                for reason in REASONS:
                    val = e.get("grayproxy_upstream_errors_total", route=route, version=v,
                                reason=reason)
                    self.assertIsNotNone(val, "no upstream_errors{%s,%s,%s}" % (route, v, reason))
                    got_err[(route, v, reason)] = val
        want_err = {k: err.get(k, 0) for k in got_err}
        self.assertEqual({k: v for k, v in got_err.items() if v != want_err[k]},
                         {k: v for k, v in want_err.items() if v != got_err[k]},
                         "upstream_errors_total differs (got vs want)")

        # Histogram: one observation per request, cumulative buckets, +Inf == _count.
        for route in routes:
            for v in VERSIONS:
                n = sum(req.get((route, v, c), 0) for c in CODE_CLASSES)
                cnt = e.get("grayproxy_request_duration_seconds_count", route=route, version=v)
                self.assertEqual(cnt, n, "duration _count {%s,%s}" % (route, v))
                buckets = sorted((float(l["le"]), val) for l, val in
                                 e.series("grayproxy_request_duration_seconds_bucket")
                                 if l["route"] == route and l["version"] == v)
                self.assertGreater(len(buckets), 10)
                self.assertEqual(buckets[-1], (float("inf"), n))
                self.assertEqual([b[1] for b in buckets], sorted(b[1] for b in buckets),
                                 "buckets not cumulative")
                le1ms = [val for le, val in buckets if abs(le - 0.001) < 1e-12]
                self.assertTrue(le1ms, "no 1 ms bucket bound")
                self.assertTrue(any(abs(le - 10.0) < 1e-9 for le, _ in buckets), "no 10 s bound")
        # The 1.6 s request timed out after ~1 s: sum >= 1, and it is above the 0.5 s bound.
        s = e.get("grayproxy_request_duration_seconds_sum", route="shop", version="canary")
        self.assertGreaterEqual(s, 0.9)
        below_half = [val for l, val in e.series("grayproxy_request_duration_seconds_bucket")
                      if l["route"] == "shop" and l["version"] == "canary"
                      and float(l["le"]) == 0.5]
        self.assertEqual(below_half, [sum(req.get(("shop", "canary", c), 0)
                                          for c in CODE_CLASSES) - 1])

        # Gauges and info.
        self.assertEqual(e.get("grayproxy_canary_weight_percent", route="shop"), SHOP_WEIGHT)
        self.assertEqual(e.get("grayproxy_canary_weight_percent", route="cdead"), 100)
        self.assertEqual(e.get("grayproxy_config_reloads_total", result="success"), 1)
        self.assertEqual(e.get("grayproxy_config_reloads_total", result="failure"), 0)
        info = e.series("grayproxy_build_info")
        self.assertEqual(len(info), 1, info)
        self.assertEqual(info[0][1], 1)
        self.assertTrue(info[0][0].get("version"), info)
        self.assertEqual(e.families["grayproxy_requests_total"]["type"], "counter")
        self.assertEqual(e.families["grayproxy_upstream_errors_total"]["type"], "counter")
        self.assertEqual(e.families["grayproxy_request_duration_seconds"]["type"], "histogram")
        self.assertEqual(e.families["grayproxy_canary_weight_percent"]["type"], "gauge")
        self.assert_proxy_alive()

    def test_reload_counter_and_weight_gauge(self):
        cfg = json.loads(json.dumps(self.cfg))
        cfg["routes"][0]["split"]["weight"] = 45.5
        self.write_config(cfg)
        self.proxy.send_signal(signal.SIGHUP)
        e = harness.wait_until(
            lambda: (lambda x: x if x.get("grayproxy_config_reloads_total",
                                          result="success") == 2 else None)(self.scrape()),
            timeout=10)
        self.assertTrue(e, "reload not counted")
        self.assertEqual(e.get("grayproxy_canary_weight_percent", route="shop"), 45.5)
        self.write_config("routes: [this is not valid\n")
        self.proxy.send_signal(signal.SIGHUP)
        e = harness.wait_until(
            lambda: (lambda x: x if x.get("grayproxy_config_reloads_total",
                                          result="failure") == 1 else None)(self.scrape()),
            timeout=10)
        self.assertTrue(e, "failed reload not counted")
        self.assertEqual(e.get("grayproxy_config_reloads_total", result="success"), 2)
        self.assertEqual(e.get("grayproxy_canary_weight_percent", route="shop"), 45.5)
        self.assert_proxy_alive()

    def test_downstream_connections_gauge(self):
        conns = [RawConn(self.listen, timeout=15) for _ in range(3)]
        try:
            for c in conns:
                self.expect_status("/shop/g", [("x-user-id", "u")], 200, conn=c)
            e = self.scrape()
            self.assertEqual(e.get("grayproxy_downstream_connections_active"), 3)
        finally:
            for c in conns:
                c.close()
        ok = harness.wait_until(
            lambda: self.scrape().get("grayproxy_downstream_connections_active") == 0, timeout=5)
        self.assertTrue(ok, "gauge still %r after the clients closed"
                        % self.scrape().get("grayproxy_downstream_connections_active"))


class TestPageFormat(MetricsBase):

    def test_promtool_check_metrics(self):
        self.one("/shop/p", [("x-user-id", "x")])
        self.one("/nowhere")
        self.wait_total(2)
        st, hdrs, body = self.admin_req("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertEqual(hdrs.get("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        self.assertNotIn("content-encoding", hdrs)
        r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, "promtool check metrics failed:\n%s%s"
                         % (r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")))
        Exposition(body.decode("utf-8"))  # and our own parser accepts it

    def test_gzip_when_asked(self):
        self.one("/shop/p", [("x-user-id", "x")])
        self.wait_total(1)
        st1, h1, plain = self.admin_req("GET", "/metrics")
        st2, h2, zipped = self.admin_req("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        st3, h3, zipped2 = self.admin_req("GET", "/metrics",
                                          headers={"Accept-Encoding": "deflate, gzip;q=0.8"})
        self.assertEqual((st1, st2, st3), (200, 200, 200))
        self.assertNotIn("content-encoding", h1)
        for h, z in ((h2, zipped), (h3, zipped2)):
            self.assertEqual(h.get("content-encoding"), "gzip", h)
            self.assertEqual(z[:2], b"\x1f\x8b", "not a gzip stream")
            self.assertEqual(int(h["content-length"]), len(z))
            self.assertIn("accept-encoding", h.get("vary", "").lower())
            text = gzip.decompress(z).decode("utf-8")
            a, b = Exposition(plain.decode("utf-8")), Exposition(text)
            self.assertEqual(a.structure(), b.structure())
            for (name, labels, v) in a.samples:
                if name.startswith("grayproxy_requests_total") or \
                        name.startswith("grayproxy_upstream_errors_total"):
                    self.assertEqual(b.values[(name, labels)], v, name)
        self.assertLess(len(zipped), len(plain))
        r = subprocess.run(["promtool", "check", "metrics"], input=gzip.decompress(zipped),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # curl --compressed agrees.
        c = harness.curl(["--compressed", "http://127.0.0.1:%d/metrics" % self.admin])
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertEqual(Exposition(c.stdout.decode()).structure(),
                         Exposition(plain.decode()).structure())

    def test_admin_errors(self):
        for path in ("/nope", "/metrics/x", "/metricsx", "/Metrics", "/routes/shop"):
            st, _, _ = self.admin_req("GET", path)
            self.assertEqual(st, 404, path)
        # "/" is the status page (HTML), not an error.
        st, h, _ = self.admin_req("GET", "/")
        self.assertEqual(st, 200)
        self.assertIn("text/html", h.get("content-type", ""))
        st, h, _ = self.admin_req("POST", "/metrics")
        self.assertEqual(st, 405)
        self.assertIn("GET", h.get("allow", ""))
        for path in ("/healthz", "/ready", "/status"):
            self.assertEqual(self.admin_req("POST", path)[0], 405, path)
            self.assertEqual(self.admin_req("GET", path)[0], 200, path)
        self.assertEqual(self.admin_req("GET", "/reload")[0], 405)
        st, js = harness.http_get_json(self.admin, "/status")
        self.assertEqual(sorted(r["name"] for r in js["routes"]), ["cdead", "dead", "shop"])
        # HEAD /metrics: headers only.
        st, h, body = self.admin_req("HEAD", "/metrics")
        self.assertEqual((st, body), (200, b""))
        # The admin calls were not counted as proxied requests.
        e = self.scrape()
        self.assertEqual(sum(v for _, v in e.series("grayproxy_requests_total")), 0)

    def test_public_listener_does_not_serve_admin(self):
        for path in ("/metrics", "/healthz", "/status", "/ready"):
            r = self.one(path)
            self.assertEqual(r.status, 404, "%s on the public port: %r" % (path, r))
            self.assertNotIn(b"grayproxy_", r.body)
            self.assertNotIn(b'"routes"', r.body)
        r = self.one("/metrics", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 404)
        self.assertNotEqual(self.listen, self.admin)
        e = self.wait_total(5)
        self.assertEqual(e.get("grayproxy_requests_total", route="none", version="stable",
                               code_class="4xx"), 5)


class TestPublicCatchAll(MetricsBase):
    CATCH_ALL = True

    def test_metrics_path_goes_to_the_upstream(self):
        r = self.one("/metrics", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("x-upstream"), "stable")
        js = r.json()
        self.assertEqual(js["path"], "/metrics")
        self.assertNotIn(b"grayproxy_requests_total", r.body)
        r = self.one("/status")
        self.assertEqual(r.json()["path"], "/status")
        e = self.wait_total(2)
        self.assertEqual(e.get("grayproxy_requests_total", route="all", version="stable",
                               code_class="2xx"), 2)


class TestPrometheusScrape(MetricsBase):

    def start_prometheus(self):
        return super().start_prometheus(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: grayproxy\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n" % self.admin)

    def test_prometheus_query_returns_sent_counts(self):
        prom = self.start_prometheus()
        st = keys_for("shop", SHOP_WEIGHT, "stable", 17, "ps")
        ca = keys_for("shop", SHOP_WEIGHT, "canary", 9, "pc")
        with RawConn(self.listen) as c:
            for k in st:
                self.expect_status("/shop/a", [("x-user-id", k)], 200, "stable", conn=c)
            for k in ca:
                self.expect_status("/shop/b?status=404", [("x-user-id", k)], 404, "canary", conn=c)
            for _ in range(3):
                self.expect_status("/unrouted", [], 404, conn=c)  # route none, stable
        want = {"stable": 20.0, "canary": 9.0}
        self.wait_total(29)

        def counts():
            res = self.prom_query(prom, "sum by (version) (grayproxy_requests_total)")
            got = {r["metric"].get("version"): float(r["value"][1]) for r in res}
            return got if got == want else None
        got = harness.wait_until(counts, timeout=60, interval=0.5)
        if not got:
            targets = harness.http_get_json(prom, "/api/v1/targets")[1]
            self.fail("prometheus sum by (version): %r, want %r; targets: %r"
                      % (self.prom_query(prom, "sum by (version) (grayproxy_requests_total)"),
                         want, targets))
        self.assertEqual(got, want)
        # And per code class, from the same scrape data.
        res = self.prom_query(prom, 'sum by (version, code_class) (grayproxy_requests_total'
                                    '{route="shop"}) > 0')
        self.assertEqual({(r["metric"]["version"], r["metric"]["code_class"]): float(r["value"][1])
                          for r in res},
                         {("stable", "2xx"): 17.0, ("canary", "4xx"): 9.0})
        up = self.prom_query(prom, 'up{job="grayproxy"}')
        self.assertEqual([float(r["value"][1]) for r in up], [1.0])


class TestScrapeUnderLoad(MetricsBase):
    WORKERS = 2
    SCRAPES = 1000

    def test_1000_scrapes_under_load(self):
        stop = threading.Event()
        load_errors = []
        load_count = [0]

        def load(idx):
            conn = None
            try:
                conn = RawConn(self.listen, timeout=15)
                for i in range(10 ** 7):
                    if stop.is_set():
                        break
                    conn.send(request_bytes("GET", "/shop/load?i=%d" % i, host=HOST,
                                            headers=[("x-user-id", "load-%d-%d" % (idx, i % 50))]))
                    r = conn.read_response()
                    load_count[0] += 1
                    if r.status != 200:
                        load_errors.append("status %d" % r.status)
                        break
            except Exception as e:
                load_errors.append(repr(e))
            finally:
                if conn:
                    conn.close()

        wrk_out = os.path.join(self.tmp, "wrk.out")
        with open(wrk_out, "wb") as out:
            wrk = subprocess.Popen(["wrk", "-t1", "-c8", "-d60s", "--timeout", "5s",
                                    "-H", "Host: " + HOST, "-H", "x-user-id: wrk-user",
                                    "http://127.0.0.1:%d/shop/wrk" % self.listen],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._procs.append(("wrk", wrk))
        threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.3)

        scrape_errors = []
        last = {}
        sizes = set()
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=15)
        try:
            for i in range(self.SCRAPES):
                if time.monotonic() - t0 > 120:
                    scrape_errors.append("scrapes took over 120 s (done %d)" % i)
                    break
                enc = {"Accept-Encoding": "gzip"} if i % 2 else {}
                try:
                    c.request("GET", "/metrics", headers=enc)
                    r = c.getresponse()
                    body = r.read()
                except (OSError, http.client.HTTPException) as ex:
                    scrape_errors.append("scrape %d: %r" % (i, ex))
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=15)
                    continue
                if r.status != 200:
                    scrape_errors.append("scrape %d: status %d" % (i, r.status))
                    continue
                if enc:
                    body = gzip.decompress(body)
                e = Exposition(body.decode("utf-8"))
                sizes.add(len(e.samples))
                for (name, labels), v in e.values.items():
                    if name.startswith("grayproxy_requests_total") or \
                            name.endswith("_count") or name.endswith("_bucket"):
                        if v < last.get((name, labels), 0):
                            scrape_errors.append("scrape %d: %s went down" % (i, name))
                        last[(name, labels)] = v
        finally:
            c.close()
        scrape_secs = time.monotonic() - t0
        wrk_running = wrk.poll() is None
        stop.set()
        for t in threads:
            t.join(timeout=30)
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
        try:
            wrk.wait(timeout=15)
        except subprocess.TimeoutExpired:
            wrk.kill()
            wrk.wait(timeout=5)
        with open(wrk_out, "rb") as f:
            report = f.read().decode("utf-8", "replace")
        sys.stderr.write("[%d scrapes in %.1fs, %d load requests] " %
                         (self.SCRAPES, scrape_secs, load_count[0]))

        self.assertEqual(scrape_errors, [])
        self.assertEqual(load_errors, [])
        self.assertTrue(wrk_running, "wrk stopped before the scrapes ended:\n" + report)
        self.assertEqual(len(sizes), 1, "series count changed between scrapes: %r" % sizes)
        m = re.search(r"(\d+) requests in", report)
        self.assertTrue(m, "no wrk summary:\n" + report)
        self.assertGreater(int(m.group(1)), 100, report)
        self.assertNotIn("Non-2xx or 3xx responses", report, report)
        self.assertNotIn("Socket errors", report, report)
        self.assertGreater(load_count[0], 100)
        self.assert_proxy_alive()

        # The proxy's own count: every request 2xx, no upstream errors, no other class.
        e = self.wait_total(int(m.group(1)) + load_count[0], routes=["shop"])
        ok = sum(e.get("grayproxy_requests_total", route="shop", version=v, code_class="2xx")
                 for v in VERSIONS)
        self.assertGreaterEqual(ok, int(m.group(1)) + load_count[0])
        self.assertLessEqual(ok, int(m.group(1)) + load_count[0] + 8)  # wrk's in-flight at stop
        for l, v in e.series("grayproxy_requests_total"):
            if l["code_class"] != "2xx":
                self.assertEqual(v, 0, l)
        for l, v in e.series("grayproxy_upstream_errors_total"):
            self.assertEqual(v, 0, l)


if __name__ == "__main__":
    unittest.main()
