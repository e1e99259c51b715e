#!/usr/bin/python3
"""End-to-end tests of configuration reload (SIGHUP, POST /reload) and graceful shutdown
(SIGTERM drain). Real binary ($GRAYPROXY_BIN), real upstreams (upstream.py), real clients
(wrk, curl, raw sockets). docs/design.md "Configuration and reload"."""

import copy
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RawConn, request_bytes  # noqa: E402

WORKERS = 2


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

parse_metrics = harness.parse_metrics  # one parser of the exposition format for all tests


def connect_refused(port, timeout=1.0):
    """True if a TCP connect to 127.0.0.1:port is refused."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


def established_to(port):
    """Number of ESTABLISHED TCP sockets on 127.0.0.1 whose local port is `port` (i.e. the
    server side of connections to a local server listening on it)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            local, state = parts[1], parts[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


class ReloadBase(harness.ProxyTestCase):
    """Upstreams v1 (stable) and v2 (canary); route "shop" splits on x-user-id."""

    WEIGHT = 10
    TIMEOUTS = {"request_header": "2s", "idle": "5s", "upstream_connect": "1s",
                "upstream_response": "10s", "drain": "10s"}

    def setUp(self):
        super().setUp()
        self.up1, self.port1 = self.start_upstream("v1")
        self.up2, self.port2 = self.start_upstream("v2")
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        self.cfg = harness.base_config(
            self.listen, self.admin,
            clusters=[
                {"name": "v1", "endpoints": ["127.0.0.1:%d" % self.port1]},
                {"name": "v2", "endpoints": ["127.0.0.1:%d" % self.port2]},
            ],
            routes=[{
                "name": "shop",
                "match": {"path_prefix": "/"},
                "stable": "v1",
                "canary": "v2",
                "split": {"weight": self.WEIGHT, "hash_on": {"header": "x-user-id"},
                          "fallback": "random"},
            }],
            state_dir=self.state_dir,
            workers=WORKERS,
            timeouts=dict(self.TIMEOUTS))
        self.customize(self.cfg)
        self.start_proxy(self.cfg, self.listen)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy),
                        "admin API did not listen; stderr:\n" + self.read_proxy_stderr())

    def customize(self, cfg):
        pass

    # -- config edits -------------------------------------------------------------------

    def cfg_copy(self):
        return copy.deepcopy(self.cfg)

    def cfg_with_weight(self, weight, base=None):
        cfg = copy.deepcopy(base if base is not None else self.cfg)
        cfg["routes"][0]["split"]["weight"] = weight
        return cfg

    # -- admin ----------------------------------------------------------------------------

    def admin_request(self, method, path, body=None, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            data = None
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def scrape(self):
        st, body = self.admin_request("GET", "/metrics")
        self.assertEqual(st, 200, body)
        return parse_metrics(body.decode("utf-8", "replace"))

    def metric(self, name, **labels):
        return self.scrape().get((name, frozenset(labels.items())))

    def reloads(self, result):
        return self.metric("grayproxy_config_reloads_total", result=result) or 0.0

    def weight_metric(self, route="shop"):
        return self.metric("grayproxy_canary_weight_percent", route=route)

    def sighup_and_wait(self, result="success", timeout=10):
        """SIGHUP and wait until the reload counter of `result` went up by one."""
        before = self.reloads(result)
        self.proxy.send_signal(signal.SIGHUP)
        ok = harness.wait_until(lambda: self.reloads(result) >= before + 1, timeout=timeout)
        self.assertTrue(ok, "reload (%s) not counted within %ss; stderr:\n%s"
                        % (result, timeout, self.read_proxy_stderr()))
        self.assertEqual(self.reloads(result), before + 1)

    # -- traffic --------------------------------------------------------------------------

    def get(self, path="/", headers=(), conn=None, timeout=15):
        own = conn is None
        c = conn or RawConn(self.listen, timeout=timeout)
        try:
            c.send(request_bytes("GET", path, host="shop.test", headers=headers))
            return c.read_response("GET")
        finally:
            if own:
                c.close()

    def upstream_of(self, resp):
        return resp.get("x-upstream")

    def assert_serves(self, msg="", port=None):
        self.assert_proxy_alive()
        with RawConn(port or self.listen, timeout=15) as c:
            c.send(request_bytes("GET", "/alive", host="shop.test"))
            r = c.read_response()
        self.assertEqual(r.status, 200, "proxy no longer serves %s: %r" % (msg, r))

    def start_slow(self, delay_ms, path="/slow"):
        """Sends a slow request on a fresh connection; returns the connection (the response
        is read by the caller)."""
        c = RawConn(self.listen, timeout=60)
        c.send(request_bytes("GET", "%s?delay_ms=%d" % (path, delay_ms), host="shop.test"))
        return c

    def wait_exit(self, timeout):
        try:
            return self.proxy.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


# ---------------------------------------------------------------------------------------
# SIGHUP under load
# ---------------------------------------------------------------------------------------

class TestReloadUnderLoad(ReloadBase):

    def test_20_sighups_under_wrk_zero_errors_weight_follows_file(self):
        weights = [35, 70]
        wrk = subprocess.Popen(
            ["wrk", "-t2", "-c16", "-d10s", "--timeout", "5s",
             "http://127.0.0.1:%d/wrk" % self.listen],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            time.sleep(0.5)  # wrk connected and running
            t0 = time.monotonic()
            seen = []
            for i in range(20):
                w = weights[i % 2]
                self.write_config(self.cfg_with_weight(w))
                self.sighup_and_wait("success", timeout=5)
                got = harness.wait_until(lambda: self.weight_metric() == w, timeout=3)
                self.assertTrue(got, "reload %d: weight on /metrics is %r, file says %r"
                                % (i + 1, self.weight_metric(), w))
                seen.append(self.weight_metric())
                # spread the 20 reloads over the load (about 8 s in all)
                left = t0 + 0.4 * (i + 1) - time.monotonic()
                if left > 0:
                    time.sleep(left)
            self.assertIsNone(wrk.poll(), "wrk ended before the 20 reloads were done; the "
                              "reloads were not all under load")
            out, err = wrk.communicate(timeout=30)
        finally:
            if wrk.poll() is None:
                wrk.kill()
                wrk.wait(timeout=5)
        out = out.decode("utf-8", "replace")
        self.assertEqual(wrk.returncode, 0, out + err.decode("utf-8", "replace"))
        self.assertEqual(seen, [weights[i % 2] for i in range(20)])
        self.assertNotIn("Socket errors", out, out)
        self.assertNotIn("Non-2xx or 3xx responses", out, out)
        m = re.search(r"(\d+) requests in", out)
        self.assertTrue(m, out)
        self.assertGreater(int(m.group(1)), 1000, out)
        self.assertEqual(self.reloads("success"), 21.0)  # startup + 20
        self.assertEqual(self.reloads("failure"), 0.0)
        self.assertGreater(self.metric("grayproxy_config_last_reload_success_timestamp_seconds")
                           or 0, 0)
        # The last file said weights[1]; /status agrees.
        st, body = self.admin_request("GET", "/status")
        self.assertEqual(st, 200)
        self.assertIn('"weight_percent":%d' % weights[1], body.decode().replace(" ", ""))
        self.assert_serves("after 20 reloads under load")


# ---------------------------------------------------------------------------------------
# Invalid files, listeners, bind failures, endpoints, weights
# ---------------------------------------------------------------------------------------

class TestReload(ReloadBase):

    def test_invalid_file_keeps_old_config_and_counts_one_failure(self):
        self.write_config(self.cfg_with_weight(40))
        self.sighup_and_wait("success")
        self.assertEqual(self.weight_metric(), 40)
        ts_before = self.metric("grayproxy_config_last_reload_success_timestamp_seconds")

        bad = self.cfg_with_weight(140)
        bad["routes"][0]["match"]["path_prefix"] = "/nothing-else"  # would change routing
        path = self.write_config(bad)
        with open(path) as f:
            lines = f.read().splitlines()
        weight_line = next(i + 1 for i, l in enumerate(lines) if "weight: 140" in l)
        self.sighup_and_wait("failure")
        self.assertEqual(self.reloads("failure"), 1.0)
        self.assertEqual(self.reloads("success"), 2.0)
        self.assertEqual(self.weight_metric(), 40)
        self.assertEqual(self.metric("grayproxy_config_last_reload_success_timestamp_seconds"),
                         ts_before)
        # The old routing still serves ("/" still matches).
        r = self.get("/still-here")
        self.assertEqual(r.status, 200, r)
        # The error names file:line:col and the key path.
        err = harness.wait_until(
            lambda: re.search(r"grayproxy\.yaml:(\d+):(\d+): routes\[0\]\.split\.weight",
                              self.read_proxy_stderr()), timeout=3)
        self.assertTrue(err, self.read_proxy_stderr())
        self.assertEqual(int(err.group(1)), weight_line, self.read_proxy_stderr())

        # A YAML syntax error: also one more failure, nothing else.
        self.write_config("listeners: [this is not valid\n")
        self.sighup_and_wait("failure")
        self.assertEqual(self.reloads("failure"), 2.0)
        self.assertEqual(self.reloads("success"), 2.0)
        self.assertEqual(self.weight_metric(), 40)
        self.assertEqual(self.get("/still-here").status, 200)

        # A fixed file reloads.
        self.write_config(self.cfg_with_weight(15))
        self.sighup_and_wait("success")
        self.assertEqual(self.weight_metric(), 15)
        self.assertEqual(self.reloads("failure"), 2.0)
        self.assert_serves()

    def test_listener_added_and_removed(self):
        extra = harness.free_port()
        self.assertTrue(connect_refused(extra))
        cfg = self.cfg_copy()
        cfg["listeners"].append({"name": "extra", "address": "127.0.0.1:%d" % extra})
        self.write_config(cfg)
        self.sighup_and_wait("success")
        self.assertTrue(harness.wait_port(extra, timeout=5, proc=self.proxy),
                        "added listener not listening; stderr:\n" + self.read_proxy_stderr())
        self.assert_serves("on the added listener", port=extra)
        self.assert_serves("on the original listener")

        # Keep-alive connection on the listener being removed: it is not the acceptor, so the
        # request it is in the middle of is not affected; new connections are refused.
        self.write_config(self.cfg)
        self.sighup_and_wait("success")
        refused = harness.wait_until(lambda: connect_refused(extra), timeout=5)
        self.assertTrue(refused, "removed listener still accepts connections")
        self.assert_serves("on the original listener after removal")

        # And added again on the same port.
        self.write_config(cfg)
        self.sighup_and_wait("success")
        self.assertTrue(harness.wait_port(extra, timeout=5, proc=self.proxy))
        self.assert_serves("on the re-added listener", port=extra)

    def test_bind_failure_fails_reload_and_old_listeners_keep_serving(self):
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # no SO_REUSEPORT
        try:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen(8)
            held = blocker.getsockname()[1]
            cfg = self.cfg_with_weight(55)
            cfg["listeners"].append({"name": "held", "address": "127.0.0.1:%d" % held})
            self.write_config(cfg)
            self.sighup_and_wait("failure")
            self.assertEqual(self.reloads("success"), 1.0)
            self.assertEqual(self.weight_metric(), 10, "a failed reload must not apply the weight")
            self.assert_serves("after a failed bind")
            self.assertIn(str(held), self.read_proxy_stderr())
            # The admin API says the same.
            st, body = self.admin_request("POST", "/reload")
            self.assertEqual(st, 400, body)
            js = json.loads(body)
            self.assertEqual(js.get("result"), "failure", js)
            self.assertIn(str(held), js.get("error", ""), js)
            self.assertEqual(self.reloads("failure"), 2.0)
            self.assertEqual(self.weight_metric(), 10)
            self.assert_serves("after a second failed bind")
        finally:
            blocker.close()
        # The port is free now: the same file reloads.
        self.sighup_and_wait("success")
        self.assertTrue(harness.wait_port(held, timeout=5, proc=self.proxy))
        self.assertEqual(self.weight_metric(), 55)
        self.assert_serves("on the new listener", port=held)
        self.assert_serves("on the original listener")

    def test_live_admin_weight_survives_reload_without_yaml_weight_change(self):
        # Weight 10 in the file; the operator sets 100 through the admin API.
        st, body = self.admin_request("POST", "/routes/shop/weight", {"weight": 100})
        self.assertEqual(st, 200, body)
        self.assertEqual(self.weight_metric(), 100)
        for i in range(10):
            r = self.get("/", headers=[("x-user-id", "user-%d" % i)])
            self.assertEqual(self.upstream_of(r), "v2", r)

        # An unrelated edit: the live weight stays.
        cfg = self.cfg_copy()
        cfg["timeouts"]["idle"] = "6s"
        self.write_config(cfg)
        self.sighup_and_wait("success")
        self.assertEqual(self.weight_metric(), 100)
        st, body = self.admin_request("GET", "/status")
        self.assertEqual(st, 200)
        self.assertIn('"weight_percent":100', body.decode().replace(" ", ""))
        for i in range(10):
            r = self.get("/", headers=[("x-user-id", "user-%d" % i)])
            self.assertEqual(self.upstream_of(r), "v2", "live weight lost by the reload: %r" % r)

        # A YAML weight edit wins.
        self.write_config(self.cfg_with_weight(0, base=cfg))
        self.sighup_and_wait("success")
        self.assertEqual(self.weight_metric(), 0)
        for i in range(10):
            r = self.get("/", headers=[("x-user-id", "user-%d" % i)])
            self.assertEqual(self.upstream_of(r), "v1", "YAML weight edit not applied: %r" % r)

        # ... and the operator again, then the same file again: the operator's stays.
        st, body = self.admin_request("POST", "/routes/shop/weight", {"weight": 42.5})
        self.assertEqual(st, 200, body)
        self.sighup_and_wait("success")
        self.assertEqual(self.weight_metric(), 42.5)



class TestEndpointChange(ReloadBase):
    WEIGHT = 0  # everything to the stable cluster, whose endpoint the reload changes

    def warm_up(self, n=8):
        """n keep-alive client connections, each having made one request to v1 (so the
        pools of both workers hold connections to v1)."""
        conns = []
        for i in range(n):
            c = RawConn(self.listen, timeout=15)
            conns.append(c)
            r = self.get("/warm", headers=[("x-user-id", "a")], conn=c)
            self.assertEqual(self.upstream_of(r), "v1")
        self.assertGreater(established_to(self.port1), 0, "no pooled connection to v1")
        return conns

    def move_stable_to(self, port):
        cfg = self.cfg_with_weight(0)
        cfg["clusters"][0]["endpoints"] = ["127.0.0.1:%d" % port]
        self.write_config(cfg)
        self.sighup_and_wait("success")

    def test_endpoint_change_takes_effect_for_new_requests(self):
        _, port3 = self.start_upstream("v3")
        conns = self.warm_up()
        try:
            self.move_stable_to(port3)
            # New requests, on old keep-alive client connections and on fresh ones, go to v3.
            for c in conns:
                r = self.get("/after", headers=[("x-user-id", "a")], conn=c)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(self.upstream_of(r), "v3", "first request on a keep-alive "
                                 "connection after the reload: %r" % r)
            for i in range(20):
                r = self.get("/after-fresh", headers=[("x-user-id", "u%d" % i)])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(self.upstream_of(r), "v3", r)
            # No request reached v1 after the reload.
            before = harness.upstream_stats(self.port1)["requests"]
            for i in range(5):
                self.get("/again", headers=[("x-user-id", "z%d" % i)])
            self.assertEqual(harness.upstream_stats(self.port1)["requests"], before)
            # Pooled upstream connections to the removed endpoint are dropped (each worker
            # has served requests since the reload).
            dropped = harness.wait_until(lambda: established_to(self.port1) == 0, timeout=5)
            self.assertTrue(dropped, "%d connections to the removed endpoint still open"
                            % established_to(self.port1))
        finally:
            for c in conns:
                c.close()

    def test_request_in_flight_during_endpoint_change(self):
        _, port3 = self.start_upstream("v3")
        conns = self.warm_up()
        try:
            slow = self.start_slow(3000, path="/inflight")
            t0 = time.monotonic()
            time.sleep(0.3)
            self.move_stable_to(port3)
            # Both workers serve requests with the new configuration while the slow request
            # is still in flight.
            for c in conns:
                self.assertEqual(self.upstream_of(self.get("/after", conn=c)), "v3")
            for i in range(20):
                self.assertEqual(self.upstream_of(self.get("/after-fresh")), "v3")
            self.assertLess(time.monotonic() - t0, 2.5, "too slow: the slow request may be done")
            try:
                r = slow.read_response()
            finally:
                slow.close()
            # In-flight requests finish unaffected, on the old endpoint.
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.upstream_of(r), "v1")
            for i in range(10):
                self.assertEqual(self.upstream_of(self.get("/after-slow")), "v3")
            # The upstream connection of the in-flight request, too, is not kept for an
            # endpoint that is no longer configured.
            dropped = harness.wait_until(lambda: established_to(self.port1) == 0, timeout=5)
            self.assertTrue(dropped, "%d connections to the removed endpoint still open 5 s "
                            "after the in-flight request finished"
                            % established_to(self.port1))
        finally:
            for c in conns:
                c.close()


# ---------------------------------------------------------------------------------------
# POST /reload and its token
# ---------------------------------------------------------------------------------------

class TestAdminReload(ReloadBase):
    TOKEN = "s3cret-token-for-reload"

    def customize(self, cfg):
        path = os.path.join(self.tmp, "admin-token")
        with open(path, "w") as f:
            f.write(self.TOKEN + "\n")
        cfg["admin"]["token_file"] = path

    def auth(self, token=None):
        return {"Authorization": "Bearer " + (token or self.TOKEN)}

    def test_post_reload_success_failure_and_token(self):
        self.write_config(self.cfg_with_weight(25))
        # No token, a wrong token: 401, nothing reloaded.
        st, body = self.admin_request("POST", "/reload")
        self.assertEqual(st, 401, body)
        st, body = self.admin_request("POST", "/reload", headers=self.auth("wrong"))
        self.assertEqual(st, 401, body)
        st, body = self.admin_request("POST", "/reload",
                                      headers={"Authorization": self.TOKEN})
        self.assertEqual(st, 401, body)
        self.assertEqual(self.reloads("success"), 1.0)
        self.assertEqual(self.reloads("failure"), 0.0)
        self.assertEqual(self.weight_metric(), 10)
        # GET is not a reload.
        st, _ = self.admin_request("GET", "/reload", headers=self.auth())
        self.assertEqual(st, 405)
        self.assertEqual(self.reloads("success"), 1.0)

        st, body = self.admin_request("POST", "/reload", headers=self.auth())
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body), {"result": "success"})
        self.assertEqual(self.reloads("success"), 2.0)
        self.assertEqual(self.weight_metric(), 25)

        path = self.write_config(self.cfg_with_weight(250))
        st, body = self.admin_request("POST", "/reload", headers=self.auth())
        self.assertEqual(st, 400, body)
        js = json.loads(body)
        self.assertEqual(js.get("result"), "failure", js)
        self.assertRegex(js.get("error", ""),
                         re.escape(os.path.basename(path)) + r":\d+:\d+: routes\[0\]\.split\.weight")
        self.assertEqual(self.reloads("failure"), 1.0)
        self.assertEqual(self.reloads("success"), 2.0)
        self.assertEqual(self.weight_metric(), 25)
        self.assert_serves("after a failed POST /reload")

        # Reads need no token.
        st, _ = self.admin_request("GET", "/metrics")
        self.assertEqual(st, 200)


