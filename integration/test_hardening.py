#!/usr/bin/python3
"""End-to-end tests of the hardening rules (RFC 9112 sections 6-7 and 11.2, modelled on
HAProxy and Envoy): framing, limits and slow clients.

Every malformed request is followed, on the same connection, by a valid "smuggled"
request (GET /smuggled); the in-process upstream records every byte it receives, and no
test may ever find "smuggled" in them. Malformed upstream responses come from the same
upstream on a raw socket, followed by a second "smuggled" response the client must never
see. After each case the proxy must still serve a fresh request."""

import os
import select
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RawConn, status_lines  # noqa: E402

# Under ASan+UBSan (ctest sets GRAYPROXY_SANITIZED=1 in the sanitizer build) the proxy is
# several times slower and its RSS includes shadow memory: time bounds get more slack and
# the RSS bound is not checked. Functional checks are the same.
SANITIZED = os.environ.get("GRAYPROXY_SANITIZED") == "1"
SLACK = 2.0 if SANITIZED else 1.0

HEADER_TIMEOUT_S = 1.0
LINE_LIMIT = 2048
HEAD_LIMIT = 8192
BODY_LIMIT = 1000
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n"


class RecordingUpstream:
    """A raw-socket HTTP/1.1 upstream on 127.0.0.1: records every byte and request path it
    receives. GET /raw/NAME answers with raw_responses[NAME] verbatim, then waits for the
    proxy to close the connection (recorded in closed_by_peer). GET /big?N answers N
    bytes, counting what it managed to send. Anything else: 200 with the path as body."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.received = bytearray()
        self.paths = []
        self.raw_responses = {}
        self.closed_by_peer = []  # NAME of each /raw connection the proxy closed
        self.big_sent = 0
        self.stopping = False
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def saw(self, needle):
        with self.lock:
            return needle in self.received

    def _accept(self):
        for _ in range(100000):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    def _recv(self, conn, buf):
        data = conn.recv(65536)
        if not data:
            raise EOFError
        with self.lock:
            self.received += data
        buf += data

    def _serve(self, conn):
        conn.settimeout(10)
        buf = bytearray()
        try:
            for _ in range(10000):
                for _ in range(10000):
                    if b"\r\n\r\n" in buf:
                        break
                    self._recv(conn, buf)
                head, _, rest = bytes(buf).partition(b"\r\n\r\n")
                buf = bytearray(rest)
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1].decode("latin-1") if b" " in lines[0] else "?"
                with self.lock:
                    self.paths.append(path)
                fields = {}
                for line in lines[1:]:
                    k, _, v = line.partition(b":")
                    fields[k.strip().lower()] = v.strip().lower()
                if fields.get(b"transfer-encoding") == b"chunked":
                    buf = self._skip_chunked(conn, buf)
                else:
                    n = int(fields.get(b"content-length", b"0") or 0)
                    while len(buf) < n:
                        self._recv(conn, buf)
                    del buf[:n]
                if path.startswith("/raw/"):
                    name = path[5:]
                    conn.sendall(self.raw_responses[name])
                    conn.settimeout(5)
                    try:
                        for _ in range(1000):
                            if not conn.recv(65536):
                                break
                        with self.lock:
                            self.closed_by_peer.append(name)
                    except OSError:
                        with self.lock:
                            self.closed_by_peer.append(name)
                    return
                if path.startswith("/big?"):
                    self._send_big(conn, int(path[5:]))
                    continue
                body = path.encode("latin-1")
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (EOFError, OSError, ValueError, IndexError):
            pass
        finally:
            conn.close()

    def _skip_chunked(self, conn, buf):
        for _ in range(100000):
            for _ in range(10000):
                if b"\r\n" in buf:
                    break
                self._recv(conn, buf)
            line, _, rest = bytes(buf).partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            buf = bytearray(rest)
            while len(buf) < size + 2:
                self._recv(conn, buf)
            del buf[:size + 2]
            if size == 0:
                return buf
        raise ValueError("too many chunks")

    def _send_big(self, conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
        piece = b"x" * 65536
        sent = 0
        while sent < n:
            k = min(len(piece), n - sent)
            conn.sendall(piece[:k])
            sent += k
            with self.lock:
                self.big_sent = sent


class HardeningBase(harness.ProxyTestCase):

    limits = {"max_request_header_bytes": HEAD_LIMIT, "max_request_line_bytes": LINE_LIMIT,
              "max_request_body_bytes": BODY_LIMIT}

    def setUp(self):
        super().setUp()
        self.up = RecordingUpstream()
        self.addCleanup(self.up.stop)
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        cfg = harness.base_config(
            self.listen, self.admin,
            clusters=[{"name": "c", "endpoints": ["127.0.0.1:%d" % self.up.port]}],
            routes=[{"name": "r", "match": {"path_prefix": "/"}, "stable": "c"}],
            state_dir=self.state_dir, workers=1)
        cfg["timeouts"]["request_header"] = "%dms" % int(HEADER_TIMEOUT_S * 1000)
        cfg["limits"] = dict(self.limits)
        self.start_proxy(cfg, self.listen)

    def tearDown(self):
        self.up.stop()
        super().tearDown()

    # -- helpers ------------------------------------------------------------------------

    def assert_serves(self, label):
        self.assert_proxy_alive()
        with RawConn(self.listen, timeout=5) as c:
            c.send(harness.request_bytes("GET", "/fresh"))
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"/fresh"),
                         "%s: the proxy no longer serves a normal request" % label)

    def exchange(self, payload, timeout=5.0):
        """Sends payload, reads until the proxy closes. Returns (bytes, closed, seconds)."""
        t0 = time.monotonic()
        with RawConn(self.listen, timeout=timeout) as c:
            try:
                c.send(payload)
            except OSError:
                pass  # the proxy may answer and close before it has read everything
            out, closed = harness.read_until_close(c.sock, t0 + timeout)
        return out, closed, time.monotonic() - t0

    # grayproxy_downstream_rejected_total's reason for each refusal status; a 400 is a
    # malformed head or body, depending on where the framing broke.
    REJECT_REASONS = {400: ("invalid_head", "invalid_body"), 408: ("head_timeout",),
                      413: ("body_too_large",), 414: ("request_line_too_long",),
                      431: ("head_too_large",), 405: ("unsupported",), 417: ("unsupported",),
                      505: ("unsupported",)}

    def rejected(self):
        return {r: self.metric("grayproxy_downstream_rejected_total", reason=r)
                for reasons in self.REJECT_REASONS.values() for r in reasons}

    def assert_rejected_once(self, label, before, want):
        """One more rejection was counted since `before`, under a reason fitting `want`."""
        after = self.rejected()
        grown = {r: after[r] - before[r] for r in after if after[r] != before[r]}
        self.assertEqual(sum(grown.values()), 1, "%s: rejections counted %r" % (label, grown))
        self.assertIn(next(iter(grown)), self.REJECT_REASONS[want], label)

    def assert_refused(self, label, payload, want=400, smuggle=True):
        """payload (then a smuggled request on the same connection) is answered `want`
        alone, the connection is closed, nothing smuggled reaches the upstream, and the
        rejection is counted once with its reason."""
        data = payload + (SMUGGLED if smuggle else b"")
        before = self.rejected()
        out, closed, elapsed = self.exchange(data)
        codes = status_lines(out)
        self.assertEqual(codes, [want], "%s: expected only a %d, got %r; stderr:\n%s"
                         % (label, want, out[:400], self.read_proxy_stderr()[-2000:]))
        self.assertTrue(closed, "%s: connection left open after %d" % (label, want))
        self.assertLess(elapsed, 3.0 * SLACK, label)
        self.assertFalse(self.up.saw(b"smuggled"), "%s: smuggled request reached the upstream: %r"
                         % (label, self.up.paths))
        self.assert_rejected_once(label, before, want)
        self.assert_serves(label)

    def check_cases(self, cases, want=400):
        for label, payload in cases:
            with self.subTest(label):
                self.assert_refused(label, payload, want)


def post(headers, body=b"", version=b"HTTP/1.1", host=b"Host: example.test\r\n"):
    return b"POST /bad " + version + b"\r\n" + host + headers + b"\r\n" + body


class TestRequestFraming(HardeningBase):

    def test_transfer_encoding_with_content_length(self):
        self.check_cases([
            ("CL then TE", post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                                b"5\r\nhello\r\n0\r\n\r\n")),
            ("TE then CL", post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                                b"5\r\nhello\r\n0\r\n\r\n")),
            ("CL 0 then TE", post(b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                                  b"0\r\n\r\n")),
        ])

    def test_transfer_encoding_other_than_final_chunked(self):
        body = b"5\r\nhello\r\n0\r\n\r\n"
        self.check_cases([
            ("unknown coding", post(b"Transfer-Encoding: gzip\r\n", b"hello")),
            ("unknown coding before chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", body)),
            ("chunked not last", post(b"Transfer-Encoding: chunked, identity\r\n", body)),
            ("chunked twice in a list", post(b"Transfer-Encoding: chunked, chunked\r\n", body)),
            ("repeated field", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", body)),
            ("coding then chunked fields", post(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", body)),
            ("xchunked", post(b"Transfer-Encoding: xchunked\r\n", body)),
            ("parameter", post(b"Transfer-Encoding: chunked;q=1\r\n", body)),
            ("vertical tab", post(b"Transfer-Encoding: \x0bchunked\r\n", body)),
            ("trailing comma", post(b"Transfer-Encoding: chunked,\r\n", body)),
            ("folded value", post(b"Transfer-Encoding:\r\n chunked\r\n", body)),
        ])

    def test_malformed_content_length(self):
        self.check_cases([
            ("trailing letter", post(b"Content-Length: 5x\r\n", b"hello")),
            ("plus sign", post(b"Content-Length: +5\r\n", b"hello")),
            ("negative", post(b"Content-Length: -5\r\n", b"hello")),
            ("list of equal values", post(b"Content-Length: 5, 5\r\n", b"hello")),
            ("two numbers", post(b"Content-Length: 5 5\r\n", b"hello")),
            ("hex", post(b"Content-Length: 0x5\r\n", b"hello")),
            ("empty", post(b"Content-Length: \r\n", b"hello")),
            ("overflow", post(b"Content-Length: 99999999999999999999999\r\n", b"hello")),
            ("differing repeats", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")),
            ("equal repeats", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")),
        ])

    def test_bad_chunk_sizes(self):
        te = b"Transfer-Encoding: chunked\r\n"
        self.check_cases([
            ("0x prefix", post(te, b"0x5\r\nhello\r\n0\r\n\r\n")),
            ("non-hex", post(te, b"5g\r\nhello\r\n0\r\n\r\n")),
            ("negative", post(te, b"-5\r\nhello\r\n0\r\n\r\n")),
            ("leading space", post(te, b" 5\r\nhello\r\n0\r\n\r\n")),
            ("overflow", post(te, b"10000000000000005\r\nhello\r\n0\r\n\r\n")),
            ("empty size", post(te, b"\r\nhello\r\n0\r\n\r\n")),
            ("after a good chunk", post(te, b"5\r\nhello\r\nzz\r\nhello\r\n0\r\n\r\n")),
        ])

    def test_bad_chunk_line_endings(self):
        te = b"Transfer-Encoding: chunked\r\n"
        self.check_cases([
            ("bare LF after size", post(te, b"5\nhello\r\n0\r\n\r\n")),
            ("bare LF after data", post(te, b"5\r\nhello\n0\r\n\r\n")),
            ("data longer than size", post(te, b"5\r\nhelloXX\r\n0\r\n\r\n")),
            ("bare CR after size", post(te, b"5\rhello\r\n0\r\n\r\n")),
        ])

    def test_whitespace_before_colon(self):
        self.check_cases([
            ("space in Host", b"GET / HTTP/1.1\r\nHost : example.test\r\n\r\n"),
            ("tab in Content-Length", post(b"Content-Length\t: 5\r\n", b"hello")),
            ("space in Transfer-Encoding", post(b"Transfer-Encoding : chunked\r\n",
                                                b"5\r\nhello\r\n0\r\n\r\n")),
        ])

    def test_control_characters(self):
        self.check_cases([
            ("NUL in a name", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-\x00A: 1\r\n\r\n"),
            ("NUL in a value", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: a\x00b\r\n\r\n"),
            ("bare CR in a value", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: a\rb\r\n\r\n"),
            ("bare CR in a name", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-\rA: 1\r\n\r\n"),
            ("bare LF line end", b"GET / HTTP/1.1\r\nHost: example.test\nX-A: 1\r\n\r\n"),
            ("DEL in a value", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: a\x7fb\r\n\r\n"),
        ])

    def test_obs_fold(self):
        self.check_cases([
            ("fold with space", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: a\r\n b\r\n\r\n"),
            ("fold with tab", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: a\r\n\tb\r\n\r\n"),
            ("folded Content-Length", post(b"Content-Length: 5\r\n 5\r\n", b"hello")),
            ("space before the first field", b"GET / HTTP/1.1\r\n Host: example.test\r\n\r\n"),
        ])

    def test_transfer_encoding_in_http10(self):
        self.check_cases([
            ("HTTP/1.0 chunked", post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n",
                                      version=b"HTTP/1.0")),
        ])

    def test_missing_or_repeated_host(self):
        self.check_cases([
            ("missing", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"),
            ("repeated", b"GET / HTTP/1.1\r\nHost: example.test\r\nHost: example.test\r\n\r\n"),
            ("repeated, different", b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"),
        ])

    def test_valid_requests_still_pass(self):
        # The rules refuse only what is ambiguous: the usual framings go through unchanged.
        with RawConn(self.listen, timeout=5) as c:
            c.send(post(b"Transfer-Encoding: Chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"))
            self.assertEqual(c.read_response().status, 200)
            c.send(post(b"Content-Length: 5\r\n", b"hello"))
            self.assertEqual(c.read_response().status, 200)
            c.send(b"GET /ok HTTP/1.1\r\nHost: example.test\r\nX-A: a \t b\r\n\r\n")
            self.assertEqual(c.read_response().body, b"/ok")


class TestUnsupported(HardeningBase):

    def test_well_formed_but_unsupported_requests(self):
        self.assert_refused("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: example.test\r\n\r\n", 505)
        self.assert_refused("HTTP/3.1", b"GET / HTTP/3.1\r\nHost: example.test\r\n\r\n", 505)
        self.assert_refused("not a version", b"GET / HTXP/1.1\r\nHost: example.test\r\n\r\n", 400)
        self.assert_refused("CONNECT", b"CONNECT example.test:443 HTTP/1.1\r\n"
                                       b"Host: example.test:443\r\n\r\n", 405)
        self.assert_refused("unknown expectation",
                            post(b"Expect: 200-ok\r\nContent-Length: 5\r\n", b"hello"), 417)


    def test_higher_minor_version_is_served_as_http11(self):
        # RFC 9112 2.3: a higher minor version is processed as the highest one implemented.
        with RawConn(self.listen, timeout=5) as c:
            c.send(b"GET /minor HTTP/1.2\r\nHost: example.test\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.version, r.status, r.body), ("HTTP/1.1", 200, b"/minor"))
            c.send(harness.request_bytes("GET", "/again"))  # and the connection stays open
            self.assertEqual(c.read_response().status, 200)


class TestLimits(HardeningBase):

    def test_request_line_too_long_414(self):
        target = "/" + "a" * (LINE_LIMIT + 100)
        self.assert_refused("long request line", harness.request_bytes("GET", target), 414)
        # Refused as it arrives, before its end is even sent.
        out, closed, _ = self.exchange(b"GET /" + b"b" * (LINE_LIMIT + 100))
        self.assertEqual(status_lines(out), [414], out[:200])
        self.assertTrue(closed)
        # At the limit it passes.
        with RawConn(self.listen, timeout=5) as c:
            t = "/" + "c" * (LINE_LIMIT - len("GET  HTTP/1.1") - 1)
            c.send(harness.request_bytes("GET", t))
            self.assertEqual(c.read_response().status, 200)

    def test_head_too_large_431(self):
        big = "v" * (HEAD_LIMIT + 100)
        self.assert_refused("one huge field", harness.request_bytes("GET", "/", headers=[("X-Big", big)]), 431)

    def test_too_many_headers_431(self):
        # 101 small fields: far below the byte limit, above the 100-field limit.
        many = [("X-H%d" % i, "v") for i in range(101)]
        payload = harness.request_bytes("GET", "/", headers=many)
        self.assertLess(len(payload), HEAD_LIMIT // 2)
        self.assert_refused("101 fields", payload, 431)
        with RawConn(self.listen, timeout=5) as c:  # 99 fields + Host: fine
            c.send(harness.request_bytes("GET", "/", headers=many[:99]))
            self.assertEqual(c.read_response().status, 200)

    def test_body_too_large_413_content_length(self):
        self.assert_refused("Content-Length over the limit",
                            post(b"Content-Length: %d\r\n" % (BODY_LIMIT + 1), b"x" * (BODY_LIMIT + 1)), 413)

    def test_body_too_large_413_chunked(self):
        chunk = b"%x\r\n%s\r\n" % (400, b"y" * 400)
        self.assert_refused("chunks over the limit",
                            post(b"Transfer-Encoding: chunked\r\n", chunk * 3 + b"0\r\n\r\n"), 413)
        # Under the limit, chunked passes.
        with RawConn(self.listen, timeout=5) as c:
            c.send(post(b"Transfer-Encoding: chunked\r\n", chunk * 2 + b"0\r\n\r\n"))
            self.assertEqual(c.read_response().status, 200)


class TestMaxConnections(HardeningBase):

    limits = dict(HardeningBase.limits, max_connections=2)  # one worker: 2 connections

    def test_refusals_are_counted(self):
        # The connection of start_proxy's readiness probe must be gone first.
        self.assertTrue(harness.wait_until(
            lambda: self.metric("grayproxy_downstream_connections_active") == 0, timeout=5))
        before = self.metric("grayproxy_connections_refused_total", reason="max_connections")
        held = [RawConn(self.listen, timeout=5) for _ in range(2)]
        try:
            for c in held:  # both accepted and served: the worker is at its limit
                c.send(harness.request_bytes("GET", "/held"))
                self.assertEqual(c.read_response().status, 200)
            extra = 3
            for i in range(extra):
                out, closed, _ = self.exchange(harness.request_bytes("GET", "/over"), timeout=3)
                self.assertEqual((out, closed), (b"", True), "connection %d over the limit" % i)
            self.assertEqual(
                self.metric("grayproxy_connections_refused_total", reason="max_connections") - before,
                extra)
            self.assertIn("connection limit reached", self.read_proxy_stderr())
            self.assertNotIn("/over", self.up.paths)
        finally:
            for c in held:
                c.close()
        self.assertTrue(harness.wait_until(
            lambda: self.metric("grayproxy_downstream_connections_active") == 0, timeout=5))
        self.assert_serves("after refusing connections")


class TestSlowClients(HardeningBase):

    def test_trickling_head_cut_off_with_408(self):
        # One byte every 0.2 s of a head that would take ~8 s: answered 408 at the
        # request_header deadline (1 s), not after.
        payload = harness.request_bytes("GET", "/trickle", headers=[("X-Pad", "p" * 20)])
        before = self.rejected()
        with RawConn(self.listen, timeout=5) as c:
            t0 = time.monotonic()
            out = bytearray()
            for i in range(len(payload)):
                try:
                    c.send(payload[i:i + 1])
                except OSError:
                    break
                r, _, _ = select.select([c.sock], [], [], 0.2)
                if r:
                    break
                if time.monotonic() - t0 > 5:
                    break
            out += c.read_until_close(timeout=3)
            elapsed = time.monotonic() - t0
        self.assertEqual(status_lines(bytes(out)), [408], bytes(out[:200]))
        self.assertGreater(elapsed, HEADER_TIMEOUT_S * 0.9)
        self.assertLess(elapsed, HEADER_TIMEOUT_S + 0.6 * SLACK, "408 came late")
        self.assertNotIn("/trickle", self.up.paths)
        self.assert_rejected_once("trickling head", before, 408)
        self.assert_serves("after a trickling client")

    def test_slow_reader_of_a_large_response_is_back_pressured(self):
        # A client reading 256 MiB at ~4 MiB/s: the proxy stops reading from the upstream
        # instead of buffering, so what the upstream could send stays within the socket
        # buffers of the way (a few MiB), and the proxy's memory stays flat.
        n = 256 << 20
        pid = self.proxy.pid
        with RawConn(self.listen, timeout=10) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            c.send(harness.request_bytes("GET", "/big?%d" % n))
            rss0 = harness.rss_kib(pid)
            got = 0
            t0 = time.monotonic()
            samples = []
            for _ in range(400):
                if time.monotonic() - t0 > 3.0:
                    break
                got += len(c.sock.recv(16384))
                samples.append(harness.rss_kib(pid))
                time.sleep(0.004)
            with self.up.lock:
                sent = self.up.big_sent
        self.assertGreater(got, 1 << 20, "the slow reader got almost nothing")
        self.assertLess(sent - got, 16 << 20,
                        "upstream sent %d bytes for %d read: the proxy buffers for a slow reader"
                        % (sent, got))
        if not SANITIZED:  # ASan's shadow memory and quarantine make RSS meaningless
            self.assertLess(max(samples) - rss0, 16 * 1024,
                            "proxy RSS grew from %d to %d KiB" % (rss0, max(samples)))
        self.assert_serves("after a slow reader")


# Upstream responses: each malformed response is followed by a "smuggled" one.
SMUGGLED_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
BAD_RESPONSES = [
    ("te_and_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n"),
    ("te_gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello"),
    ("te_gzip_chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te_repeated", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n"),
    ("cl_letter", b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello"),
    ("cl_list", b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("cl_differing", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("cl_repeated", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("chunk_0x", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"),
    ("chunk_overflow", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("chunk_line_end", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
    ("chunk_data_end", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    ("space_before_colon", b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"),
    ("nul", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello"),
    ("bare_cr", b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 5\r\n\r\nhello"),
    ("obs_fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello"),
    ("te_http10", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
]


class TestResponseFraming(HardeningBase):

    def check_responses(self, names):
        for name in names:
            raw = dict(BAD_RESPONSES)[name]
            with self.subTest(name):
                self.up.raw_responses[name] = raw + SMUGGLED_RESPONSE
                before = self.metric("grayproxy_upstream_errors_total", route="r", reason="protocol")
                log_before = len(self.read_proxy_stderr_all())
                with RawConn(self.listen, timeout=5) as c:
                    c.send(harness.request_bytes("GET", "/raw/" + name))
                    r = c.read_response()
                    rest = c.read_until_close(timeout=2) if r.get("connection") == "close" else b""
                self.assertEqual(r.status, 502, "%s: %r" % (name, r))
                self.assertNotIn(b"smuggled", r.body + rest)
                self.assertNotIn(b"hello", r.body)
                after = self.metric("grayproxy_upstream_errors_total", route="r", reason="protocol")
                self.assertEqual(after - before, 1, "%s: not counted as a protocol error" % name)
                log = self.read_proxy_stderr_all()[log_before:]
                self.assertRegex(log, r'msg="(invalid upstream response|upstream failed before response)',
                                 "%s: not logged" % name)
                self.assertTrue(harness.wait_until(lambda: name in self.up.closed_by_peer, timeout=3),
                                "%s: upstream connection not closed by the proxy" % name)
                self.assert_serves("after upstream response %s" % name)

    def read_proxy_stderr_all(self):
        with open(self.proxy_stderr, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def test_response_te_with_content_length(self):
        self.check_responses(["te_and_cl"])

    def test_response_transfer_encoding_other_than_final_chunked(self):
        self.check_responses(["te_gzip", "te_gzip_chunked", "te_repeated"])

    def test_response_malformed_content_length(self):
        self.check_responses(["cl_letter", "cl_list", "cl_differing", "cl_repeated"])

    def test_response_bad_chunks(self):
        self.check_responses(["chunk_0x", "chunk_overflow", "chunk_line_end", "chunk_data_end"])

    def test_response_whitespace_before_colon(self):
        self.check_responses(["space_before_colon"])

    def test_response_control_characters(self):
        self.check_responses(["nul", "bare_cr"])

    def test_response_obs_fold(self):
        self.check_responses(["obs_fold"])

    def test_response_transfer_encoding_in_http10(self):
        self.check_responses(["te_http10"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
