#!/usr/bin/python3
"""End-to-end tests of the operator CLI (`grayproxy status`, `grayproxy
promote|abort|pause|resume ROUTE`, `grayproxy weight ROUTE N`) against a running proxy.

The proxy has three routes: `shop` (canary with a rollout policy, interval 1s), `beta`
(canary with a static weight, state idle) and `static` (a plain route). The admin writes need
a bearer token, which the CLI reads from --token-file. Against a port where nothing listens
the CLI must fail with exit code 1 and a clear message.
"""

import os
import random
import re
import subprocess
import sys
import threading
import http.client
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

TOKEN = "cli-test-token-42"
STEPS = [10, 50, 100]
BAR = re.compile(r"\[[#.]{20}\]")


class Traffic:
    """A few keep-alive clients sending requests with random x-user-id until stop()."""

    def __init__(self, port, paths=("/", "/beta/x", "/static/y"), conns=3, rate=150):
        self.port, self.paths, self.conns, self.rate = port, paths, conns, rate
        self.halt = threading.Event()
        self.threads = []

    def start(self):
        for i in range(self.conns):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(timeout=10)

    def _run(self, idx):
        rng = random.Random(idx)
        conn = None
        for n in range(10 ** 6):
            if self.halt.wait(float(self.conns) / self.rate):
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.paths[n % len(self.paths)],
                             headers={"Host": "shop.test", "x-user-id": "u%d" % rng.getrandbits(40)})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


