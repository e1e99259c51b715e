"""Access log: one line per request with route, version, method, path, status, duration,
upstream, bytes and cohort bucket (never the raw key), JSON or text, reopened on SIGUSR1."""
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RawConn, request_bytes  # noqa: E402

import xxhash  # noqa: E402


def expected_bucket(salt, key):
    return xxhash.xxh3_64_intdigest(key.encode(), seed=xxhash.xxh3_64_intdigest(salt.encode())) % 10000


class AccessLogTest(harness.ProxyTestCase):

    def start(self, fmt):
        _, v1 = self.start_upstream("v1")
        _, v2 = self.start_upstream("v2")
        self.listen, admin = harness.free_port(), harness.free_port()
        self.log_path = os.path.join(self.tmp, "access.log")
        cfg = harness.base_config(
            self.listen, admin,
            clusters=[{"name": "v1", "endpoints": ["127.0.0.1:%d" % v1]},
                      {"name": "v2", "endpoints": ["127.0.0.1:%d" % v2]}],
            routes=[{"name": "shop", "match": {"path_prefix": "/shop"}, "stable": "v1",
                     "canary": "v2",
                     "split": {"weight": 30, "hash_on": {"header": "x-user-id"}}}],
            state_dir=self.state_dir,
            access_log={"path": self.log_path, "format": fmt})
        self.start_proxy(cfg, self.listen)
        self.ports = {"v1": v1, "v2": v2}

    def read_lines(self, want, timeout=10.0):
        # Lines are written in batches (at least once a second): wait for them, bounded.
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            if os.path.exists(self.log_path):
                with open(self.log_path) as f:
                    lines = [l for l in f.read().splitlines() if l]
                if len(lines) >= want:
                    return lines
            time.sleep(0.1)
        self.fail("expected %d access log lines, got %d: %r" % (want, len(lines), lines[-3:]))

    def test_json_lines_carry_the_right_fields(self):
        self.start("json")
        keys = ["user-%d" % i for i in range(40)]
        with RawConn(self.listen) as c:
            for k in keys:
                c.send(request_bytes("GET", "/shop/item?secret=%s" % k, headers=[("x-user-id", k)]))
                self.assertEqual(c.read_response().status, 200)
            body = b"x" * 1234
            c.send(request_bytes("POST", "/shop/cart", headers=[("x-user-id", "poster")], body=body))
            self.assertEqual(c.read_response().status, 200)
            c.send(request_bytes("GET", "/nowhere"))
            self.assertEqual(c.read_response().status, 404)
        lines = [json.loads(l) for l in self.read_lines(len(keys) + 2)]
        self.assertEqual(len(lines), len(keys) + 2)
        for k, e in zip(keys, lines):
            b = expected_bucket("shop", k)
            self.assertEqual(e["route"], "shop")
            self.assertEqual(e["method"], "GET")
            self.assertEqual(e["path"], "/shop/item")  # the query string is not logged
            self.assertEqual(e["status"], 200)
            self.assertEqual(e["bucket"], b)
            self.assertEqual(e["version"], "canary" if b < 3000 else "stable")
            port = self.ports["v2" if b < 3000 else "v1"]
            self.assertEqual(e["upstream"], "127.0.0.1:%d" % port)
            self.assertEqual(e["bytes_in"], 0)
            self.assertGreater(e["bytes_out"], 0)
            self.assertGreaterEqual(e["duration_ms"], 0)
            self.assertEqual(e["peer"], "127.0.0.1")
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        post, miss = lines[-2], lines[-1]
        self.assertEqual((post["method"], post["path"], post["bytes_in"]), ("POST", "/shop/cart", 1234))
        self.assertEqual((miss["route"], miss["status"], miss["upstream"], miss["bucket"]),
                         ("none", 404, "", None))
        with open(self.log_path) as f:
            raw = f.read()
        for k in keys:
            self.assertNotIn(k, raw)  # never the user's key

    def test_text_format_and_reopen_on_sigusr1(self):
        self.start("text")
        with RawConn(self.listen) as c:
            c.send(request_bytes("GET", "/shop/a", headers=[("x-user-id", "alice")]))
            self.assertEqual(c.read_response().status, 200)
        first = self.read_lines(1)
        fields = first[0].split(" ")
        self.assertEqual(len(fields), 12, first[0])
        self.assertEqual(fields[2:8], ["shop", fields[3], "GET", "/shop/a", "200", fields[7]])
        self.assertTrue(fields[7].endswith("ms"))
        self.assertEqual(fields[11], str(expected_bucket("shop", "alice")))

        rotated = self.log_path + ".1"
        os.rename(self.log_path, rotated)
        self.proxy.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.log_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(self.log_path), "SIGUSR1 did not reopen the access log")
        with RawConn(self.listen) as c:
            c.send(request_bytes("GET", "/shop/b", headers=[("x-user-id", "bob")]))
            self.assertEqual(c.read_response().status, 200)
        after = self.read_lines(1)
        self.assertIn("/shop/b", after[0])
        with open(rotated) as f:
            self.assertEqual(len(f.read().splitlines()), 1)
        self.assertIn("access log reopened", self.read_proxy_stderr())


class LogFormatTest(harness.ProxyTestCase):

    def test_json_process_log(self):
        _, v1 = self.start_upstream("v1")
        listen, admin = harness.free_port(), harness.free_port()
        cfg = harness.base_config(listen, admin,
                                  clusters=[{"name": "v1", "endpoints": ["127.0.0.1:%d" % v1]}],
                                  routes=[{"name": "r", "stable": "v1"}], state_dir=self.state_dir)
        self.start_proxy(cfg, listen, extra_args=["--log-format", "json"])
        with RawConn(listen) as c:
            c.send(b"GET / HTTP/1.1\r\n\r\n")  # no Host: rejected and logged
            self.assertEqual(c.read_response().status, 400)
        self.proxy.send_signal(signal.SIGTERM)
        self.proxy.wait(timeout=10)
        records = [json.loads(l) for l in self.read_proxy_stderr().splitlines() if l.strip()]
        msgs = [r["msg"] for r in records]
        self.assertIn("grayproxy started", msgs)
        rejected = [r for r in records if r["msg"] == "request rejected"]
        self.assertEqual(len(rejected), 1)
        self.assertEqual((rejected[0]["level"], rejected[0]["status"], rejected[0]["reason"]),
                         ("warn", "400", "missing Host"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
