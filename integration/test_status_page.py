#!/usr/bin/python3
"""End-to-end test of the admin status page (GET /) and its data (GET /history) in a real
browser: Debian's chromium, headless, installed with apt-get when it is missing.

The proxy has a rollout route (`shop`, interval 1s, so the history takes a point per
second), a canary route with a static weight (`beta`) and a plain route (`static`), with
traffic on all three. The test loads http://ADMIN/ with --dump-dom after the page's scripts
ran and checks every route's name, its state, the progress bar and SVG chart paths with data;
then takes a screenshot and checks it is a real, non-blank PNG.
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
import http.client
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from test_cli import Traffic  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ROUTES = {"shop": "progressing", "beta": "idle", "static": "plain"}


def ensure_chromium():
    """Debian's chromium, installed with apt-get when missing (CI runs as root)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    for cmd in (["apt-get", "install", "-y", "chromium"],
                ["apt-get", "update"],
                ["apt-get", "install", "-y", "chromium"]):
        if cmd[1] == "update" and os.access(CHROMIUM, os.X_OK):
            break
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                           timeout=1200)
        log.append("$ %s -> %d\n%s" % (" ".join(cmd), p.returncode,
                                        p.stdout.decode("utf-8", "replace")[-3000:]))
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError("Debian's chromium is needed for this test and could not be installed "
                             "(apt-get install -y chromium, as root):\n" + "\n".join(log))
    return CHROMIUM