class CliTest(harness.ProxyTestCase):
    def setUp(self):
        super().setUp()
        _, port_s = self.start_upstream("stable")
        _, port_c = self.start_upstream("canary")
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        self.token_file = os.path.join(self.tmp, "admin-token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        clusters = [{"name": "v1", "endpoints": ["127.0.0.1:%d" % port_s]},
                    {"name": "v2", "endpoints": ["127.0.0.1:%d" % port_c]}]
        routes = [
            {"name": "shop", "match": {"path_prefix": "/"}, "stable": "v1", "canary": "v2",
             "split": {"weight": 0, "hash_on": {"header": "x-user-id"}, "fallback": "random"},
             "rollout": {"steps": STEPS, "interval": "1s", "min_requests": 5,
                         "max_error_rate": 0.5, "failure_limit": 2, "consecutive_successes": 1000}},
            {"name": "beta", "match": {"path_prefix": "/beta"}, "stable": "v1", "canary": "v2",
             "split": {"weight": 20, "hash_on": {"header": "x-user-id"}, "fallback": "random"}},
            {"name": "static", "match": {"path_prefix": "/static"}, "stable": "v1"},
        ]
        cfg = harness.base_config(self.listen, self.admin, clusters=clusters, routes=routes,
                                  state_dir=self.state_dir)
        cfg["admin"]["token_file"] = self.token_file
        self.start_proxy(cfg, self.listen)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy),
                        "admin not up:\n" + self.read_proxy_stderr())
        self.url = "http://127.0.0.1:%d" % self.admin
        self.traffic = None

    def tearDown(self):
        if self.traffic:
            self.traffic.stop()
        super().tearDown()

    def cli(self, *args, admin=True, token=False, expect=0):
        cmd = [harness.proxy_bin()] + list(args)
        if admin:
            cmd += ["--admin", self.url]
        if token:
            cmd += ["--token-file", self.token_file]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                           stdin=subprocess.DEVNULL)
        out, err = p.stdout.decode(), p.stderr.decode()
        if expect is not None:
            self.assertEqual(p.returncode, expect, "%s -> %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(cmd), p.returncode, out, err))
        return p.returncode, out, err

    def rows(self, out):
        """{route: line} of the status table."""
        lines = out.strip("\n").split("\n")
        header = [i for i, l in enumerate(lines) if l.startswith("ROUTE")]
        self.assertTrue(header, "no table header in:\n" + out)
        self.assertRegex(lines[header[0]], r"^ROUTE\s+STATE\s+WEIGHT\s+STEP\s+PROGRESS\s+LAST VERDICT$")
        return {l.split()[0]: l for l in lines[header[0] + 1:]}

    def status_rows(self):
        _, out, err = self.cli("status")
        self.assertEqual(err, "")
        return self.rows(out)

    # -- status -----------------------------------------------------------------------

    def test_status_table_with_bars_states_and_verdicts(self):
        self.traffic = Traffic(self.listen).start()
        rows = {}

        def judged():
            rows.update(self.status_rows())
            return re.search(r"\b(pass|inconclusive|fail): ", rows.get("shop", ""))

        self.assertTrue(harness.wait_until(judged, timeout=30, interval=0.5),
                        "no judgement in the table:\n%r" % rows)
        self.assertEqual(set(rows), {"shop", "beta", "static"})
        shop = rows["shop"].split()
        self.assertEqual(shop[1:4], ["progressing", "10%", "1/3"], rows["shop"])
        self.assertEqual(shop[4], "[##..................]")
        beta = rows["beta"].split()
        self.assertEqual(beta[1:4], ["idle", "20%", "-"], rows["beta"])
        self.assertEqual(beta[4], "[####................]")
        static = rows["static"].split()
        self.assertEqual(static[1:], ["plain", "-", "-", "-", "-"], rows["static"])

    def test_admin_host_port_form(self):
        _, out, _ = self.cli("status", "--admin", "127.0.0.1:%d" % self.admin, admin=False)
        self.assertIn("shop", self.rows(out))

    # -- actions ------------------------------------------------------------------------

    def test_actions_with_token(self):
        _, out, _ = self.cli("pause", "shop", token=True)
        self.assertEqual(out, "shop: rollout paused (state paused, canary weight 10%)\n")
        self.assertEqual(self.status_rows()["shop"].split()[1], "paused")

        _, out, _ = self.cli("weight", "shop", "25", token=True)
        self.assertEqual(out, "shop: canary weight set to 25% (state paused)\n")
        row = self.status_rows()["shop"].split()
        self.assertEqual(row[1:5], ["paused", "25%", "2/3", "[#####...............]"])

        _, out, _ = self.cli("resume", "shop", token=True)
        self.assertEqual(out, "shop: rollout resumed (state progressing, canary weight 25%)\n")

        _, out, _ = self.cli("promote", "shop", token=True)
        self.assertEqual(out, "shop: canary promoted (state promoted, canary weight 100%)\n")
        row = self.status_rows()["shop"].split()
        self.assertEqual(row[1:5], ["promoted", "100%", "3/3", "[" + "#" * 20 + "]"])

        _, out, _ = self.cli("abort", "shop", token=True)
        self.assertEqual(
            out, "shop: rollout aborted, canary rolled back (state rolled_back, canary weight 0%)\n")
        row = self.status_rows()["shop"].split()
        self.assertEqual(row[1:3], ["rolled_back", "0%"])
        self.assertEqual(row[4], "[" + "." * 20 + "]")

        # A route without a rollout policy takes a weight ("12.5%" works too).
        _, out, _ = self.cli("weight", "beta", "12.5%", token=True)
        self.assertEqual(out, "beta: canary weight set to 12.5% (state idle)\n")
        self.assertEqual(self.status_rows()["beta"].split()[2], "12.5%")

    def test_writes_without_or_with_a_wrong_token_fail(self):
        rc, out, err = self.cli("promote", "shop", expect=1)
        self.assertEqual(out, "")
        self.assertIn("answered 401", err)
        self.assertIn("unauthorized", err)
        self.assertIn("--token-file", err)
        wrong = os.path.join(self.tmp, "wrong-token")
        with open(wrong, "w") as f:
            f.write("nope\n")
        rc, out, err = self.cli("weight", "shop", "50", "--token-file", wrong, expect=1)
        self.assertIn("answered 401", err)
        rc, out, err = self.cli("pause", "shop", "--token-file", os.path.join(self.tmp, "missing"),
                                expect=1)
        self.assertIn("cannot read the admin token from", err)
        self.assertEqual(self.status_rows()["shop"].split()[1:3], ["progressing", "10%"])

    def test_admin_errors_are_printed(self):
        _, _, err = self.cli("promote", "nope", token=True, expect=1)
        self.assertEqual(err, 'grayproxy: admin at %s answered 404 Not Found: no route "nope" with a canary\n'
                         % self.url)
        _, _, err = self.cli("pause", "beta", token=True, expect=1)
        self.assertIn("answered 409", err)
        self.assertIn('route "beta" has no rollout policy', err)
        _, _, err = self.cli("weight", "shop", "12.345", token=True, expect=1)
        self.assertIn("answered 400", err)
        self.assertIn("weight", err)

    def test_usage_errors_exit_2(self):
        for args in (["weight", "shop", "abc"], ["weight", "shop"], ["promote"],
                     ["status", "extra"], ["pause", "shop", "--bogus"],
                     ["status", "--admin", "https://127.0.0.1:1"]):
            rc, out, err = self.cli(*args, admin=False, expect=2)
            self.assertIn("usage: grayproxy status", err, args)

    # -- unreachable ------------------------------------------------------------------------

    def test_dead_port_fails_clearly(self):
        dead = harness.free_port()
        url = "http://127.0.0.1:%d" % dead
        for args in (["status"], ["promote", "shop"], ["weight", "shop", "5"]):
            rc, out, err = self.cli(*args, "--admin", url, admin=False, token=True, expect=1)
            self.assertEqual(out, "")
            self.assertEqual(err, "grayproxy: cannot reach admin at %s: connection refused\n" % url)

    def test_default_admin_url(self):
        if harness.wait_port(9901, timeout=0.2):
            self.skipTest("something listens on 127.0.0.1:9901")
        rc, out, err = self.cli("status", admin=False, expect=1)
        self.assertEqual(err, "grayproxy: cannot reach admin at http://127.0.0.1:9901: "
                              "connection refused\n")


if __name__ == "__main__":
    unittest.main()
