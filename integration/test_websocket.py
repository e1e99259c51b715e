#!/usr/bin/python3
"""End-to-end tests of WebSocket pass-through (the data-path contract, "WebSockets"):
an upgrade request is routed and split like any other, Upgrade/Connection: upgrade are
forwarded, on 101 the proxy tunnels bytes both ways until either side closes or no byte
moved for timeouts.idle; the tunnel counts as one 1xx request when it ends, with one
access log line (status 101, duration = tunnel lifetime, tunnel bytes each way); a drain
closes tunnels after timeouts.drain; a 101 nobody asked for is a 502; an upgrade the
upstream refuses is plain HTTP.

Real binary ($GRAYPROXY_BIN), real WebSocket servers (ws_upstream.py, one process per
cluster, Debian's python3-websockets) and clients (websockets' asyncio client), a raw
upstream thread for the unrequested 101. Every wait is bounded in time and iterations."""

import asyncio
import hashlib
import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pki  # noqa: E402
from harness import RawConn, request_bytes  # noqa: E402

import websockets  # noqa: E402  (python3-websockets, Debian 12: 10.4)
import xxhash  # noqa: E402

SANITIZED = os.environ.get("GRAYPROXY_SANITIZED") == "1"
WS_UPSTREAM = os.path.join(harness.HERE, "ws_upstream.py")
# Time bounds only: the ASan build is several times slower.
SLOW = 3.0 if SANITIZED else 1.0


def expected_version(salt, key, weight_percent):
    """The README's split rule: bucket = XXH3_64(key, seed=XXH3_64(salt)) % 10000."""
    b = xxhash.xxh3_64_intdigest(key.encode(), seed=xxhash.xxh3_64_intdigest(salt.encode())) % 10000
    return "canary" if b < weight_percent * 100 else "stable"


def raise_nofile(want):
    """Raise this process's RLIMIT_NOFILE (children, the proxy and the upstreams, inherit
    it). As root the hard limit may be raised too. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_nofile(pid):
    """The soft 'Max open files' of a running process, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


async def recv(ws, timeout=10.0):
    return await asyncio.wait_for(ws.recv(), timeout * SLOW)


async def echo(ws, msg, timeout=10.0):
    await ws.send(msg)
    return await recv(ws, timeout)


class RawUpstream:
    """A one-shot raw HTTP upstream in a thread: reads each request head and answers it
    with the bytes `reply`, then waits (bounded) for the proxy to close the connection,
    recording when it did."""

    def __init__(self, reply, hold_s=10.0):
        self.reply = reply
        self.hold_s = hold_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.heads = []       # request heads received
        self.closed_after = []  # seconds from the reply to the proxy's close (None: not closed)
        self._halt = threading.Event()
        self._threads = []
        self._main = threading.Thread(target=self._run, daemon=True)
        self._main.start()

    def _run(self):
        for _ in range(10 ** 6):
            if self._halt.is_set():
                break
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn):
        try:
            conn.settimeout(5.0)
            buf = b""
            for _ in range(1000):
                if b"\r\n\r\n" in buf or len(buf) > 65536:
                    break
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            with self.lock:
                self.heads.append(buf.split(b"\r\n\r\n", 1)[0])
            conn.sendall(self.reply)
            t0 = time.monotonic()
            _, closed = harness.read_until_close(conn, t0 + self.hold_s)
            with self.lock:
                self.closed_after.append(time.monotonic() - t0 if closed else None)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self._halt.set()
        self._main.join(timeout=5)
        self.sock.close()
        for t in self._threads:
            t.join(timeout=self.hold_s + 5)


