#!/usr/bin/python3
"""End-to-end tests of the data path (issue 15, contract in the issue): upstream connection
reuse never leaks one response into another client's exchange, buffers are bounded under
endless input, trailers are dropped, bodies stream as they arrive, proxy-made HEAD answers
carry no body, request header names with '_' are dropped, an upstream that closes early
gives 502, running out of descriptors gives 503 local_overload, and HTTP/1.0 requests get
a Host.

The upstream is an in-process raw-socket server (RawUpstream) with behaviours scripted per
path, so a test can send exactly the bytes it needs, when it needs them, and read back
exactly what the proxy forwarded. Every proxy runs one worker, so all clients share one
upstream pool. Every wait is bounded in time and in iterations."""

import itertools
import os
import resource
import select
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RawConn, request_bytes, status_lines  # noqa: E402

# Under ASan+UBSan (GRAYPROXY_SANITIZED=1) the proxy is several times slower and its RSS
# includes shadow memory: time bounds get more slack and the RSS bound is not checked.
# Functional checks are the same.
SANITIZED = os.environ.get("GRAYPROXY_SANITIZED") == "1"
SLACK = 2.0 if SANITIZED else 1.0

HEAD_LIMIT = 8192          # limits.max_request_header_bytes of base_config: the request trailer cap
MAX_TRAILER_FIELDS = 100   # contract: more trailer fields than this is refused
RSS_CAP_KIB = 1536 * 1024  # a proxy above this is killed: an unbounded buffer must not take the machine

SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
CLOSED_FAMILY = "grayproxy_upstream_connections_closed_total"


# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------

class ChunkedDecoder:
    """Incremental chunked-body decoder: feed() bytes as they arrive; `data` is the decoded
    body so far, `trailers` the raw trailer section (b"" when none), `done` once the last
    chunk and the trailer section are through."""

    def __init__(self):
        self.buf = bytearray()
        self.data = bytearray()
        self.trailers = b""
        self.done = False
        self._state = "size"
        self._left = 0

    def feed(self, b):
        self.buf += b
        for _ in range(1 << 20):
            if self.done:
                return
            if self._state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    return
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                size = int(line.split(b";")[0].strip(), 16)
                self._left = size
                self._state = "data" if size else "trailers"
            elif self._state == "data":
                k = min(self._left, len(self.buf))
                if k == 0:
                    return
                self.data += self.buf[:k]
                del self.buf[:k]
                self._left -= k
                if self._left == 0:
                    self._state = "crlf"
            elif self._state == "crlf":
                if len(self.buf) < 2:
                    return
                if bytes(self.buf[:2]) != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF: %r" % bytes(self.buf[:20]))
                del self.buf[:2]
                self._state = "size"
            else:  # trailers
                if self.buf.startswith(b"\r\n"):
                    del self.buf[:2]
                    self.done = True
                    return
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                self.trailers = bytes(self.buf[:i + 2])
                del self.buf[:i + 4]
                self.done = True
                return


def parse_head(head):
    """(status or request line, [(lower-case name, value)]) of a raw head (bytes)."""
    lines = head.split(b"\r\n")
    fields = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(b":")
        fields.append((k.strip().lower(), v.strip()))
    return lines[0], fields


class Streamed:
    """One response read as it arrives (read_streamed)."""

    def __init__(self):
        self.head = b""
        self.status = None
        self.fields = []
        self.pieces = []        # (monotonic time, decoded body bytes of that recv)
        self.body = b""
        self.trailers = b""
        self.complete = False   # the body's framing ended properly
        self.closed = False     # the proxy closed the connection

    def field(self, name):
        return [v for k, v in self.fields if k == name]


def read_streamed(sock, deadline, method="GET"):
    """Reads one response from sock, recording when each piece of its body arrived, until
    the body is complete, the peer closes, or the deadline (monotonic) passes."""
    r = Streamed()
    buf = bytearray()
    decoder = None
    length = None
    body = bytearray()
    for _ in range(1 << 20):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        rd, _, _ = select.select([sock], [], [], left)
        if not rd:
            break
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        now = time.monotonic()
        if not data:
            r.closed = True
            break
        if r.status is None:
            buf += data
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                continue
            r.head = bytes(buf[:i + 4])
            data = bytes(buf[i + 4:])
            line, r.fields = parse_head(r.head)
            r.status = int(line.split(b" ")[1])
            if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
                r.complete = True
                break
            if any(b"chunked" in v.lower() for v in r.field(b"transfer-encoding")):
                decoder = ChunkedDecoder()
            elif r.field(b"content-length"):
                length = int(r.field(b"content-length")[0])
        if decoder is not None:
            before = len(decoder.data)
            decoder.feed(data)
            piece = bytes(decoder.data[before:])
            body = decoder.data
            if decoder.done:
                r.trailers = decoder.trailers
        else:
            piece = data
            body += data
        if piece:
            r.pieces.append((now, piece))
        if (decoder is not None and decoder.done) or (length is not None and len(body) >= length):
            r.complete = True
            break
    if r.status is not None and decoder is None and length is None and r.closed:
        r.complete = True  # close-delimited
    r.body = bytes(body)
    return r


def recv_until_close(sock, timeout):
    """(bytes, closed) read from sock until the peer closes or timeout seconds pass."""
    return harness.read_until_close(sock, time.monotonic() + timeout)


def endless_request(port, first, pieces, rate, duration, answer_timeout=3.0):
    """Opens a client connection, sends `first`, then the pieces (an iterable of bytes) at
    `rate` bytes/s (None: as fast as the proxy reads) until the proxy answers or closes or
    `duration` seconds pass; then reads the answer until the proxy closes. Returns a dict:
    out (bytes read), closed, answered_after (seconds from the start to the first answer
    byte or the close; None if neither), sent (bytes)."""
    res = {"out": b"", "closed": False, "answered_after": None, "sent": 0}
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        s.sendall(first)
        res["sent"] = len(first)
        out = bytearray()
        it = iter(pieces)
        next_at = t0
        for _ in range(1 << 20):
            now = time.monotonic()
            if now - t0 >= duration:
                break
            rd, _, _ = select.select([s], [], [], max(0.0, min(next_at - now, t0 + duration - now)))
            if rd:
                try:
                    d = s.recv(65536)
                except ConnectionResetError:
                    d = b""
                res["answered_after"] = time.monotonic() - t0
                if not d:
                    res["closed"] = True
                    break
                out += d
                break  # the proxy answered: stop sending, read the rest below
            if time.monotonic() < next_at:
                continue
            piece = next(it, None)
            if piece is None:
                break
            s.settimeout(1.0)
            try:
                s.sendall(piece)
            except socket.timeout:
                break  # the proxy stopped reading: wait for its answer
            except OSError:
                res["answered_after"] = time.monotonic() - t0
                break  # reset or closed: what it answered is still in our receive queue
            res["sent"] += len(piece)
            next_at = next_at + len(piece) / rate if rate else time.monotonic()
        if not res["closed"]:
            more, closed = recv_until_close(s, answer_timeout)
            out += more
            res["closed"] = closed
            if res["answered_after"] is None and (more or closed):
                res["answered_after"] = time.monotonic() - t0
        res["out"] = bytes(out)
    finally:
        s.close()
    return res