def png_info(data):
    """(width, height, distinct byte values of the decompressed image data) of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG: %r" % data[:16]
    pos, idat, width, height = 8, b"", None, None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
        pos += 12 + n
    raw = zlib.decompress(idat)
    return width, height, len(set(raw))


class StatusPageTest(harness.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.chromium = ensure_chromium()
        _, port_s = self.start_upstream("stable")
        _, port_c = self.start_upstream("canary")
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        clusters = [{"name": "v1", "endpoints": ["127.0.0.1:%d" % port_s]},
                    {"name": "v2", "endpoints": ["127.0.0.1:%d" % port_c]}]
        routes = [
            {"name": "shop", "match": {"path_prefix": "/"}, "stable": "v1", "canary": "v2",
             "split": {"weight": 0, "hash_on": {"header": "x-user-id"}, "fallback": "random"},
             "rollout": {"steps": [10, 50, 100], "interval": "1s", "min_requests": 5,
                         "max_error_rate": 0.5, "consecutive_successes": 1000}},
            {"name": "beta", "match": {"path_prefix": "/beta"}, "stable": "v1", "canary": "v2",
             "split": {"weight": 20, "hash_on": {"header": "x-user-id"}, "fallback": "random"}},
            {"name": "static", "match": {"path_prefix": "/static"}, "stable": "v1"},
        ]
        cfg = harness.base_config(self.listen, self.admin, clusters=clusters, routes=routes,
                                  state_dir=self.state_dir)
        self.start_proxy(cfg, self.listen)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy),
                        "admin not up:\n" + self.read_proxy_stderr())
        self.url = "http://127.0.0.1:%d/" % self.admin
        self.traffic = Traffic(self.listen).start()

    def tearDown(self):
        self.traffic.stop()
        super().tearDown()

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()

    def history(self):
        st, _, body = self.get("/history")
        self.assertEqual(st, 200)
        return {r["name"]: r for r in json.loads(body)["routes"]}

    def wait_for_data(self):
        """Until every route has history points with traffic (3 for shop, sampled every second;
        2 for the others, every 10 s) and shop has a judgement."""
        def ready():
            h = self.history()
            for name in ROUTES:
                versions = h.get(name, {}).get("versions", {})
                wanted = ["stable"] if name == "static" else ["stable", "canary"]
                for v in wanted:
                    rates = [r for r in versions.get(v, {}).get("rate", []) if r]
                    if len(rates) < (3 if name == "shop" else 2):
                        return False
            _, st = harness.http_get_json(self.admin, "/status")
            shop = [r for r in st["routes"] if r["name"] == "shop"][0]
            return bool(shop["rollout"]["judgements"])
        self.assertTrue(harness.wait_until(ready, timeout=40, interval=0.5),
                        "no history/judgements after 40 s: %r" % self.history())

    def chromium_run(self, *args):
        profile = os.path.join(self.tmp, "chromium-profile")
        cmd = [self.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + profile,
               "--virtual-time-budget=5000"] + list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                           stdin=subprocess.DEVNULL)
        shutil.rmtree(profile, ignore_errors=True)
        self.assertEqual(p.returncode, 0, "%s -> %d\nstderr:\n%s" % (
            " ".join(cmd), p.returncode, p.stderr.decode("utf-8", "replace")[-4000:]))
        return p.stdout.decode("utf-8", "replace")

    def test_page_is_self_contained(self):
        st, headers, body = self.get("/")
        self.assertEqual(st, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"), headers)
        self.assertIn("default-src 'none'", headers["content-security-policy"])
        html = body.decode()
        self.assertTrue(html.startswith("<!DOCTYPE html>"))
        # Nothing loaded from elsewhere: no external scripts, styles, images or fonts.
        self.assertNotRegex(html, r"<script[^>]*\bsrc=")
        self.assertNotRegex(html, r"<link\b")
        self.assertNotRegex(html, r"<img\b")
        self.assertNotRegex(html, r"url\(")
        self.assertNotRegex(html, r"@import")
        external = set(re.findall(r"https?://[^\s\"'<>]+", html)) - {"http://www.w3.org/2000/svg"}
        self.assertEqual(external, set())
        self.assertIn('fetch("/status"', html)
        self.assertIn('fetch("/history"', html)
        st, headers, body = self.get("/index.html")
        self.assertEqual(st, 200)
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        c.request("POST", "/")
        self.assertEqual(c.getresponse().status, 405)
        c.close()

    def test_history_json(self):
        self.wait_for_data()
        st, headers, body = self.get("/history")
        self.assertTrue(headers["content-type"].startswith("application/json"))
        doc = json.loads(body)
        self.assertEqual(doc["max_points"], 360)
        self.assertGreater(doc["now_ms"], 1.6e12)
        h = {r["name"]: r for r in doc["routes"]}
        self.assertEqual(set(h), set(ROUTES))
        self.assertEqual(h["shop"]["period_seconds"], 1)  # its rollout interval
        self.assertEqual(h["beta"]["period_seconds"], 10)
        self.assertNotIn("canary", h["static"]["versions"])
        for name in ROUTES:
            for v, s in h[name]["versions"].items():
                n = len(s["time_ms"])
                for key in ("rate", "error_ratio", "p99_seconds", "requests"):
                    self.assertEqual(len(s[key]), n, (name, v, key))
                self.assertEqual(s["time_ms"], sorted(s["time_ms"]))
        shop = h["shop"]["versions"]["canary"]
        i = max(range(len(shop["rate"])), key=lambda k: shop["requests"][k])
        self.assertGreater(shop["rate"][i], 0)
        self.assertEqual(shop["error_ratio"][i], 0)
        self.assertGreater(shop["p99_seconds"][i], 0)
        self.assertLess(shop["p99_seconds"][i], 2)
        # /status carries the steps the page draws the bar across.
        _, st = harness.http_get_json(self.admin, "/status")
        by = {r["name"]: r for r in st["routes"]}
        self.assertEqual(by["shop"]["steps_percent"], [10, 50, 100])
        self.assertNotIn("steps_percent", by["beta"])

    def test_page_renders_in_chromium_and_as_a_screenshot(self):
        self.wait_for_data()
        dom = self.chromium_run("--dump-dom", self.url)
        self.assertIn('data-loaded="1"', dom, "the page's script did not render:\n" + dom[:3000])
        self.assertIn('<div id="error" style="display: none;"></div>', dom,
                      "the page shows an error")
        cards = {}
        for m in re.finditer(r'<section class="route"[^>]*>.*?</section>', dom, re.S):
            name = re.search(r'data-route="([^"]+)"', m.group(0)).group(1)
            cards[name] = m.group(0)
        self.assertEqual(set(cards), set(ROUTES), dom[-3000:])
        for name, state in ROUTES.items():
            card = cards[name]
            self.assertIn("<h2>%s</h2>" % name, card)
            self.assertIn('data-state="%s"' % state, card)
            self.assertRegex(card, r'<span class="state state-%s">%s</span>' % (state, state))
            # Charts: rate, error ratio, p99, each with a path per version that has data.
            versions = ("stable",) if name == "static" else ("stable", "canary")
            for metric in ("rate", "error_ratio", "p99_seconds"):
                svg = re.search(r'<svg[^>]*data-metric="%s"[^>]*>.*?</svg>' % metric, card, re.S)
                self.assertIsNotNone(svg, "%s: no %s chart" % (name, metric))
                for v in versions:
                    path = re.search(r'<path class="line %s" d="([^"]+)"[^>]*data-points="(\d+)"'
                                     % v, svg.group(0))
                    self.assertIsNotNone(path, "%s %s %s: no path in %s" % (name, metric, v,
                                                                           svg.group(0)[:2000]))
                    d, n = path.group(1), int(path.group(2))
                    self.assertGreaterEqual(n, 3 if name == "shop" else 2, (name, metric, v, d))
                    self.assertRegex(d, r"^M[\d.]+ [\d.]+( [ML][\d.]+ [\d.]+)+$")
                    self.assertGreaterEqual(d.count("L"), 1, d)
        # The progress bar: one segment per step for the rollout, one for the static weight.
        bar = re.search(r'<div class="progress" role="progressbar"[^>]*aria-valuenow="([\d.]+)"[^>]*>'
                        r'(.*?)</div></div></div>', cards["shop"], re.S)
        self.assertIsNotNone(bar, cards["shop"][:3000])
        self.assertEqual(bar.group(1), "10")
        self.assertEqual(cards["shop"].count('class="seg'), 3)
        self.assertIn('class="seg current"', cards["shop"])
        self.assertRegex(cards["shop"], r'<div class="fill" style="width:100.0%"></div>'
                                        r'<div class="label">10%</div>')
        self.assertRegex(cards["beta"], r'role="progressbar"[^>]*aria-valuenow="20"')
        self.assertNotIn("progressbar", cards["static"])
        # The last judgements of the rollout route.
        self.assertRegex(cards["shop"], r'<table class="judgements">')
        self.assertRegex(cards["shop"], r'<td class="verdict-(pass|inconclusive|fail)">')
        self.assertIn("step <b>1/3</b>", cards["shop"])

        # The same page as an image: a real PNG of the window's size that is not blank.
        png = os.path.join(self.tmp, "status.png")
        self.chromium_run("--hide-scrollbars", "--window-size=1280,1400", "--screenshot=" + png,
                          self.url)
        with open(png, "rb") as f:
            data = f.read()
        width, height, distinct = png_info(data)
        self.assertEqual((width, height), (1280, 1400))
        self.assertGreater(len(data), 20000, "a screenshot of %d bytes is too small" % len(data))
        self.assertGreater(distinct, 50, "the screenshot looks blank")
        keep = os.environ.get("GP_STATUS_SCREENSHOT")
        if keep:
            shutil.copy(png, keep)


if __name__ == "__main__":
    unittest.main()