class WsBase(harness.ProxyTestCase):

    def start_ws_upstream(self, name):
        """Start ws_upstream.py; returns its port."""
        err_path = os.path.join(self.tmp, "ws-%s.stderr" % name)
        with open(err_path, "ab") as err:
            proc = subprocess.Popen([harness.PYTHON, WS_UPSTREAM, "--port", "0", "--name", name],
                                    stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        self._procs.append(("ws-" + name, proc))
        self._logs.append(err_path)
        line = harness.read_first_line(proc, timeout=15.0)
        if not line.startswith(b"LISTENING "):
            self.fail("ws upstream %s did not start: %r" % (name, line))
        return int(line.split()[1])

    def start(self, clusters, routes, timeouts=None, **overrides):
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        cfg = harness.base_config(self.listen, self.admin, clusters=clusters, routes=routes,
                                  state_dir=self.state_dir, **overrides)
        if timeouts:
            cfg["timeouts"] = dict(cfg["timeouts"], **timeouts)
        self.start_proxy(cfg, self.listen)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy), "admin not listening")

    def start_one(self, name="stable", timeouts=None, **overrides):
        """One ws upstream behind route "ws" (/ws), plain (no canary); returns its port."""
        port = self.start_ws_upstream(name)
        self.start([{"name": "wsc", "endpoints": ["127.0.0.1:%d" % port]}],
                   [{"name": "ws", "match": {"path_prefix": "/ws"}, "stable": "wsc"}],
                   timeouts=timeouts, **overrides)
        return port

    def connect(self, path, headers=(), port=None, open_timeout=10.0):
        return websockets.connect("ws://127.0.0.1:%d%s" % (port or self.listen, path),
                                  extra_headers=list(headers), max_size=None, compression=None,
                                  ping_interval=None, open_timeout=open_timeout * SLOW,
                                  close_timeout=2)

    def arun(self, coro, timeout):
        """Run coro in a fresh event loop, bounded by timeout seconds (scaled under ASan)."""
        return asyncio.run(asyncio.wait_for(coro, timeout * SLOW))

    def upstream_stats(self, ws_port):
        """The ws upstream's own counters, asked directly (not through the proxy)."""
        async def ask():
            async with self.connect("/stats", port=ws_port) as ws:
                return json.loads(await echo(ws, "stats"))
        return self.arun(ask(), 15)