def filler(n=16384):
    """Endless pieces of 'a' (a chunk extension or trailer value that never ends)."""
    return itertools.repeat(b"a" * n)


def trailer_fields(count, start=0):
    """count small trailer fields, as bytes."""
    return b"".join(b"x-t-%d: v\r\n" % i for i in range(start, start + count))


def slices(data, n=16384):
    return [data[i:i + n] for i in range(0, len(data), n)]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class RssGuard(harness.RssSampler):
    """RssSampler that also kills the proxy when its RSS passes cap_kib (an unbounded
    buffer must fail the test, not exhaust the machine)."""

    def __init__(self, proc, cap_kib=RSS_CAP_KIB, interval=0.02):
        super().__init__(proc.pid, interval)
        self.proc = proc
        self.cap_kib = cap_kib
        self.killed_at_kib = None

    def run(self):
        for _ in range(10 ** 7):
            v = harness.rss_kib(self.pid)
            if v is not None:
                self.samples.append(v)
                if v > self.cap_kib and self.killed_at_kib is None:
                    self.killed_at_kib = v
                    try:
                        self.proc.kill()
                    except OSError:
                        pass
                    return
            if self._halt.wait(self.interval):
                break


# ---------------------------------------------------------------------------------------
# The in-process raw upstream
# ---------------------------------------------------------------------------------------

class UpRequest:
    """A request as the upstream received it: raw head, fields, decoded body, raw trailers."""

    def __init__(self, conn_id, head):
        self.conn_id = conn_id
        self.head = head
        line, self.fields = parse_head(head)
        parts = line.split(b" ")
        self.method = parts[0].decode("latin-1")
        self.path = parts[1].decode("latin-1") if len(parts) > 1 else "?"
        self.version = parts[2].decode("latin-1") if len(parts) > 2 else "?"
        self.body = bytearray()
        self.trailers = b""
        self.complete = False  # the whole body was read

    def field(self, name):
        return [v for k, v in self.fields if k == name.lower().encode()]


