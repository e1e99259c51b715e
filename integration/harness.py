"""Shared helpers for grayproxy's end-to-end tests (standard library only).

Everything binds 127.0.0.1; every wait is bounded in time and in iterations; every
process a test starts is stopped in tearDown (terminate, wait, kill).

The proxy binary is $GRAYPROXY_BIN (ctest sets it); run by hand, the first
build*/proxy/grayproxy under the source tree is used.
"""

import glob
import hashlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"
UPSTREAM = os.path.join(HERE, "upstream.py")
sys.path.insert(0, HERE)
import upstream as _upstream  # noqa: E402  (pattern_chunk, shared with the upstream)


# ---------------------------------------------------------------------------------------
# Binary, ports, processes
# ---------------------------------------------------------------------------------------

def proxy_bin():
    b = os.environ.get("GRAYPROXY_BIN")
    if b:
        return b
    for cand in sorted(glob.glob(os.path.join(ROOT, "build*", "proxy", "grayproxy"))):
        if os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("GRAYPROXY_BIN is not set and no build*/proxy/grayproxy exists")


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (bind :0, read, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_port(port, timeout=10.0, proc=None, interval=0.05):
    """Poll until 127.0.0.1:port accepts a TCP connection. Returns True/False.
    Stops early (False) if proc exits."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return False


def wait_until(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return pred()


def stop_process(proc, timeout=5.0, sig=signal.SIGTERM):
    """Send sig, wait up to timeout, then SIGKILL. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    return proc.returncode


def read_first_line(proc, timeout=10.0):
    """First stdout line of proc, bounded in time (b'' on timeout or EOF)."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    for _ in range(10000):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], min(left, 0.1))
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0]
    return buf


def start_upstream(name, port=0, log_dir=None, args=()):
    """Start upstream.py (with extra command-line args); returns (proc, port)."""
    err = open(os.path.join(log_dir, "upstream-%s.stderr" % name), "ab") if log_dir else subprocess.DEVNULL
    proc = subprocess.Popen([PYTHON, UPSTREAM, "--port", str(port), "--name", name] + list(args),
                            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    if log_dir:
        err.close()
    line = read_first_line(proc, timeout=10.0)
    if not line.startswith(b"LISTENING "):
        stop_process(proc)
        raise RuntimeError("upstream %s did not start: %r" % (name, line))
    return proc, int(line.split()[1])


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------

def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if s == "" or any(c in s for c in ":#{}[],&*!|>'\"%@`") or s.strip() != s:
        return json.dumps(s)
    return s


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists/scalars (enough for grayproxy configs)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, k, _scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = to_yaml(v, indent + 2).split("\n")
                inner[0] = pad + "- " + inner[0][indent + 2:]
                out.append("\n".join(inner))
            else:
                out.append("%s- %s" % (pad, _scalar(v)))
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


def base_config(listen_port, admin_port, clusters, routes, state_dir, **overrides):
    cfg = {
        "workers": 2,
        "state_dir": state_dir,
        "admin": {"address": "127.0.0.1:%d" % admin_port},
        "timeouts": {"request_header": "2s", "idle": "5s", "upstream_connect": "1s",
                     "upstream_response": "2s", "drain": "2s"},
        "limits": {"max_request_header_bytes": 8192},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % listen_port}],
        "clusters": clusters,
        "routes": routes,
    }
    cfg.update(overrides)
    return cfg


# ---------------------------------------------------------------------------------------
# Prometheus text exposition
# ---------------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------------------------------
# Raw HTTP over sockets
# ---------------------------------------------------------------------------------------

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.body = body
        self.raw_head = raw_head

    def get_all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def get(self, name, default=None):
        v = self.get_all(name)
        return v[0] if v else default

    def has(self, name):
        return bool(self.get_all(name))

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %d %r body=%dB>" % (self.version, self.status, self.headers, len(self.body))


class RawConn:
    """A client TCP connection with a receive buffer; parses responses one at a time."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed by peer")
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise EOFError("connection closed by peer")
        self.buf += data

    def _readline(self, limit=1 << 20):
        for _ in range(1 << 20):
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()
        raise ValueError("unreachable")

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self, method="GET", skip_1xx=True):
        """Read one response. Raises EOFError if the peer closed before a complete one."""
        while True:
            resp = self._read_one(method)
            if skip_1xx and 100 <= resp.status < 200:
                continue
            return resp

    def _read_one(self, method):
        status_line = self._readline()
        raw = status_line
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % status_line)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for _ in range(10000):
            line = self._readline()
            raw += line
            text = line.decode("latin-1").rstrip("\r\n")
            if text == "":
                break
            name, _, value = text.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        resp = Response(version, status, reason, headers, b"", raw)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        te = ",".join(resp.get_all("transfer-encoding")).lower()
        if "chunked" in te:
            body = bytearray()
            for _ in range(1 << 24):
                size_line = self._readline()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    for _ in range(10000):
                        if not self._readline().strip():
                            break
                    break
                body += self._read_exact(size)
                self._read_exact(2)
            resp.body = bytes(body)
        elif resp.has("content-length"):
            resp.body = self._read_exact(int(resp.get("content-length")))
        else:
            resp.body = self.read_until_close()
        return resp

    def read_until_close(self, timeout=None):
        """All bytes until the peer closes (or timeout: socket.timeout propagates)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        for _ in range(1 << 24):
            try:
                self._fill()
            except EOFError:
                break
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def is_closed(self, timeout=2.0):
        """True if the peer closes (EOF or reset) within timeout with no further bytes."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            self.buf += data
            return False
        self.eof = True
        return True


