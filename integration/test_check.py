#!/usr/bin/python3
"""The command line: --check, --version, --demo."""

import os
import re
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CONFIG = """\
workers: 2
state_dir: {state_dir}
admin: {{ address: 127.0.0.1:19901 }}
timeouts: {{ request_header: 2s, idle: 5s, upstream_connect: 1s, upstream_response: 2s, drain: 2s }}
listeners:
  - {{ name: public, address: 127.0.0.1:18080 }}
clusters:
  - {{ name: v1, endpoints: [127.0.0.1:9001] }}
  - {{ name: v2, endpoints: [127.0.0.1:9002] }}
routes:
  - name: shop
    match: {{ path_prefix: / }}
    stable: v1
    canary: v2
    split:
      {weight_line}
      hash_on: {{ header: x-user-id }}
"""


def run(args, timeout=30):
    return subprocess.run([harness.proxy_bin()] + args, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class TestCheck(harness.ProxyTestCase):

    def config(self, weight_line, name):
        text = CONFIG.format(state_dir=self.state_dir, weight_line=weight_line)
        return self.write_config(text, name), text

    def test_check_valid(self):
        path, _ = self.config("weight: 10", "valid.yaml")
        r = run(["--check", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_weight_out_of_range(self):
        path, text = self.config("weight: 140", "bad-weight.yaml")
        line = text.splitlines().index("      weight: 140") + 1
        r = run(["--check", "-c", path])
        err = r.stderr.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(":%d:" % line, err)
        self.assertIn("routes[0].split.weight", err)
        self.assertIn("bad-weight.yaml", err)

    def test_check_unknown_key(self):
        path, text = self.config("wieght: 10", "unknown-key.yaml")
        line = text.splitlines().index("      wieght: 10") + 1
        r = run(["--check", "-c", path])
        err = r.stderr.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 1, err)
        self.assertIn("wieght", err)
        self.assertIn(":%d:" % line, err)

    def test_check_missing_file(self):
        r = run(["--check", "-c", os.path.join(self.tmp, "does-not-exist.yaml")])
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip(), "no message for a missing file")

    def test_version(self):
        r = run(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        self.assertRegex(out, r"\d+\.\d+\.\d+")


class TestDemo(harness.ProxyTestCase):

    def start_demo(self):
        self.listen, self.admin = harness.free_port(), harness.free_port()
        err_path = os.path.join(self.tmp, "demo.stderr")
        err = open(err_path, "ab")
        proc = subprocess.Popen(
            [harness.proxy_bin(), "--demo", "--listen", "127.0.0.1:%d" % self.listen,
             "--admin", "127.0.0.1:%d" % self.admin],
            stdout=err, stderr=err, stdin=subprocess.DEVNULL, cwd=self.tmp)
        err.close()
        self._procs.append(("proxy-demo", proc))
        self._logs.append(err_path)
        self.proxy, self.proxy_stderr = proc, err_path
        if not harness.wait_port(self.listen, timeout=10.0, proc=proc):
            self.fail("demo did not listen on 127.0.0.1:%d (exit %r):\n%s"
                      % (self.listen, proc.poll(), self.read_proxy_stderr()))
        return proc

    def test_demo_serves_stable_or_canary(self):
        proc = self.start_demo()
        seen = set()
        for i in range(20):
            r = harness.curl(["-H", "x-user-id: user-%d" % i, "http://127.0.0.1:%d/" % self.listen], max_time=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            body = r.stdout.decode("utf-8", "replace").lower()
            self.assertTrue("stable" in body or "canary" in body, "demo body: %r" % body[:300])
            seen.update(w for w in ("stable", "canary") if w in body)
        self.assertTrue(seen)
        # SIGTERM with nothing in flight: a prompt, clean exit.
        code = harness.stop_process(proc, timeout=10.0, sig=signal.SIGTERM)
        self.assertEqual(code, 0, "demo exit code after SIGTERM: %r\n%s" % (code, self.read_proxy_stderr()))

    def test_demo_admin_metrics(self):
        self.start_demo()
        harness.curl(["http://127.0.0.1:%d/" % self.listen], max_time=10)
        r = harness.curl(["-w", "\n%{http_code}", "http://127.0.0.1:%d/metrics" % self.admin], max_time=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode("utf-8", "replace")
        self.assertTrue(text.endswith("\n200"), text[-300:])
        self.assertRegex(text, r"(?m)^grayproxy_requests_total\{")


if __name__ == "__main__":
    unittest.main(verbosity=2)