# ---------------------------------------------------------------------------------------
# SIGTERM: drain
# ---------------------------------------------------------------------------------------

class TestDrain(ReloadBase):

    def test_slow_request_completes_during_sigterm_and_exit_0(self):
        slow = self.start_slow(2000)
        try:
            time.sleep(0.5)  # the request is at the upstream
            t0 = time.monotonic()
            self.proxy.send_signal(signal.SIGTERM)
            # New connections are refused at once, while the process is still draining.
            refused = harness.wait_until(lambda: connect_refused(self.listen), timeout=1.0,
                                         interval=0.02)
            self.assertTrue(refused, "new connections still accepted after SIGTERM")
            self.assertIsNone(self.proxy.poll(), "proxy exited before the slow request finished")
            r = slow.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"], "/slow")
            self.assertEqual((r.get("connection") or "").lower(), "close", r)
            self.assertTrue(slow.is_closed(timeout=3), "connection not closed after the response")
        finally:
            slow.close()
        rc = self.wait_exit(timeout=8)
        self.assertEqual(rc, 0, "exit code %r; stderr:\n%s" % (rc, self.read_proxy_stderr()))
        # It waited for the request (about 1.5 s), but not for the 10 s drain timeout.
        self.assertLess(time.monotonic() - t0, 6.0)

    def test_ready_503_during_drain(self):
        st, body = self.admin_request("GET", "/ready")
        self.assertEqual(st, 200, body)
        slow = self.start_slow(3000)
        try:
            time.sleep(0.5)
            self.proxy.send_signal(signal.SIGTERM)
            ready = harness.wait_until(
                lambda: self.admin_request("GET", "/ready", timeout=2)[0] == 503, timeout=2)
            self.assertTrue(ready, "/ready did not turn 503 while draining")
            self.assertIsNone(self.proxy.poll(), "proxy no longer draining")
            st, _ = self.admin_request("GET", "/healthz")
            self.assertEqual(st, 200)
            r = slow.read_response()
            self.assertEqual(r.status, 200, r)
        finally:
            slow.close()
        rc = self.wait_exit(timeout=8)
        self.assertEqual(rc, 0, self.read_proxy_stderr())

    def test_idle_keepalive_connection_closed_by_drain(self):
        idle = RawConn(self.listen, timeout=10)
        slow = None
        try:
            r = self.get("/first", conn=idle)
            self.assertEqual(r.status, 200)
            self.assertNotEqual((r.get("connection") or "").lower(), "close")
            slow = self.start_slow(3000)
            time.sleep(0.5)
            t0 = time.monotonic()
            self.proxy.send_signal(signal.SIGTERM)
            self.assertTrue(idle.is_closed(timeout=2.0),
                            "idle keep-alive connection not closed by the drain")
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertIsNone(self.proxy.poll(), "closed only because the process exited")
            r = slow.read_response()
            self.assertEqual(r.status, 200, r)
        finally:
            idle.close()
            if slow:
                slow.close()
        self.assertEqual(self.wait_exit(timeout=8), 0, self.read_proxy_stderr())

    def test_sighup_during_drain_does_not_reopen_listeners(self):
        slow = self.start_slow(2000)
        try:
            time.sleep(0.5)
            self.proxy.send_signal(signal.SIGTERM)
            self.assertTrue(harness.wait_until(lambda: connect_refused(self.listen), timeout=1))
            self.proxy.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            self.assertTrue(connect_refused(self.listen), "a reload during drain reopened it")
            r = slow.read_response()
            self.assertEqual(r.status, 200, r)
        finally:
            slow.close()
        self.assertEqual(self.wait_exit(timeout=8), 0, self.read_proxy_stderr())


class TestSecondSigterm(ReloadBase):
    TIMEOUTS = {"request_header": "2s", "idle": "5s", "upstream_connect": "1s",
                "upstream_response": "60s", "drain": "30s"}

    def test_second_sigterm_exits_at_once(self):
        slow = self.start_slow(25000)
        try:
            time.sleep(0.5)
            self.proxy.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            self.assertIsNone(self.proxy.poll(), "exited without waiting for the slow request")
            t0 = time.monotonic()
            self.proxy.send_signal(signal.SIGTERM)
            rc = self.wait_exit(timeout=2.5)
            elapsed = time.monotonic() - t0
            self.assertIsNotNone(rc, "still running 2.5 s after the second SIGTERM; stderr:\n"
                                 + self.read_proxy_stderr())
            self.assertLess(elapsed, 2.0)
            self.assertEqual(rc, 0, self.read_proxy_stderr())
        finally:
            slow.close()


if __name__ == "__main__":
    unittest.main()