class UpConn:
    """One upstream-side connection: a receive buffer and the primitives behaviours use."""

    LINE_CAP = 64 * 1024
    TRAILER_CAP = 1 << 20
    BODY_CAP = 16 << 20

    def __init__(self, up, sock, conn_id):
        self.up = up
        self.sock = sock
        self.id = conn_id
        self.buf = bytearray()

    def _more(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def read_head(self):
        """The next request head, or None on a clean close between requests."""
        for _ in range(100000):
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > (1 << 20):
                raise ValueError("request head too large")
            try:
                self._more()
            except EOFError:
                if self.buf:
                    raise
                return None
        raise ValueError("unreachable")

    def _line(self, cap):
        for _ in range(100000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > cap:
                raise ValueError("line too long")
            self._more()
        raise ValueError("unreachable")

    def _exact(self, n):
        for _ in range(1 << 20):
            if len(self.buf) >= n:
                break
            self._more()
        d = bytes(self.buf[:n])
        del self.buf[:n]
        return d

    def read_body(self, req):
        """Reads req's body per its framing into req. False: not readable, close."""
        te = b",".join(req.field("transfer-encoding")).lower()
        if te.endswith(b"chunked"):
            for _ in range(1 << 20):
                size = int(self._line(self.LINE_CAP).split(b";")[0].strip(), 16)
                if size == 0:
                    break
                req.body += self._exact(size)
                if self._exact(2) != b"\r\n":
                    raise ValueError("bad chunk end")
            trailers = bytearray()
            for _ in range(100000):
                line = self._line(self.LINE_CAP)
                if not line:
                    break
                trailers += line + b"\r\n"
                if len(trailers) > self.TRAILER_CAP:
                    raise ValueError("trailers too large")
            req.trailers = bytes(trailers)
        else:
            cl = req.field("content-length")
            n = int(cl[0]) if cl else 0
            if n > self.BODY_CAP:
                return False
            req.body += self._exact(n)
        req.complete = True
        return True

    def send(self, data):
        self.sock.sendall(data)

    def wait_closed(self, timeout=5.0):
        """Reads (and discards) until the proxy closes the connection or timeout: True if
        it closed."""
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.2) + 100):
            if self.up.halt.is_set() or time.monotonic() >= deadline:
                return False
            try:
                if not self.sock.recv(65536):
                    return True
            except socket.timeout:
                continue
            except OSError:
                return True
        return False

    def reset(self):
        """Close with RST instead of FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()


class RawUpstream:
    """A raw HTTP/1.1 upstream on 127.0.0.1. Reads each request (head, then the body per its
    framing, unless the behaviour reads it itself) and runs the behaviour registered for the
    longest matching path prefix (on()); without one, answers 200 with the path as body
    and keeps the connection. accept_action "close"/"reset" closes every connection before
    reading anything. Records every request (requests), the paths whose connection the
    proxy closed (closed_by_peer), when endless senders were cut (cut), per-path write
    times (marks) and named events (event())."""

    def __init__(self, accept_action=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.accept_action = accept_action
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.behaviours = {}
        self.requests = []
        self.closed_by_peer = set()
        self.cut = {}
        self.marks = {}
        self._events = {}
        self._conns = set()
        self._threads = []
        self._ids = itertools.count(1)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def on(self, prefix, fn, read_body=True):
        with self.lock:
            self.behaviours[prefix] = (fn, read_body)

    def event(self, name):
        with self.lock:
            return self._events.setdefault(name, threading.Event())

    def mark(self, path):
        with self.lock:
            self.marks.setdefault(path, []).append(time.monotonic())

    def received(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def heads(self):
        with self.lock:
            return [r.head for r in self.requests]

    def stop(self):
        self.halt.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=2)

    def _accept(self):
        for _ in range(1000000):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.halt.is_set():
                conn.close()
                return
            t = threading.Thread(target=self._serve, args=(conn, next(self._ids)), daemon=True)
            with self.lock:
                self._conns.add(conn)
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _lookup(self, path):
        best = None
        with self.lock:
            items = list(self.behaviours.items())
        for prefix, b in items:
            if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, b)
        return best[1] if best else (respond_path, True)

    def _serve(self, sock, conn_id):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(10)
        c = UpConn(self, sock, conn_id)
        try:
            if self.accept_action == "close":
                return
            if self.accept_action == "reset":
                c.reset()
                return
            for _ in range(10000):
                head = c.read_head()
                if head is None:
                    return
                req = UpRequest(conn_id, head)
                with self.lock:
                    self.requests.append(req)
                fn, read_body = self._lookup(req.path)
                if read_body and not c.read_body(req):
                    return
                if not fn(c, req):
                    return
        except (EOFError, OSError, ValueError, IndexError):
            pass
        finally:
            with self.lock:
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass


# Behaviours: fn(conn, request) -> whether to keep serving the connection.

def respond_path(c, req):
    body = req.path.encode("latin-1")
    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return True


def respond(raw):
    """Sends raw verbatim and keeps serving the connection."""
    def fn(c, req):
        c.send(raw)
        return True
    return fn


def respond_then(first, later, delay, event):
    """Sends first, `delay` seconds later sends `later` as a separate segment, sets the
    upstream event `event` once it has tried, and keeps serving the connection (as a real
    server would)."""
    def fn(c, req):
        c.send(first)
        if c.up.halt.wait(delay):
            return False
        try:
            c.send(later)
        finally:  # also when the proxy has closed the connection already
            c.up.event(event).set()
        return True
    return fn


def hold(raw):
    """Sends raw, then waits for the proxy to close the connection (recorded)."""
    def fn(c, req):
        c.send(raw)
        if c.wait_closed(5.0):
            with c.up.lock:
                c.up.closed_by_peer.add(req.path)
        return False
    return fn


def send_and_close(raw):
    """Sends raw, then closes (FIN): a close-delimited response."""
    def fn(c, req):
        c.send(raw)
        c.sock.shutdown(socket.SHUT_WR)
        return False
    return fn


def close_now(c, req):
    return False


def reset_now(c, req):
    c.reset()
    return False


def sink(c, req):
    """Reads and discards until the proxy closes (at most 10 s); never answers."""
    if c.wait_closed(10.0):
        with c.up.lock:
            c.up.closed_by_peer.add(req.path)
    return False


def stream(first, pieces, rate, duration):
    """Sends first, then pieces() at `rate` bytes/s (None: as fast as the proxy reads) for
    at most `duration` s; records in up.cut[path] when the proxy closed the connection
    (None: it never did), then waits for the close if the pieces ran out."""
    def fn(c, req):
        t0 = time.monotonic()
        c.sock.settimeout(1.0)
        cut = None
        try:
            c.send(first)
            next_at = t0
            for piece in pieces():
                if c.up.halt.is_set() or time.monotonic() - t0 > duration:
                    break
                wait = next_at - time.monotonic()
                if wait > 0 and c.up.halt.wait(wait):
                    break
                try:
                    c.sock.sendall(piece)
                except socket.timeout:
                    continue  # the proxy is not reading right now
                next_at = next_at + len(piece) / rate if rate else time.monotonic()
            else:
                if c.wait_closed(max(0.5, duration - (time.monotonic() - t0))):
                    cut = time.monotonic() - t0
        except OSError:
            cut = time.monotonic() - t0
        with c.up.lock:
            c.up.cut[req.path] = cut
        return False
    return fn


def trickle(head, body, interval):
    """Sends head, then body one byte every `interval` s."""
    def fn(c, req):
        c.send(head)
        for i in range(len(body)):
            if c.up.halt.wait(interval):
                return False
            c.send(body[i:i + 1])
        return True
    return fn


def sse(n, interval):
    """A chunked text/event-stream: `data: i` events every `interval` s, each write's time
    recorded (up.marks[path]) just before it, then the last chunk."""
    def fn(c, req):
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(1, n + 1):
            if c.up.halt.wait(interval):
                return False
            ev = b"data: %d\n\n" % i
            c.up.mark(req.path)
            c.send(b"%x\r\n%s\r\n" % (len(ev), ev))
        c.send(b"0\r\n\r\n")
        return True
    return fn


# ---------------------------------------------------------------------------------------
# Base
# ---------------------------------------------------------------------------------------

class DataPathBase(harness.ProxyTestCase):
    """A RawUpstream (self.up) in setUp; each test starts its proxy with start()."""

    def setUp(self):
        super().setUp()
        self.up = RawUpstream()
        self.addCleanup(self.up.stop)
        self.listen = harness.free_port()
        self.admin = harness.free_port()

    def start(self, clusters=None, routes=None, timeouts=None, limits=None, http_section=None,
              workers=1):
        if clusters is None:
            clusters = [{"name": "c", "endpoints": ["127.0.0.1:%d" % self.up.port]}]
        if routes is None:
            routes = [{"name": "r", "match": {"path_prefix": "/"}, "stable": "c"}]
        cfg = harness.base_config(self.listen, self.admin, clusters=clusters, routes=routes,
                                  state_dir=self.state_dir, workers=workers)
        cfg["timeouts"].update(timeouts or {})
        cfg["limits"].update(limits or {})
        if http_section is not None:
            cfg["http"] = http_section
        return self.start_proxy(cfg, self.listen)

    # -- requests -------------------------------------------------------------------------

    def get(self, path, method="GET", headers=(), body=b"", timeout=5.0):
        with RawConn(self.listen, timeout=timeout) as c:
            c.send(request_bytes(method, path, headers=headers, body=body))
            return c.read_response(method)

    def exchange(self, payload, timeout=5.0):
        """Sends payload, reads until the proxy closes or timeout: (bytes, closed)."""
        with RawConn(self.listen, timeout=timeout) as c:
            try:
                c.send(payload)
            except OSError:
                pass  # the proxy may answer and close before it has read everything
            return recv_until_close(c.sock, timeout)

    def assert_serves(self, label=""):
        self.assert_proxy_alive()
        r = self.get("/fresh")
        self.assertEqual((r.status, r.body), (200, b"/fresh"),
                         "%s: the proxy no longer serves a normal request" % label)

    # -- metrics and log ------------------------------------------------------------------

    def assert_metric_grows(self, before, name, by=1, exact=True, timeout=2.0, **labels):
        """name{labels} reaches before + by within timeout (it may be counted a moment
        after the client saw the outcome); exactly, unless exact is False."""
        harness.wait_until(lambda: self.metric(name, **labels) - before >= by, timeout=timeout)
        got = self.metric(name, **labels) - before
        if exact:
            self.assertEqual(got, by, "%s%r grew by %r, expected %r" % (name, labels, got, by))
        else:
            self.assertGreaterEqual(got, by, "%s%r grew by %r, expected at least %r"
                                    % (name, labels, got, by))

    def log_mark(self):
        try:
            return os.path.getsize(self.proxy_stderr)
        except OSError:
            return 0

    def log_since(self, mark):
        with open(self.proxy_stderr, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------
# 1. Upstream connection reuse never hands one response to another client
# ---------------------------------------------------------------------------------------

class TestNoCrossClientLeak(DataPathBase):
    """A response followed by stray bytes (a whole second response `smuggled`) must not
    poison the pool: clients B, C and D, on connections of their own 30 ms apart, each get
    the answer to their own request."""

    def setUp(self):
        super().setUp()
        self.start()

    def check(self, name, method, raw, stray_later, want_status, want_body, reason):
        path = "/leak/" + name
        if stray_later:  # in a later segment, 20 ms after the response
            self.up.on(path, respond_then(raw, SMUGGLED, 0.02, name))
        else:            # in the same write as the response
            self.up.on(path, respond(raw + SMUGGLED))
        before = self.metric(CLOSED_FAMILY, reason=reason)
        with RawConn(self.listen, timeout=5) as a:
            a.send(request_bytes(method, path))
            r = a.read_response(method)
            done = time.monotonic()
            self.assertEqual((r.status, r.body), (want_status, want_body), "client A: %r" % r)
            if stray_later:
                # The stray bytes are on the upstream connection before B asks: the proxy
                # can see them (the contract's peek), so the outcome is deterministic.
                self.assertTrue(self.up.event(name).wait(3), "upstream never wrote the stray bytes")
            time.sleep(max(0.0, done + 0.03 - time.monotonic()))
            for i, who in enumerate("bcd"):
                if i:
                    time.sleep(0.03)
                own = "/other/%s/%s" % (name, who)  # not under path: answered normally
                rb = self.get(own)
                self.assertNotIn(b"smuggled", rb.body,
                                 "client %s got the stray response meant for nobody" % who.upper())
                self.assertEqual((rb.status, rb.body), (200, own.encode()),
                                 "client %s got someone else's response" % who.upper())
            # Nor did A itself get the stray response.
            a.sock.settimeout(0.1)
            try:
                extra = bytes(a.buf) + a.sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                extra = bytes(a.buf)
            self.assertNotIn(b"smuggled", extra, "client A got the stray response")
        self.assert_metric_grows(before, CLOSED_FAMILY, reason=reason, exact=False)
        self.assert_proxy_alive()

    def test_head_with_content_length_then_stray_response(self):
        # HEAD declared 8 body bytes: never pooled (unframed); the stray comes 20 ms later.
        self.check("head", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n", True,
                   200, b"", "unframed")

    def test_get_body_longer_than_content_length(self):
        self.check("get", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", True,
                   200, b"hello", "stray_bytes")

    def test_204_with_body_in_the_same_write(self):
        self.check("204same", "GET", b"HTTP/1.1 204 No Content\r\n\r\n", False,
                   204, b"", "stray_bytes")

    def test_204_with_body_20ms_later(self):
        self.check("204later", "GET", b"HTTP/1.1 204 No Content\r\n\r\n", True,
                   204, b"", "stray_bytes")

    def test_304_with_body_in_the_same_write(self):
        self.check("304same", "GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n", False,
                   304, b"", "stray_bytes")

    def test_304_with_body_20ms_later(self):
        self.check("304later", "GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n", True,
                   304, b"", "stray_bytes")

    def test_unrequested_101_is_502_and_closes_the_upstream(self):
        path = "/leak/101"
        self.up.on(path, hold(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                              b"Upgrade: websocket\r\n\r\n"))
        before = self.metrics()
        with RawConn(self.listen, timeout=5) as a:
            a.send(request_bytes("GET", path))
            r = a.read_response("GET", skip_1xx=False)
        self.assertEqual(r.status, 502, "a 101 to a plain GET reached the client: %r" % r)
        self.assertTrue(harness.wait_until(lambda: path in self.up.closed_by_peer, timeout=3),
                        "the proxy kept the upstream connection that switched protocols")
        for i, who in enumerate("bcd"):
            if i:
                time.sleep(0.03)
            own = "/other/101/%s" % who
            rb = self.get(own)
            self.assertEqual((rb.status, rb.body), (200, own.encode()), "client %s" % who.upper())
        # Why it was closed is "unframed" (101 left) or "aborted" (the exchange failed):
        # the contract allows either reading.
        after = self.metrics()

        def closed(m):
            return sum(v for (n, ls), v in m.items() if n == CLOSED_FAMILY
                       and dict(ls).get("reason") in ("unframed", "aborted"))
        self.assertGreaterEqual(closed(after) - closed(before), 1,
                                "the upstream connection's close was not counted")


# ---------------------------------------------------------------------------------------
# 2. A close-delimited response's connection is never pooled
# ---------------------------------------------------------------------------------------

class TestCloseDelimited(DataPathBase):

    def test_close_delimited_response_is_not_pooled(self):
        body = b"until the upstream closes"
        self.up.on("/eof", send_and_close(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body))
        self.start()
        errors = self.metric("grayproxy_upstream_errors_total")
        unframed = self.metric(CLOSED_FAMILY, reason="unframed")
        mark = self.log_mark()
        r = self.get("/eof")
        self.assertEqual((r.status, r.body), (200, body))
        # At once, on a new client connection: a request with a body cannot be retried, so
        # it must not meet the dead connection.
        r = self.get("/p", method="POST", body=b"payload-123")
        self.assertEqual((r.status, r.body), (200, b"/p"), "POST after a close-delimited response")
        got = self.up.received("/p")
        self.assertEqual([bytes(g.body) for g in got], [b"payload-123"])
        self.assertEqual(self.metric("grayproxy_upstream_errors_total"), errors,
                         "an upstream error was counted")
        self.assertNotIn("upstream failed", self.log_since(mark))
        self.assert_metric_grows(unframed, CLOSED_FAMILY, reason="unframed", exact=False)


# ---------------------------------------------------------------------------------------
# 3. Endless inputs are cut with bounded memory
# ---------------------------------------------------------------------------------------

CHUNKED_POST = (b"POST /attack/%s HTTP/1.1\r\nHost: example.test\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
CHUNKED_200 = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
FIELDS_20K = trailer_fields(20000) + b"\r\n"

# (name, what follows the request head, pieces factory) of the request-side attacks.
REQUEST_ATTACKS = {
    "line": (b"5;x=", filler),
    "trailer": (b"5\r\nhello\r\n0\r\nX-Trailer: ", filler),
    "fields": (b"5\r\nhello\r\n0\r\n", lambda: slices(FIELDS_20K)),
}
RESPONSE_ATTACKS = {
    "line": (CHUNKED_200 + b"5;x=", filler),
    "trailer": (CHUNKED_200 + b"5\r\nhello\r\n0\r\nX-Trailer: ", filler),
    "fields": (CHUNKED_200 + b"5\r\nhello\r\n0\r\n", lambda: slices(FIELDS_20K)),
}
ATTACK_RATE = 256 * 1024   # bytes/s
ATTACK_SECONDS = 5.0


class TestEndlessInput(DataPathBase):

    def setUp(self):
        super().setUp()
        self.up.on("/attack/", sink, read_body=False)
        for name, (first, pieces) in RESPONSE_ATTACKS.items():
            self.up.on("/resp/" + name, stream(first, pieces, ATTACK_RATE, ATTACK_SECONDS),
                       read_body=False)
        self.start()
        self.guard = RssGuard(self.proxy)
        self.guard.start()
        self.addCleanup(self.guard.stop)

    def assert_not_exploded(self):
        self.assertIsNone(self.guard.killed_at_kib,
                          "proxy killed: its RSS reached %s KiB (unbounded buffer)" % self.guard.killed_at_kib)

    def request_attack(self, name, reason):
        first, pieces = REQUEST_ATTACKS[name]
        before = self.metric("grayproxy_downstream_rejected_total", reason=reason)
        res = endless_request(self.listen, CHUNKED_POST % name.encode() + first, pieces(),
                              ATTACK_RATE, ATTACK_SECONDS)
        self.assert_not_exploded()
        self.assertEqual(status_lines(res["out"]), [400], "%s: answer %r (after %r s)"
                         % (name, res["out"][:300], res["answered_after"]))
        self.assertTrue(res["closed"], "%s: connection left open after the 400" % name)
        self.assertLess(res["answered_after"], 2.0 * SLACK, "%s: cut late" % name)
        self.assert_metric_grows(before, "grayproxy_downstream_rejected_total", reason=reason)
        self.assert_serves(name)

    def test_request_endless_chunk_line(self):
        self.request_attack("line", "chunk_line_too_long")

    def test_request_endless_trailer_value(self):
        self.request_attack("trailer", "trailers_too_large")

    def test_request_20000_trailer_fields(self):
        self.request_attack("fields", "trailers_too_large")

    def response_attack(self, name):
        path = "/resp/" + name
        before = self.metric("grayproxy_upstream_errors_total", reason="protocol")
        t0 = time.monotonic()
        with RawConn(self.listen, timeout=10) as c:
            c.send(request_bytes("GET", path))
            r = read_streamed(c.sock, t0 + ATTACK_SECONDS + 3)
            if r.status == 200 and not r.closed:
                _, r.closed = recv_until_close(c.sock, 1.0)
        elapsed = time.monotonic() - t0
        self.assert_not_exploded()
        # 502 if nothing reached the client yet (its connection may stay open), else a
        # body cut short by the close.
        self.assertIn(r.status, (200, 502), "%s: no response head reached the client (connection "
                      "%s after %.1f s); the upstream sender was cut after %r s"
                      % (name, "closed" if r.closed else "open", elapsed, self.up.cut.get(path)))
        if r.status == 502:
            self.assertTrue(r.complete, "%s: incomplete 502" % name)
        else:
            self.assertFalse(r.complete, "%s: the proxy relayed the whole response: its %s "
                             "was accepted" % (name, {"line": "endless chunk line",
                                                      "trailer": "endless trailer",
                                                      "fields": "20000 trailer fields"}[name]))
            self.assertTrue(r.closed, "%s: client connection not closed after a cut body" % name)
        self.assertLess(elapsed, 3.0 * SLACK, "%s: cut late" % name)
        self.assertTrue(harness.wait_until(lambda: path in self.up.cut, timeout=3))
        cut = self.up.cut[path]
        self.assertIsNotNone(cut, "%s: the proxy never closed the upstream connection" % name)
        self.assertLess(cut, 3.0 * SLACK, "%s: upstream connection closed late" % name)
        self.assert_metric_grows(before, "grayproxy_upstream_errors_total", reason="protocol")
        self.assert_serves(name)

    def test_response_endless_chunk_line(self):
        self.response_attack("line")

    def test_response_endless_trailer_value(self):
        self.response_attack("trailer")

    def test_response_20000_trailer_fields(self):
        self.response_attack("fields")

    def test_memory_bounded_under_20_concurrent_attackers(self):
        # 20 connections, each sending (or, for the response-side ones, receiving) an
        # endless chunk line / trailer at 1 MiB/s and reconnecting when cut, for 2 s:
        # 40 MiB of input that must not be buffered.
        seconds, rate, n = 2.0, 1 << 20, 20
        pid = self.proxy.pid
        self.up.on("/resp/mem", stream(RESPONSE_ATTACKS["line"][0], filler, rate, seconds + 1),
                   read_body=False)
        self.assert_serves("warm-up")
        base = harness.rss_kib(pid)
        stop_at = time.monotonic() + seconds
        counts = [0] * n
        errors = []

        def attacker(i):
            kind = ("line", "trailer", "fields", "resp")[i % 4]
            try:
                for _ in range(10000):
                    left = stop_at - time.monotonic()
                    if left <= 0 or self.guard.killed_at_kib:
                        return
                    if kind == "resp":
                        with RawConn(self.listen, timeout=5) as c:
                            c.send(request_bytes("GET", "/resp/mem"))
                            read_streamed(c.sock, time.monotonic() + left)
                    else:
                        first, pieces = REQUEST_ATTACKS[kind]
                        endless_request(self.listen, CHUNKED_POST % kind.encode() + first,
                                        pieces(), rate, left, answer_timeout=1.0)
                    counts[i] += 1
                    time.sleep(0.02)
            except OSError as e:
                errors.append("%s: %r" % (kind, e))

        threads = [threading.Thread(target=attacker, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 15)
        time.sleep(0.3)  # whatever was allocated last is sampled too
        self.guard.stop()
        self.assert_not_exploded()
        self.assert_proxy_alive()
        self.assertEqual(errors, [])
        self.assertTrue(all(counts), counts)
        if not SANITIZED:  # ASan's shadow memory and quarantine make RSS meaningless
            growth = self.guard.max_kib - base
            sys.stderr.write("\n  RSS growth under %d attackers (%d attacks): %d KiB\n"
                             % (n, sum(counts), growth))
            self.assertLess(growth, 20 * 1024, "proxy RSS grew by %d KiB under %d attackers"
                            % (growth, n))
        self.assert_serves("after the attack")


# ---------------------------------------------------------------------------------------
# 4. Trailers are dropped, never merged into a forwarded head
# ---------------------------------------------------------------------------------------

EVIL_TRAILERS = (b"Host: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\nx-gray-version: canary\r\n"
                 b"Authorization: Bearer stolen\r\nUpgrade: websocket\r\n")
EVIL_VALUES = (b"evil.example", b"6.6.6.6", b"canary", b"bearer stolen", b"websocket")


class TestTrailers(DataPathBase):

    def setUp(self):
        super().setUp()
        self.start()

    def test_request_trailers_are_not_forwarded(self):
        payload = (b"POST /trail HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n6\r\n world\r\n0\r\n" + EVIL_TRAILERS + b"\r\n")
        with RawConn(self.listen, timeout=5) as c:
            c.send(payload)  # one write: head, body and trailers arrive together
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"/trail"))
        got = self.up.received("/trail")
        self.assertEqual(len(got), 1)
        head = got[0].head.lower()
        for v in EVIL_VALUES:
            self.assertNotIn(v, head, "a trailer value reached the forwarded head:\n%s"
                             % got[0].head.decode("latin-1"))
        self.assertEqual(got[0].field("host"), [b"example.test"])
        self.assertTrue(got[0].complete)
        self.assertEqual(bytes(got[0].body), b"hello world")
        self.assertEqual(got[0].trailers, b"", "trailers were forwarded")

    def test_too_many_request_trailers_are_refused(self):
        trailers = EVIL_TRAILERS + trailer_fields(150)
        # Refused for the number of fields: the block is well under the byte limit.
        self.assertGreater(trailers.count(b"\r\n"), MAX_TRAILER_FIELDS)
        self.assertLess(len(trailers), HEAD_LIMIT // 2)
        payload = (b"POST /trail-many HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n")
        before = self.metric("grayproxy_downstream_rejected_total", reason="trailers_too_large")
        out, closed = self.exchange(payload)
        self.assertEqual(status_lines(out), [400], out[:300])
        self.assertTrue(closed)
        self.assert_metric_grows(before, "grayproxy_downstream_rejected_total",
                                 reason="trailers_too_large")
        # The head may have gone upstream before the trailers were parsed; the trailers
        # must not have gone in any head.
        for h in self.up.heads():
            low = h.lower()
            for v in EVIL_VALUES + (b"x-t-0:", b"x-t-149:"):
                self.assertNotIn(v, low, "a trailer reached a forwarded head:\n%s" % h.decode("latin-1"))
        self.assert_serves()

    def check_response_trailers(self, path, trailers):
        self.up.on(path, respond(CHUNKED_200 + b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n"))
        with RawConn(self.listen, timeout=5) as c:
            c.send(request_bytes("GET", path))
            r = read_streamed(c.sock, time.monotonic() + 5)
        self.assertEqual(r.status, 200, r.head)
        low = r.head.lower()
        for v in (b"evil=1", b"set-cookie", b"x-gray-version"):
            self.assertNotIn(v, low, "a response trailer reached the client's head:\n%s"
                             % r.head.decode("latin-1"))
        self.assertFalse(r.field(b"transfer-encoding") and r.field(b"content-length"),
                         "both Transfer-Encoding and Content-Length in:\n%s" % r.head.decode("latin-1"))
        self.assertTrue(r.complete)
        self.assertEqual(r.body, b"hello")
        self.assertEqual(r.trailers, b"", "trailers were forwarded to the client")
        self.assert_serves()

    def test_response_trailers_are_not_forwarded(self):
        self.check_response_trailers("/rtrail", b"Set-Cookie: evil=1\r\nx-gray-version: stable\r\n")

    def test_response_content_length_trailer_is_refused(self):
        # A framing field among the trailers is a protocol error (RFC 9110 6.5.1: framing fields
        # are never trailers; a hop that merged it would read another length): never a
        # reframed response. Here nothing reached the client yet, so it gets a 502.
        path = "/rtrail-cl"
        self.up.on(path, respond(CHUNKED_200 + b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"))
        before = self.metric("grayproxy_upstream_errors_total", reason="protocol")
        with RawConn(self.listen, timeout=5) as c:
            c.send(request_bytes("GET", path))
            r = read_streamed(c.sock, time.monotonic() + 5)
        self.assertEqual(r.status, 502, r.head)
        self.assertEqual(self.metric("grayproxy_upstream_errors_total", reason="protocol"), before + 1)
        self.assert_serves()


# ---------------------------------------------------------------------------------------
# 5. Bodies stream as they arrive, each read with its own deadline
# ---------------------------------------------------------------------------------------

class TestStreaming(DataPathBase):

    def test_sse_events_reach_the_client_at_once(self):
        n, interval = 8, 0.2
        bound = 0.1 if SANITIZED else 0.05
        self.up.on("/events", sse(n, interval))
        self.start()
        with RawConn(self.listen, timeout=5) as c:
            c.send(request_bytes("GET", "/events", headers=[("Accept", "text/event-stream")]))
            r = read_streamed(c.sock, time.monotonic() + n * interval + 5)
        self.assertEqual(r.status, 200, r.head)
        writes = self.up.marks.get("/events", [])
        self.assertEqual(len(writes), n)
        seen = bytearray()
        arrived = {}
        for t, piece in r.pieces:
            seen += piece
            for i in range(1, n + 1):
                if i not in arrived and b"data: %d\n\n" % i in seen:
                    arrived[i] = t
        late = {i: round(arrived.get(i, float("inf")) - writes[i - 1], 3) for i in range(1, n + 1)}
        self.assertTrue(all(v < bound for v in late.values()),
                        "seconds from each event's write to its arrival: %r (bound %s)" % (late, bound))
        self.assertTrue(r.complete)

    def test_trickling_response_is_relayed_within_its_read_deadline(self):
        # 15 bytes at 5 bytes/s: 3 s in all, each gap far below upstream_response (1 s).
        body = b"abcdefghijklmno"
        self.up.on("/trickle", trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n", body, 0.2))
        self.start(timeouts={"upstream_response": "1s"})
        with RawConn(self.listen, timeout=10) as c:
            t0 = time.monotonic()
            c.send(request_bytes("GET", "/trickle"))
            r = read_streamed(c.sock, t0 + 8)
        self.assertEqual(r.status, 200, r.head)
        self.assertEqual(r.body, body, "the client got %d of %d bytes" % (len(r.body), len(body)))
        times = [t0] + [t for t, _ in r.pieces]
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertLess(max(gaps), 1.0, "gaps between the pieces the client read: %r" % gaps)

    def test_slow_upload_is_relayed_within_its_read_deadline(self):
        # 5 bytes every 0.4 s (1.6 s in all), each gap below timeouts.idle (1 s).
        pieces = [b"AAAAA", b"BBBBB", b"CCCCC", b"DDDDD"]
        self.start(timeouts={"idle": "1s", "upstream_response": "5s"})
        with RawConn(self.listen, timeout=10) as c:
            c.send(b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: %d\r\n\r\n"
                   % sum(map(len, pieces)))
            try:
                for p in pieces:
                    time.sleep(0.4)
                    c.send(p)
            except OSError as e:
                self.fail("the proxy dropped a slow upload: %r" % e)
            try:
                r = c.read_response()
            except EOFError:
                self.fail("the proxy closed the connection of a slow upload without an answer")
        self.assertEqual((r.status, r.body), (200, b"/upload"))
        got = self.up.received("/upload")
        self.assertEqual([bytes(g.body) for g in got], [b"".join(pieces)])


# ---------------------------------------------------------------------------------------
# 6. Responses the proxy makes to HEAD carry no body
# ---------------------------------------------------------------------------------------

class TestProxyMadeHeadResponses(DataPathBase):

    def setUp(self):
        super().setUp()
        dead = harness.free_port()
        self.start(clusters=[{"name": "c", "endpoints": ["127.0.0.1:%d" % self.up.port]},
                             {"name": "dead", "endpoints": ["127.0.0.1:%d" % dead]}],
                   routes=[{"name": "only", "match": {"path_prefix": "/only"}, "stable": "c"},
                           {"name": "dead", "match": {"path_prefix": "/dead"}, "stable": "dead"}])

    def pipelined_head_then_get(self, head_path, get_path, statuses):
        with RawConn(self.listen, timeout=5) as c:
            c.send(request_bytes("HEAD", head_path) + request_bytes("GET", get_path))
            r1 = c.read_response("HEAD")
            self.assertIn(r1.status, statuses, r1)
            if r1.get("connection", "").lower() == "close":
                rest = c.read_until_close(timeout=3)
                self.assertEqual(rest, b"", "HEAD %d carried a body" % r1.status)
                return r1
            try:
                r2 = c.read_response("GET")
            except ValueError as e:
                self.fail("the response after HEAD %d does not parse (%s): the HEAD answer "
                          "carried a body" % (r1.status, e))
        self.assertEqual((r2.status, r2.body), (200, get_path.encode()))
        return r1

    def test_head_404_no_route_has_no_body(self):
        r1 = self.pipelined_head_then_get("/nope", "/only/x", (404,))
        g = self.get("/nope")
        self.assertEqual(g.status, 404)
        self.assertEqual(r1.get("content-length"), str(len(g.body)),
                         "HEAD's Content-Length is not what a GET gets")

    def test_head_502_dead_upstream_has_no_body(self):
        self.pipelined_head_then_get("/dead/x", "/only/y", (502, 503))


# ---------------------------------------------------------------------------------------
# 7. Request header names with '_', oversized Content-Length
# ---------------------------------------------------------------------------------------

TWIN = (b"POST /twin HTTP/1.1\r\nHost: example.test\r\nTransfer_Encoding: chunked\r\n"
        b"X_User: admin\r\nContent-Length: 5\r\n\r\nhello")


class TestUnderscoreHeaders(DataPathBase):

    def test_dropped_by_default(self):
        self.start()
        with RawConn(self.listen, timeout=5) as c:
            c.send(TWIN)
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"/twin"))
        got = self.up.received("/twin")
        self.assertEqual(len(got), 1)
        head = got[0].head.lower()
        self.assertNotIn(b"transfer_encoding", head, "forwarded:\n%s" % got[0].head.decode("latin-1"))
        self.assertNotIn(b"x_user", head)
        self.assertEqual(got[0].field("content-length"), [b"5"])
        self.assertEqual(bytes(got[0].body), b"hello")

    def test_reject(self):
        self.start(http_section={"headers_with_underscores": "reject"})
        before = self.metric("grayproxy_downstream_rejected_total", reason="underscore_header")
        out, closed = self.exchange(TWIN)
        self.assertEqual(status_lines(out), [400], out[:300])
        self.assertEqual(self.up.received("/twin"), [])
        self.assert_metric_grows(before, "grayproxy_downstream_rejected_total",
                                 reason="underscore_header")
        self.assert_serves()

    def test_allow(self):
        self.start(http_section={"headers_with_underscores": "allow"})
        with RawConn(self.listen, timeout=5) as c:
            c.send(TWIN)
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"/twin"))
        got = self.up.received("/twin")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].field("transfer_encoding"), [b"chunked"])
        self.assertEqual(got[0].field("x_user"), [b"admin"])
        self.assertEqual(bytes(got[0].body), b"hello")

    def test_content_length_beyond_int64_is_400(self):
        self.start()
        for value in (b"9223372036854775808", b"18446744073709551615"):
            with self.subTest(value=value):
                path = b"/cl-" + value
                out, _ = self.exchange(b"POST " + path + b" HTTP/1.1\r\nHost: example.test\r\n"
                                       b"Content-Length: " + value + b"\r\n\r\nhello", timeout=3)
                self.assertEqual(status_lines(out), [400], "Content-Length %s: %r" % (value, out[:200]))
                self.assertEqual(self.up.received(path.decode()), [])
        self.assert_serves()


# ---------------------------------------------------------------------------------------
# 8. An upstream that closes before sending a byte gives 502, never an empty reply
# ---------------------------------------------------------------------------------------

class TestUpstreamClosesEarly(DataPathBase):
    """Every way an upstream can close before its first byte, for every kind of request:
    the client gets a 502. (The old build answered 502 in all of these; the test guards
    the contract's rule for the rewrite.)"""

    def test_502_never_an_empty_reply(self):
        acc = RawUpstream(accept_action="close")
        self.addCleanup(acc.stop)
        acc_rst = RawUpstream(accept_action="reset")
        self.addCleanup(acc_rst.stop)
        self.up.on("/e/head-close", close_now, read_body=False)    # read the head only
        self.up.on("/e/head-reset", reset_now, read_body=False)
        self.up.on("/e/req-close", close_now)                      # read the whole request
        self.up.on("/e/req-reset", reset_now)
        never = {"consecutive_failures": 100000}  # no ejection between the cases
        self.start(clusters=[{"name": "c", "endpoints": ["127.0.0.1:%d" % self.up.port],
                              "outlier_detection": never},
                             {"name": "acc", "endpoints": ["127.0.0.1:%d" % acc.port],
                              "outlier_detection": never},
                             {"name": "accrst", "endpoints": ["127.0.0.1:%d" % acc_rst.port],
                              "outlier_detection": never}],
                   routes=[{"name": "acc", "match": {"path_prefix": "/e/accept-close"}, "stable": "acc"},
                           {"name": "accrst", "match": {"path_prefix": "/e/accept-reset"},
                            "stable": "accrst"},
                           {"name": "r", "match": {"path_prefix": "/"}, "stable": "c"}])
        modes = ("accept-close", "accept-reset", "head-close", "head-reset", "req-close", "req-reset")
        requests = (("GET", None), ("POST", "with-head"), ("POST", "after-head"))
        failures = []
        for mode, (method, body), version in itertools.product(modes, requests, ("HTTP/1.0", "HTTP/1.1")):
            label = "%s %s %s body=%s" % (mode, method, version, body)
            path = "/e/%s/%s-%s" % (mode, method.lower(), version[-1])
            payload = request_bytes(method, path, version=version,
                                    headers=[("Content-Length", "10")] if body else ())
            with RawConn(self.listen, timeout=5) as c:
                try:
                    c.send(payload + (b"0123456789" if body == "with-head" else b""))
                    if body == "after-head":
                        time.sleep(0.1)
                        c.send(b"0123456789")
                except OSError:
                    pass  # answered and closed already
                try:
                    r = c.read_response(method)
                    outcome = r.status
                except EOFError:
                    outcome = "empty reply" if not c.buf else "truncated reply %r" % bytes(c.buf[:80])
                except (ValueError, socket.timeout) as e:
                    outcome = "%s %r" % (type(e).__name__, bytes(c.buf[:80]))
            if outcome != 502:
                failures.append("%s: %s" % (label, outcome))
        self.assertEqual(failures, [], "expected 502 for every case")
        self.assert_serves()


# ---------------------------------------------------------------------------------------
# 9. Out of file descriptors
# ---------------------------------------------------------------------------------------

class AdoptedConn(RawConn):
    """A RawConn over a socket that is already connected."""

    def __init__(self, sock, timeout=10.0):
        sock.settimeout(timeout)
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout


class TestOutOfDescriptors(DataPathBase):
    """The proxy's RLIMIT_NOFILE is lowered (prlimit on the running process) to 16 above
    its highest descriptor, and idle client connections take up the rest."""

    def setUp(self):
        super().setUp()
        # Idle clients must outlive the test's steps: long head and idle timeouts.
        self.start(timeouts={"request_header": "30s", "idle": "30s"})
        self.idle = []
        self.addCleanup(self.close_idle)

    def close_idle(self):
        for s in self.idle:
            s.close()
        self.idle = []

    def exhaust(self):
        """Opens idle connections until the proxy accepts no more: it is out of
        descriptors. Returns the connection left waiting in the accept queue. (Counting
        descriptors would not do: the limit is on their numbers, and a thread blocked in
        accept() holds one that /proc does not show.)"""
        pid = self.proxy.pid
        # start_proxy's readiness probe must be gone first: wait for a stable count.
        last = [fd_count(pid)]

        def stable():
            time.sleep(0.2)
            n = fd_count(pid)
            same = n == last[0]
            last[0] = n
            return same
        harness.wait_until(stable, timeout=5, interval=0.01)
        limit = max(int(fd) for fd in os.listdir("/proc/%d/fd" % pid)) + 16
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        for _ in range(40):
            n = fd_count(pid)
            s = socket.create_connection(("127.0.0.1", self.listen), timeout=5)
            self.idle.append(s)
            if not harness.wait_until(lambda: fd_count(pid) > n, timeout=1.0 * SLACK):
                return self.idle.pop()
        self.fail("the proxy accepted 40 connections under a limit of %d descriptors" % limit)

    def test_emfile_on_upstream_connect_is_503_local_overload_without_ejection(self):
        pid = self.proxy.pid
        pending = self.exhaust()
        full = fd_count(pid)
        mark = self.log_mark()
        # One descriptor comes free and goes to the pending connection: the proxy has a
        # client and none left for the upstream.
        self.idle.pop().close()
        bodies = []
        c = AdoptedConn(pending)
        try:
            for i in range(3):
                c.send(request_bytes("GET", "/fd/%d" % i))
                for _ in range(4):
                    try:
                        r = c.read_response()
                        break
                    except EOFError:
                        # Closed unanswered: shed at accept while out of descriptors (a
                        # reserve-descriptor scheme may do so). One more free descriptor,
                        # and again on a new connection.
                        self.assertFalse(c.buf, "a truncated answer: %r" % bytes(c.buf))
                        self.assertTrue(self.idle, "every connection was shed")
                        c.close()
                        self.idle.pop().close()
                        c = RawConn(self.listen, timeout=10)
                        c.send(request_bytes("GET", "/fd/%d" % i))
                else:
                    self.fail("request %d: the proxy closed 4 connections unanswered" % i)
                self.assertEqual(r.status, 503, "request %d while out of descriptors: %r %r"
                                 % (i, r, r.body))
                bodies.append(r.body)
                if r.get("connection", "").lower() == "close":
                    c.close()  # its descriptor goes to the next connection
                    c = RawConn(self.listen, timeout=10)
        finally:
            c.close()
        for b in bodies:
            self.assertIn(b"local_overload", b)
        n_idle = len(self.idle)
        self.close_idle()
        self.assertTrue(harness.wait_until(lambda: fd_count(pid) <= full - n_idle, timeout=3),
                        "the proxy did not close the idle connections")
        # The endpoint was not ejected: served at once.
        t0 = time.monotonic()
        r = self.get("/fd/after")
        self.assertEqual((r.status, r.body), (200, b"/fd/after"))
        self.assertLess(time.monotonic() - t0, 1.0 * SLACK)
        self.assertNotIn("upstream endpoint ejected", self.log_since(mark))
        self.assertEqual(self.metric("grayproxy_upstream_errors_total", route="r", version="stable",
                                     reason="local_overload"), 3)

    def test_accept_failures_are_logged_a_few_times_a_second(self):
        pending = self.exhaust()
        self.addCleanup(pending.close)
        mark = self.log_mark()
        seconds = 2.0
        stop_at = time.monotonic() + seconds
        flood = 0
        for _ in range(10000):  # a connection attempt every 20 ms, each closed at once
            if time.monotonic() >= stop_at:
                break
            try:
                socket.create_connection(("127.0.0.1", self.listen), timeout=0.5).close()
                flood += 1
            except OSError:
                pass
            time.sleep(0.02)
        lines = self.log_since(mark).count("accept failed")
        self.assertGreater(flood, 10)
        self.assertLessEqual(lines, 5 * seconds + 2,
                             "%d 'accept failed' lines in %.0f s while out of descriptors" % (lines, seconds))
        self.close_idle()
        pending.close()
        self.assert_proxy_alive()
        # Accepting again once descriptors are free (the flood's connections go first).
        t0 = time.monotonic()
        r = self.get("/fd/back", timeout=10)
        self.assertEqual((r.status, r.body), (200, b"/fd/back"))
        self.assertLess(time.monotonic() - t0, 3.0 * SLACK)


# ---------------------------------------------------------------------------------------
# 10. HTTP/1.0 without Host
# ---------------------------------------------------------------------------------------

class TestHttp10WithoutHost(DataPathBase):

    def test_forwarded_as_http11_with_the_endpoint_as_host(self):
        self.start()
        with RawConn(self.listen, timeout=5) as c:
            c.send(b"GET /h10 HTTP/1.0\r\n\r\n")
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"/h10"))
        got = self.up.received("/h10")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].version, "HTTP/1.1")
        self.assertEqual(got[0].field("host"), [b"127.0.0.1:%d" % self.up.port],
                         "forwarded:\n%s" % got[0].head.decode("latin-1"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