class Tunnel(WsBase):

    def test_wss_through_a_tls_listener(self):
        # A TLS client side has no half-close: the tunnel pumps both ways over TLS and ends
        # with the WebSocket close handshake.
        p = pki.Pki(self.tmp)
        crt, key = p.leaf("listener", "ws.example", dns=["ws.example"], self_signed=True)
        port = self.start_ws_upstream("stable")
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        cfg = harness.base_config(self.listen, self.admin,
                                  clusters=[{"name": "wsc", "endpoints": ["127.0.0.1:%d" % port]}],
                                  routes=[{"name": "ws", "stable": "wsc"}],
                                  state_dir=self.state_dir)
        cfg["listeners"][0]["tls"] = {"cert_file": crt, "key_file": key}
        self.start_proxy(cfg, self.listen)
        ctx = ssl.create_default_context(cafile=crt)
        blob = os.urandom(300000)

        async def go():
            async with websockets.connect("wss://127.0.0.1:%d/ws" % self.listen, ssl=ctx,
                                          server_hostname="ws.example", max_size=None,
                                          compression=None, ping_interval=None,
                                          open_timeout=10 * SLOW, close_timeout=2) as ws:
                return [await echo(ws, "over tls"), await echo(ws, blob)]

        self.assertEqual(self.arun(go(), 30), ["over tls", blob])
        self.assertTrue(harness.wait_until(
            lambda: self.metric("grayproxy_requests_total", route="ws", code_class="1xx") == 1,
            timeout=5 * SLOW))
        self.assert_proxy_alive()

    def test_echo_text_and_binary_through_the_proxy(self):
        self.start_one("stable")
        blob = os.urandom(70000) + bytes(range(256))

        async def go():
            async with self.connect("/ws/echo?x=1") as ws:
                got = [await echo(ws, "hello, tunnel"), await echo(ws, b"\x00\x01\xfe\xff"),
                       await echo(ws, blob), await echo(ws, "caf\u00e9 \u2603")]
                info = json.loads(await echo(ws, "whoami"))
                # Still good after the whoami: many round trips on one tunnel.
                for i in range(50):
                    self.assertEqual(await echo(ws, "m%d" % i), "m%d" % i)
                return got, info

        got, info = self.arun(go(), 30)
        self.assertEqual(got[0], "hello, tunnel")
        self.assertEqual(got[1], b"\x00\x01\xfe\xff")
        self.assertIsInstance(got[1], bytes)
        self.assertEqual(got[2], blob)
        self.assertEqual(got[3], "caf\u00e9 \u2603")
        self.assertEqual(info["name"], "stable")
        self.assertEqual(info["path"], "/ws/echo?x=1")
        h = {}
        for k, v in info["headers"]:
            h.setdefault(k, []).append(v)
        self.assertEqual([v.lower() for v in h.get("upgrade", [])], ["websocket"], info["headers"])
        self.assertIn("upgrade", ",".join(h.get("connection", [])).lower(), info["headers"])
        self.assertIn("127.0.0.1", ",".join(h.get("x-forwarded-for", [])), info["headers"])
        self.assertEqual(h.get("x-gray-version"), ["stable"], info["headers"])
        self.assertEqual(len(h.get("sec-websocket-key", [])), 1, info["headers"])
        self.assert_proxy_alive()

    def test_split_sticks_each_user_to_one_version(self):
        stable = self.start_ws_upstream("stable")
        canary = self.start_ws_upstream("canary")
        self.start([{"name": "s", "endpoints": ["127.0.0.1:%d" % stable]},
                    {"name": "c", "endpoints": ["127.0.0.1:%d" % canary]}],
                   [{"name": "chat", "match": {"path_prefix": "/chat"}, "stable": "s", "canary": "c",
                     "split": {"weight": 50, "hash_on": {"header": "x-user-id"}}}])
        users = ["user-%d" % i for i in range(24)]
        want = {u: expected_version("chat", u, 50) for u in users}
        self.assertEqual(set(want.values()), {"stable", "canary"})  # both cohorts are exercised
        rounds = 4

        async def one(user):
            async with self.connect("/chat/room", headers=[("x-user-id", user)]) as ws:
                info = json.loads(await echo(ws, "whoami"))
                self.assertEqual(await echo(ws, "hi " + user), "hi " + user)
                xgv = [v for k, v in info["headers"] if k == "x-gray-version"]
                return user, info["name"], xgv

        async def go():
            out = []
            for _ in range(rounds):
                # Each round: every user at once, on a new connection each.
                out += await asyncio.gather(*[one(u) for u in users])
            return out

        seen = {}
        for user, name, xgv in self.arun(go(), 60):
            seen.setdefault(user, set()).add(name)
            self.assertEqual(xgv, [name], "x-gray-version %r on the %s server" % (xgv, name))
        for u in users:
            self.assertEqual(seen[u], {want[u]}, "user %s landed on %r over %d connections, want %s"
                             % (u, sorted(seen[u]), rounds, want[u]))

    def test_10mib_binary_message_intact(self):
        self.start_one("stable")
        n = 10 * 1024 * 1024
        blob = os.urandom(n)
        sha = hashlib.sha256(blob).hexdigest()

        async def go():
            async with self.connect("/ws/big") as ws:
                back = await echo(ws, blob, timeout=60)
                small = await echo(ws, "after")
                return back, small

        back, small = self.arun(go(), 90)
        self.assertIsInstance(back, bytes)
        self.assertEqual(len(back), n)
        self.assertEqual(hashlib.sha256(back).hexdigest(), sha)
        self.assertEqual(small, "after")

    def test_1000_concurrent_tunnels(self):
        # 1000 tunnels open at once, each doing round trips while all are open. Under ASan
        # 300: the sanitized proxy is several times slower per connection and per byte,
        # and its shadow memory grows with every connection's buffers; on the 2 shared
        # cores 1000 handshakes plus round trips would not fit a sensible bound. 300 still
        # needs more descriptors in the proxy (2 per tunnel) than the usual 1024 default.
        n = 300 if SANITIZED else 1000
        trips = 3
        need = 3 * n + 500  # this process: n clients; the proxy: 2n; the ws server: n
        got = raise_nofile(need)
        self.assertGreaterEqual(got, need, "cannot raise RLIMIT_NOFILE to %d" % need)
        port = self.start_one("stable", limits={"max_request_header_bytes": 8192,
                                                 "max_connections": 4 * n})
        self.assertGreaterEqual(proc_nofile(self.proxy.pid), 2 * n + 100)

        async def open_one(i, sem):
            async with sem:
                return await self.connect("/ws/many/%d" % i, open_timeout=30)

        async def trip(i, ws, go_ahead):
            await go_ahead.wait()
            for k in range(trips):
                msg = "tunnel %d trip %d" % (i, k)
                got = await echo(ws, msg, timeout=60)
                if got != msg:
                    return "tunnel %d: sent %r got %r" % (i, msg, got)
            return None

        async def go():
            sem = asyncio.Semaphore(64)  # handshakes in flight at once
            socks = []
            try:
                opened = await asyncio.gather(*[open_one(i, sem) for i in range(n)],
                                              return_exceptions=True)
                socks = [w for w in opened if not isinstance(w, BaseException)]
                errors = [repr(e) for e in opened if isinstance(e, BaseException)]
                self.assertEqual(len(errors), 0, "%d of %d tunnels failed to open, e.g. %s"
                                 % (len(errors), n, errors[:3]))
                # All open at the same time: the proxy and the server both see them.
                active = self.metric("grayproxy_downstream_connections_active")
                async with self.connect("/stats", port=port) as st:
                    server_open = json.loads(await echo(st, "stats"))["open"] - 1
                go_ahead = asyncio.Event()
                tasks = [asyncio.get_running_loop().create_task(trip(i, w, go_ahead))
                         for i, w in enumerate(socks)]
                go_ahead.set()
                results = await asyncio.gather(*tasks)
                return active, server_open, [r for r in results if r]
            finally:
                await asyncio.gather(*[w.close() for w in socks], return_exceptions=True)

        t0 = time.monotonic()
        active, server_open, bad = self.arun(go(), 240)
        elapsed = time.monotonic() - t0
        sys.stderr.write("\n%d tunnels x %d round trips in %.1f s\n" % (n, trips, elapsed))
        self.assertGreaterEqual(server_open, n, "the ws server saw %d open at once, want %d"
                                % (server_open, n))
        self.assertGreaterEqual(active, n, "grayproxy_downstream_connections_active %r, want >= %d"
                                % (active, n))
        self.assertEqual(bad, [], "%d tunnels got wrong echoes, e.g. %s" % (len(bad), bad[:3]))
        self.assert_proxy_alive()