def read_until_close(sock, deadline):
    """Reads until the peer closes or resets, or the deadline (monotonic) passes.
    Returns (bytes read, whether the peer closed)."""
    out = bytearray()
    for _ in range(1 << 20):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return bytes(out), True
        if not d:
            return bytes(out), True
        out += d
    return bytes(out), False


def raw_exchange(port, data, timeout=5.0):
    """Send bytes, read until the peer closes or timeout. Returns the bytes read."""
    with RawConn(port, timeout=timeout) as c:
        c.send(data)
        return read_until_close(c.sock, time.monotonic() + timeout)[0]


def status_lines(data):
    """Status codes of all 'HTTP/1.x NNN' status lines found at line starts in data."""
    codes = []
    for line in data.split(b"\r\n"):
        if line.startswith(b"HTTP/1.") and len(line) >= 12:
            try:
                codes.append(int(line[9:12]))
            except ValueError:
                pass
    return codes


def request_bytes(method, target, host="example.test", headers=(), body=b"", version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, target, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ---------------------------------------------------------------------------------------
# curl, hashing, RSS
# ---------------------------------------------------------------------------------------

def curl(args, max_time=30, input=None, check=False):
    """Run curl (bounded by --max-time and a subprocess timeout). Returns CompletedProcess
    with bytes stdout/stderr."""
    cmd = ["curl", "-sS", "--max-time", str(max_time)] + list(args)
    return subprocess.run(cmd, input=input, capture_output=True, timeout=max_time + 15, check=check)


def pattern_sha256(n):
    h = hashlib.sha256()
    off = 0
    while off < n:
        k = min(_upstream.CHUNK, n - off)
        h.update(_upstream.pattern_chunk(off, k))
        off += k
    return h.hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for _ in range(1 << 30):
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Samples /proc/PID/status VmRSS every interval seconds until stop()."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples = []
        self._halt = threading.Event()

    def run(self):
        for _ in range(10 ** 7):
            v = rss_kib(self.pid)
            if v is not None:
                self.samples.append(v)
            if self._halt.wait(self.interval):
                break

    def stop(self):
        self._halt.set()
        self.join(timeout=5)

    @property
    def max_kib(self):
        return max(self.samples) if self.samples else None


def http_get_json(port, path, timeout=10.0, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, json.loads(body) if body else None
    finally:
        c.close()


def upstream_stats(port):
    st, js = http_get_json(port, "/__stats")
    assert st == 200, st
    return js


# ---------------------------------------------------------------------------------------
# TestCase base
# ---------------------------------------------------------------------------------------

class ProxyTestCase(unittest.TestCase):
    """Starts processes on demand; stops them all in tearDown; prints logs on failure."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gp-int-")
        self.state_dir = os.path.join(self.tmp, "state")
        os.makedirs(self.state_dir, exist_ok=True)
        self._procs = []  # (name, proc)
        self._logs = []   # paths
        self.proxy = None
        self.proxy_stderr = None

    def tearDown(self):
        for name, proc in reversed(self._procs):
            stop_process(proc)
            if proc.stdout:
                proc.stdout.close()
        reports = self._sanitizer_reports()
        failed = self._failed() or bool(reports)
        if failed:
            for path in self._logs:
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                tail = data[-6000:].decode("utf-8", "replace")
                sys.stderr.write("\n----- %s (last %d bytes) -----\n%s\n----- end -----\n"
                                 % (path, len(tail), tail))
            sys.stderr.write("(logs kept in %s)\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if reports:
            self.fail("sanitizer report in the proxy's stderr:\n" + "\n".join(reports))

    # What ASan, LSan and UBSan print (halt_on_error makes the proxy exit on the first).
    _SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

    def _sanitizer_reports(self):
        """Sanitizer reports in the proxies' stderr, in a sanitizer build (ctest sets
        GRAYPROXY_SANITIZED=1 there): a report fails the test even when every request
        succeeded, e.g. one found while the proxy shut down."""
        if os.environ.get("GRAYPROXY_SANITIZED") != "1":
            return []
        out = []
        for path in self._logs:
            if not os.path.basename(path).startswith("proxy"):
                continue
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            for marker in self._SANITIZER_MARKERS:
                i = text.find(marker)
                if i >= 0:
                    out.append("%s: %s" % (path, text[max(0, i - 200):i + 3000]))
                    break
        return out

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return True
        for test, _ in list(result.failures) + list(result.errors):
            if test is self:
                return True
        return not getattr(outcome, "success", True)

    # -- processes ----------------------------------------------------------------------

    def start_upstream(self, name, port=0, args=()):
        proc, port = start_upstream(name, port, log_dir=self.tmp, args=args)
        self._procs.append(("upstream-" + name, proc))
        self._logs.append(os.path.join(self.tmp, "upstream-%s.stderr" % name))
        return proc, port

    def write_config(self, cfg, name="grayproxy.yaml"):
        path = os.path.join(self.tmp, name)
        text = cfg if isinstance(cfg, str) else to_yaml(cfg) + "\n"
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_proxy(self, cfg, listen_port, extra_args=(), wait=True):
        """Write cfg (dict or YAML text), start the proxy, wait until listen_port accepts."""
        path = self.write_config(cfg)
        n = sum(1 for n, _ in self._procs if n.startswith("proxy"))
        err_path = os.path.join(self.tmp, "proxy%d.stderr" % n)
        err = open(err_path, "ab")
        proc = subprocess.Popen([proxy_bin(), "-c", path] + list(extra_args),
                                stdout=err, stderr=err, stdin=subprocess.DEVNULL)
        err.close()
        self._procs.append(("proxy%d" % n, proc))
        self._logs.append(err_path)
        self.proxy = proc
        self.proxy_stderr = err_path
        if wait and not wait_port(listen_port, timeout=10.0, proc=proc):
            self.fail("proxy did not listen on 127.0.0.1:%d within 10 s (exit code %r); stderr:\n%s"
                      % (listen_port, proc.poll(), self.read_proxy_stderr()))
        # The admin listener starts on a thread of its own, possibly after the public one: a
        # test that reads /metrics first must not race it.
        admin = cfg.get("admin", {}).get("address", "") if isinstance(cfg, dict) else ""
        if wait and admin.startswith("127.0.0.1:") and not wait_port(
                int(admin.rsplit(":", 1)[1]), timeout=10.0, proc=proc):
            self.fail("proxy admin did not listen on %s within 10 s; stderr:\n%s"
                      % (admin, self.read_proxy_stderr()))
        return proc

    def start_prometheus(self, config_text):
        """A real Prometheus server on a free loopback port with config_text (written
        into the test's temp dir, beside any rule files copied there); returns its port
        once /-/ready answers."""
        port = free_port()
        data = os.path.join(self.tmp, "prom-data")
        os.makedirs(data)
        cfg = os.path.join(self.tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(config_text)
        log = os.path.join(self.tmp, "prometheus.log")
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + data,
                 "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=self.tmp)
        self._procs.append(("prometheus", proc))
        self._logs.append(log)

        def ready():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/-/ready")
                st = c.getresponse().status
                c.close()
                return st == 200
            except OSError:
                return False
        self.assertTrue(wait_until(ready, timeout=60, interval=0.2),
                        "prometheus not ready (exit %r)" % proc.poll())
        return port

    def prom_query(self, port, q):
        """An instant PromQL query over the HTTP API; returns data.result."""
        import urllib.parse
        st, js = http_get_json(port, "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        self.assertEqual(st, 200, js)
        self.assertEqual(js["status"], "success", js)
        return js["data"]["result"]

    # -- metrics (for tests that set self.admin to the proxy's admin port) ---------------

    def metrics(self):
        """The proxy's /metrics, parsed: {(name, frozenset(labels)): value}."""
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            text = r.read().decode()
            self.assertEqual(r.status, 200)
        finally:
            c.close()
        return parse_metrics(text)

    def metric(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.metrics().items() if n == name and want <= set(ls))

    def read_proxy_stderr(self):
        try:
            with open(self.proxy_stderr, "rb") as f:
                return f.read()[-8000:].decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def assert_proxy_alive(self):
        self.assertIsNone(self.proxy.poll(), "proxy exited (code %r); stderr:\n%s"
                          % (self.proxy.poll(), self.read_proxy_stderr()))