class Accounting(WsBase):

    def read_log_lines(self, path, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        lines = []
        for _ in range(int(timeout / 0.1) + 2):
            if os.path.exists(path):
                with open(path) as f:
                    lines = [json.loads(l) for l in f.read().splitlines() if l.strip()]
                hit = [e for e in lines if pred(e)]
                if hit:
                    return hit
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        self.fail("no matching access log line within %.0f s; lines: %r" % (timeout, lines[-5:]))

    def test_metrics_and_access_log_after_the_tunnel_closes(self):
        log_path = os.path.join(self.tmp, "access.log")
        port = self.start_one("stable", access_log={"path": log_path, "format": "json"})
        key = ("grayproxy_requests_total", frozenset({"route": "ws", "version": "stable",
                                                      "code_class": "1xx"}.items()))
        before = self.metrics().get(key, 0.0)
        # Client -> server payload bytes, each echoed back (server -> client the same).
        msgs = ["x" * 1000, b"\x01" * 3000, "y" * 500]
        late = ["z" * 1000, b"w" * 1000]  # after the mid-tunnel scrape
        payload = sum(len(m) for m in msgs + late)

        async def go():
            t_start = time.monotonic()
            async with self.connect("/ws/acct?q=secret") as ws:
                t_open = time.monotonic()
                for m in msgs:
                    self.assertEqual(await echo(ws, m), m)
                await asyncio.sleep(0.5)
                during = self.metrics().get(key, 0.0)  # not counted while the tunnel is open
                for m in late:
                    self.assertEqual(await echo(ws, m), m)
                await asyncio.sleep(max(0.0, 1.1 - (time.monotonic() - t_open)))
                held = time.monotonic() - t_open
            return during, held, time.monotonic() - t_start

        during, held, wall = self.arun(go(), 30)
        self.assertGreaterEqual(held, 1.1)
        self.assertEqual(during, before, "the tunnel was counted before it ended")

        def counted():
            return self.metrics().get(key, 0.0) >= before + 1
        self.assertTrue(harness.wait_until(counted, timeout=10), "requests_total{code_class=1xx} "
                        "for route ws/stable did not count the tunnel: %r -> %r"
                        % (before, self.metrics().get(key, 0.0)))
        self.assertEqual(self.metrics().get(key, 0.0), before + 1)

        (e,) = self.read_log_lines(log_path, lambda e: e.get("path") == "/ws/acct")
        self.assertEqual(e["status"], 101, e)
        self.assertEqual((e["route"], e["version"], e["method"]), ("ws", "stable", "GET"), e)
        self.assertEqual(e["upstream"], "127.0.0.1:%d" % port, e)
        self.assertGreaterEqual(e["duration_ms"], 900, e)
        self.assertLessEqual(e["duration_ms"], (wall + 2.0 * SLOW) * 1000, e)
        # Tunnel bytes each way: at least the payloads (frames add headers, and the
        # client's are masked); far less than twice them (not the sum of both ways).
        self.assertGreaterEqual(e["bytes_in"], payload, e)
        self.assertGreaterEqual(e["bytes_out"], payload, e)
        self.assertLess(e["bytes_in"], payload + 4096, e)
        self.assertLess(e["bytes_out"], payload + 4096, e)
        self.assertNotIn("secret", json.dumps(e))


class Timeouts(WsBase):

    def test_idle_tunnel_is_closed_after_timeouts_idle(self):
        port = self.start_one("stable", timeouts={"idle": "1s"})

        async def go():
            async with self.connect("/ws/quiet") as ws:
                self.assertEqual(await echo(ws, "last words"), "last words")
                t_last = time.monotonic()
                try:
                    m = await recv(ws, timeout=6.0)
                    return "got a message %r" % (m,), None
                except websockets.ConnectionClosed:
                    return None, time.monotonic() - t_last

        err, after = self.arun(go(), 30)
        self.assertIsNone(err)
        self.assertGreaterEqual(after, 0.9, "closed %.2f s after the last byte, before idle (1 s)" % after)
        self.assertLessEqual(after, 2.5 * SLOW, "closed only %.2f s after the last byte" % after)
        # The proxy closed the upstream side too.
        self.assertTrue(harness.wait_until(lambda: self.upstream_stats(port)["open"] == 1, timeout=5),
                        "the upstream still has the idle tunnel open: %r" % self.upstream_stats(port))

    def test_server_push_keeps_a_silent_client_tunnel_open(self):
        self.start_one("stable", timeouts={"idle": "1s"})

        async def go():
            async with self.connect("/ws/feed?push_ms=300") as ws:
                t0 = time.monotonic()
                pushes = []
                for _ in range(1000):
                    left = 3.0 - (time.monotonic() - t0)
                    if left <= 0:
                        break
                    try:
                        pushes.append(await asyncio.wait_for(ws.recv(), left))
                    except asyncio.TimeoutError:
                        break
                # The client spoke for the first time after 3 s: the tunnel still works.
                await ws.send("still there?")
                for _ in range(100):
                    m = await recv(ws)
                    if m == "still there?":
                        return pushes, True
                    pushes.append(m)
                return pushes, False

        pushes, echoed = self.arun(go(), 30)
        self.assertTrue(echoed)
        self.assertGreaterEqual(len(pushes), 7, pushes)
        self.assertTrue(all(p.startswith("push ") for p in pushes), pushes)


class Drain(WsBase):

    def test_sigterm_keeps_tunnels_until_drain_timeout_then_exits_0(self):
        self.start_one("stable", timeouts={"drain": "1s"})

        async def go():
            async with self.connect("/ws/drain") as ws:
                self.assertEqual(await echo(ws, "before"), "before")
                t_sig = time.monotonic()
                self.proxy.send_signal(signal.SIGTERM)
                during = []
                for at in (0.1, 0.3, 0.5):
                    await asyncio.sleep(max(0.0, t_sig + at - time.monotonic()))
                    during.append(await echo(ws, "during %.1f" % at, timeout=2))
                try:
                    m = await recv(ws, timeout=8)
                    return during, "got %r instead of the close" % (m,), None
                except websockets.ConnectionClosed:
                    return during, None, time.monotonic() - t_sig

        during, err, closed_after = self.arun(go(), 30)
        self.assertEqual(during, ["during 0.1", "during 0.3", "during 0.5"])
        self.assertIsNone(err)
        self.assertGreaterEqual(closed_after, 0.8, "tunnel closed %.2f s into a 1 s drain" % closed_after)
        self.assertLessEqual(closed_after, 3.0 * SLOW, "tunnel closed %.2f s after SIGTERM" % closed_after)
        try:
            code = self.proxy.wait(timeout=5 * SLOW)
        except subprocess.TimeoutExpired:
            self.fail("proxy still running %.0f s after SIGTERM" % (5 * SLOW + closed_after))
        self.assertEqual(code, 0, self.read_proxy_stderr())


class UpgradeEdgeCases(WsBase):

    def test_unrequested_101_is_a_502(self):
        raw = RawUpstream(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\n\r\nthese bytes are not HTTP\r\n\r\n")
        self.addCleanup(raw.stop)
        self.start([{"name": "raw", "endpoints": ["127.0.0.1:%d" % raw.port]}],
                   [{"name": "raw", "match": {"path_prefix": "/"}, "stable": "raw"}])
        key = ("grayproxy_requests_total", frozenset({"route": "raw", "version": "stable",
                                                      "code_class": "5xx"}.items()))
        before = self.metrics().get(key, 0.0)
        with RawConn(self.listen, timeout=10 * SLOW) as c:
            c.send(request_bytes("GET", "/plain"))
            r = c.read_response(skip_1xx=False)
        self.assertEqual(r.status, 502, "%r %r" % (r, r.body[:200]))
        self.assertNotIn(b"these bytes", r.body)
        self.assertTrue(harness.wait_until(lambda: raw.closed_after, timeout=10 * SLOW))
        self.assertIsNotNone(raw.closed_after[0], "the proxy kept the upstream connection open")
        self.assertIn(b"GET /plain HTTP/1.1", raw.heads[0])
        self.assertTrue(harness.wait_until(lambda: self.metrics().get(key, 0.0) >= before + 1, timeout=10))
        self.assert_proxy_alive()

    def test_refused_upgrade_is_plain_http(self):
        _, up = self.start_upstream("plain")  # upstream.py: answers 200 JSON, never upgrades
        self.start([{"name": "plain", "endpoints": ["127.0.0.1:%d" % up]}],
                   [{"name": "plain", "match": {"path_prefix": "/"}, "stable": "plain"}])
        upgrade = [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                   ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
        with RawConn(self.listen, timeout=10 * SLOW) as c:
            c.send(request_bytes("GET", "/upgrade-me", headers=upgrade))
            first = c.read_response(skip_1xx=False)
            self.assertEqual(first.status, 200, first)
            js = first.json()
            self.assertEqual(js["path"], "/upgrade-me")
            self.assertEqual(js["headers"].get("upgrade"), "websocket", js["headers"])
            # Plain HTTP goes on on the same connection: the next request is parsed as one,
            # and so is a POST with a body (nothing is tunnelled).
            c.send(request_bytes("GET", "/after"))
            second = c.read_response()
            c.send(request_bytes("POST", "/post", body=b"\x81\x05hello"))
            third = c.read_response()
        self.assertEqual((second.status, second.json()["path"]), (200, "/after"))
        self.assertEqual((third.status, third.json()["path"], third.json()["body_len"]), (200, "/post", 7))
        self.assert_proxy_alive()


if __name__ == "__main__":
    unittest.main(verbosity=2)
