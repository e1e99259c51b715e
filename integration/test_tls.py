#!/usr/bin/python3
"""End-to-end tests of TLS: termination on listeners (versions, ALPN, SNI certificates,
handshake failure metrics, certificate rotation on SIGHUP, bad files on reload) and TLS to
upstreams (chain and host-name verification, mTLS, verify: false, keep-alive reuse, session
resumption). Real binary ($GRAYPROXY_BIN), real clients (curl, openssl s_client, Python ssl).

A test CA, a second (wrong) CA and all certificates are generated with the openssl CLI when
the module starts, in a temporary directory removed at the end; nothing is committed.
TLS upstreams are TlsUpstream below: Python's ssl module around a threaded HTTP/1.1
keep-alive server that echoes the request as JSON and counts connections."""

import copy
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from pki import Pki  # noqa: E402
from harness import RawConn, request_bytes  # noqa: E402

WORKERS = 2

# ---------------------------------------------------------------------------------------
# Test PKI (openssl CLI)
# ---------------------------------------------------------------------------------------

PKI = None  # the Pki of this run (setUpModule)


def setUpModule():
    global PKI
    PKI = Pki(tempfile.mkdtemp(prefix="gp-tls-pki-"))
    p = PKI
    p.ca("ca", "grayproxy test CA")
    p.ca("wrongca", "grayproxy wrong CA")
    p.leaf("proxy", "proxy.test", dns=["proxy.test", "localhost"], ips=["127.0.0.1"])
    p.leaf("a", "a.example", dns=["a.example"])
    p.leaf("wild", "wildcard.b.example", dns=["*.b.example"])
    p.leaf("rot1", "rotation-one.test", dns=["proxy.test"])
    p.leaf("rot2", "rotation-two.test", dns=["proxy.test"])
    p.leaf("upstream", "upstream.test", dns=["upstream.test"], ips=["127.0.0.1"])
    p.leaf("upstream_noip", "upstream-noip.test", dns=["upstream-noip.test"])
    p.leaf("upstream_wrongca", "upstream.test", dns=["upstream.test"], ips=["127.0.0.1"],
           ca="wrongca")
    p.leaf("selfsigned", "selfsigned.test", dns=["selfsigned.test"], ips=["127.0.0.1"],
           self_signed=True)
    p.leaf("client", "grayproxy-client", dns=["grayproxy-client"])
    p.leaf("client_wrongca", "grayproxy-client", dns=["grayproxy-client"], ca="wrongca")


def tearDownModule():
    if PKI is not None:
        shutil.rmtree(PKI.root, ignore_errors=True)


def pem(name):
    return PKI.path(name + ".crt"), PKI.path(name + ".key")


# ---------------------------------------------------------------------------------------
# A TLS upstream: threaded HTTP/1.1 keep-alive server, echoes the request as JSON
# ---------------------------------------------------------------------------------------

class TlsUpstream:
    """Listens on 127.0.0.1 (free port). Every response is 200 with a JSON body:
    {"method", "path", "headers" (lower-case names), "conn" (connection number), "sni",
    "resumed", "alpn", "client_cn"}. idle_close: close a connection idle that long."""

    MAX_HEAD = 64 * 1024

    def __init__(self, cert, key, client_ca=None, idle_close=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        ctx.sni_callback = self._on_sni
        self.ctx = ctx
        self.idle_close = idle_close
        self.lock = threading.Lock()
        self.connections = 0          # accepted TCP connections
        self.handshakes = 0           # completed TLS handshakes
        self.resumed = 0              # of which resumed a session
        self.handshake_errors = []    # str(exception) of failed handshakes
        self.requests = 0
        self.snis = []                # SNI of each handshake (None: none sent)
        self._socks = set()
        self._halt = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _on_sni(self, sock, name, ctx):
        try:
            sock.gp_sni = name
        except AttributeError:
            pass
        return None

    def stats(self):
        with self.lock:
            return {"connections": self.connections, "handshakes": self.handshakes,
                    "resumed": self.resumed, "requests": self.requests,
                    "handshake_errors": list(self.handshake_errors), "snis": list(self.snis)}

    def stop(self):
        self._halt.set()
        self._thread.join(timeout=5)
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept_loop(self):
        for _ in range(10 ** 8):
            if self._halt.is_set():
                return
            try:
                raw, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
                self._socks.add(raw)
            threading.Thread(target=self._serve, args=(raw, n), daemon=True).start()

    def _serve(self, raw, n):
        raw.settimeout(10)
        try:
            try:
                s = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with self.lock:
                    self.handshake_errors.append(str(e))
                return
            with self.lock:
                self._socks.discard(raw)
                self._socks.add(s)
                self.handshakes += 1
                self.resumed += 1 if s.session_reused else 0
                self.snis.append(getattr(s, "gp_sni", None))
            peer = s.getpeercert() or {}
            client_cn = None
            for rdn in peer.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        client_cn = v
            info = {"conn": n, "sni": getattr(s, "gp_sni", None), "resumed": s.session_reused,
                    "alpn": s.selected_alpn_protocol(), "client_cn": client_cn}
            try:
                self._requests(s, info)
            finally:
                with self.lock:
                    self._socks.discard(s)
                s.close()
        finally:
            try:
                raw.close()
            except OSError:
                pass

    def _requests(self, s, info):
        buf = b""
        for _ in range(100000):
            s.settimeout(self.idle_close if self.idle_close else 30)
            # head
            for _ in range(10000):
                if b"\r\n\r\n" in buf:
                    break
                try:
                    d = s.recv(65536)
                except (socket.timeout, ssl.SSLError, OSError):
                    return
                if not d:
                    return
                buf += d
                if len(buf) > self.MAX_HEAD:
                    return
            s.settimeout(10)
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0") or 0)
            for _ in range(100000):
                if len(buf) >= n:
                    break
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf[n:]
            with self.lock:
                self.requests += 1
            body = json.dumps(dict(info, method=method, path=target, headers=headers)).encode()
            close = headers.get("connection", "").lower() == "close"
            resp = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n%s\r\n" % (len(body), "Connection: close\r\n" if close else ""))
            try:
                s.sendall(resp.encode() + body)
            except OSError:
                return
            if close:
                return


# ---------------------------------------------------------------------------------------
# Clients and metrics
# ---------------------------------------------------------------------------------------

parse_metrics = harness.parse_metrics  # one parser of the exposition format for all tests


def client_context(cafile=None, alpn=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile or PKI.path("ca.crt"))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_conn(port, server_name="proxy.test", ctx=None, timeout=10.0):
    """A RawConn whose socket is TLS (handshake done)."""
    c = RawConn(port, timeout=timeout)
    try:
        c.sock = (ctx or client_context()).wrap_socket(c.sock, server_hostname=server_name)
    except BaseException:
        c.close()
        raise
    return c


def peer_cn(sock):
    for rdn in sock.getpeercert().get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def s_client(port, *args, timeout=20):
    """openssl s_client against 127.0.0.1:port; stdin is empty so it exits after the
    handshake. Returns (returncode, stdout+stderr as text)."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args)
    r = subprocess.run(cmd, input=b"", capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def s_client_cn(out):
    m = re.search(r"^subject=.*?CN\s*=\s*([^,/\n]+)", out, re.M)
    return m.group(1).strip() if m else None


class TlsCase(harness.ProxyTestCase):
    """Helpers shared by the TLS test classes."""

    def setUp(self):
        super().setUp()
        self.upstreams = []

    def tearDown(self):
        for u in self.upstreams:
            u.stop()
        super().tearDown()

    def tls_upstream(self, name, **kw):
        cert, key = pem(name)
        u = TlsUpstream(cert, key, **kw)
        self.upstreams.append(u)
        return u

    def metrics(self):
        st, _ = 0, None
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read().decode()
            self.assertEqual(r.status, 200, body)
            return parse_metrics(body)
        finally:
            c.close()

    def metric(self, name, m=None, **labels):
        """Sum of the samples of `name` whose labels include `labels`."""
        m = self.metrics() if m is None else m
        want = set(labels.items())
        return sum(v for (n, ls), v in m.items() if n == name and want <= set(ls))

    def handshake_failures(self, reason, listener="secure", m=None):
        return self.metric("grayproxy_tls_handshake_failures_total", m,
                           listener=listener, reason=reason)

    def https_get(self, port, path="/", server_name="proxy.test", ctx=None):
        with tls_conn(port, server_name, ctx) as c:
            c.send(request_bytes("GET", path, host=server_name))
            return c.read_response()


# ---------------------------------------------------------------------------------------
# TLS listener (termination)
# ---------------------------------------------------------------------------------------

class TlsListenerTest(TlsCase):
    """Listener "secure" (TLS, SNI map) and "plain" in front of upstream.py."""

    def setUp(self):
        super().setUp()
        self.up, self.up_port = self.start_upstream("v1")
        self.port = harness.free_port()
        self.plain = harness.free_port()
        self.admin = harness.free_port()
        cert, key = pem("proxy")
        self.cfg = harness.base_config(
            self.port, self.admin,
            clusters=[{"name": "v1", "endpoints": ["127.0.0.1:%d" % self.up_port]}],
            routes=[{"name": "r", "match": {"path_prefix": "/"}, "stable": "v1"}],
            state_dir=self.state_dir, workers=WORKERS)
        self.cfg["listeners"] = [
            {"name": "secure", "address": "127.0.0.1:%d" % self.port,
             "tls": {"cert_file": cert, "key_file": key,
                     "certificates": [
                         {"server_names": ["a.example"],
                          "cert_file": pem("a")[0], "key_file": pem("a")[1]},
                         {"server_names": ["*.b.example"],
                          "cert_file": pem("wild")[0], "key_file": pem("wild")[1]}],
                     "handshake_timeout": "1s"}},
            {"name": "plain", "address": "127.0.0.1:%d" % self.plain},
        ]
        self.start_proxy(self.cfg, self.port)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy))

    def test_curl_with_cacert_gets_200_and_upstream_sees_https(self):
        r = harness.curl(["--cacert", PKI.path("ca.crt"), "--http1.1",
                          "--resolve", "proxy.test:%d:127.0.0.1" % self.port,
                          "-w", "\n%{http_code} %{ssl_verify_result}",
                          "https://proxy.test:%d/hello?x=1" % self.port])
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, tail = r.stdout.decode().rpartition("\n")
        self.assertEqual(tail, "200 0", r.stdout)
        js = json.loads(body)
        self.assertEqual(js["headers"].get("x-forwarded-proto"), "https", js)
        # Without the CA, curl refuses the certificate.
        r = harness.curl(["--resolve", "proxy.test:%d:127.0.0.1" % self.port,
                          "--capath", "/nonexistent", "--cacert", PKI.path("wrongca.crt"),
                          "https://proxy.test:%d/" % self.port])
        self.assertNotEqual(r.returncode, 0, r.stdout)
        # The plain listener of the same proxy says http.
        r = harness.curl(["http://127.0.0.1:%d/" % self.plain])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["headers"].get("x-forwarded-proto"), "http")
        # A client-supplied X-Forwarded-Proto is not trusted over TLS either.
        resp = None
        with tls_conn(self.port) as c:
            c.send(request_bytes("GET", "/", headers=[("X-Forwarded-Proto", "http")]))
            resp = c.read_response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["headers"].get("x-forwarded-proto"), "https", resp.body)

    def test_tls_versions(self):
        before = self.handshake_failures("unsupported_protocol")
        for flag in ("-tls1", "-tls1_1"):
            rc, out = s_client(self.port, flag, "-cipher", "DEFAULT:@SECLEVEL=0",
                               "-servername", "proxy.test")
            self.assertNotEqual(rc, 0, "%s handshake succeeded:\n%s" % (flag, out))
            # The refusal comes from the server: it answers with a protocol_version alert.
            self.assertIn("alert protocol version", out, out)
        # Both refusals were counted by the proxy.
        self.assertTrue(harness.wait_until(
            lambda: self.handshake_failures("unsupported_protocol") >= before + 2, timeout=5),
            self.metrics_text_for("grayproxy_tls_handshake_failures_total"))
        for flag, proto in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            rc, out = s_client(self.port, flag, "-servername", "proxy.test",
                               "-CAfile", PKI.path("ca.crt"), "-verify_return_error")
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"New, %s, Cipher is" % re.escape(proto), out)
            self.assertIn("Verify return code: 0 (ok)", out)
        # Python's client agrees on TLS 1.3 by default.
        with tls_conn(self.port) as c:
            self.assertEqual(c.sock.version(), "TLSv1.3")
            c.send(request_bytes("GET", "/"))
            self.assertEqual(c.read_response().status, 200)

    def test_tls12_uses_intermediate_ciphers_only(self):
        # A TLS 1.2 client offering only a CBC/SHA1 suite (not in Mozilla intermediate)
        # is refused; one offering an ECDHE-ECDSA GCM suite gets it.
        rc, out = s_client(self.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA",
                           "-servername", "proxy.test")
        self.assertNotEqual(rc, 0, out)
        rc, out = s_client(self.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                           "-servername", "proxy.test")
        self.assertEqual(rc, 0, out)
        self.assertIn("ECDHE-ECDSA-AES128-GCM-SHA256", out)

    def metrics_text_for(self, name):
        return "\n".join("%s %r %s" % (n, sorted(ls), v) for (n, ls), v in
                         self.metrics().items() if n == name)

    def test_alpn_http11(self):
        rc, out = s_client(self.port, "-alpn", "h2,http/1.1", "-servername", "proxy.test")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: http/1.1", out)
        with tls_conn(self.port, ctx=client_context(alpn=["h2", "http/1.1"])) as c:
            self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
            c.send(request_bytes("GET", "/"))
            self.assertEqual(c.read_response().status, 200)
        # A client offering only h2 still completes the handshake (no ALPN) and gets HTTP/1.1.
        with tls_conn(self.port, ctx=client_context(alpn=["h2"])) as c:
            self.assertIsNone(c.sock.selected_alpn_protocol())
            c.send(request_bytes("GET", "/"))
            resp = c.read_response()
            self.assertEqual((resp.version, resp.status), ("HTTP/1.1", 200))

    def test_sni_selects_certificate(self):
        cases = [("a.example", "a.example"), ("A.Example", "a.example"),
                 ("x.b.example", "wildcard.b.example"), ("deep.x.b.example", "wildcard.b.example"),
                 ("b.example", "proxy.test"), ("other.test", "proxy.test"),
                 ("proxy.test", "proxy.test")]
        for name, cn in cases:
            rc, out = s_client(self.port, "-servername", name)
            self.assertEqual(rc, 0, out)
            self.assertEqual(s_client_cn(out), cn, "SNI %s:\n%s" % (name, out))
        rc, out = s_client(self.port, "-noservername")
        self.assertEqual(rc, 0, out)
        self.assertEqual(s_client_cn(out), "proxy.test", out)
        # The chosen certificate verifies and serves requests (ALPN kept on SNI contexts).
        with tls_conn(self.port, "a.example", ctx=client_context(alpn=["http/1.1"])) as c:
            self.assertEqual(peer_cn(c.sock), "a.example")
            self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
            c.send(request_bytes("GET", "/", host="a.example"))
            self.assertEqual(c.read_response().status, 200)
        with tls_conn(self.port, "x.b.example") as c:
            self.assertEqual(peer_cn(c.sock), "wildcard.b.example")
            c.send(request_bytes("GET", "/", host="x.b.example"))
            self.assertEqual(c.read_response().status, 200)

    def test_handshake_failure_metrics(self):
        m0 = self.metrics()
        # Plain HTTP to the TLS port.
        harness.raw_exchange(self.port, request_bytes("GET", "/"), timeout=3)
        # A client that does not trust the certificate aborts with unknown_ca.
        with self.assertRaises(ssl.SSLError):
            tls_conn(self.port, ctx=client_context(cafile=PKI.path("wrongca.crt"))).close()
        # Connect and close without a byte.
        socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        # Connect and stay silent past handshake_timeout (1s).
        with RawConn(self.port) as c:
            self.assertTrue(c.is_closed(timeout=4), "idle handshake not closed after 1s timeout")
        expect = {"http_request": 1, "tlsv1_alert_unknown_ca": 1, "closed": 1, "timeout": 1}

        def counted():
            m = self.metrics()
            return all(self.handshake_failures(r, m=m) - self.handshake_failures(r, m=m0) >= n
                       for r, n in expect.items())
        self.assertTrue(harness.wait_until(counted, timeout=5),
                        self.metrics_text_for("grayproxy_tls_handshake_failures_total"))
        # The plain listener has no TLS failures.
        self.assertEqual(self.metric("grayproxy_tls_handshake_failures_total", listener="plain"), 0)

    def test_plain_http_to_tls_port_does_not_disturb_other_connections(self):
        # An established TLS keep-alive connection and a half-done handshake.
        keep = tls_conn(self.port)
        self.addCleanup(keep.close)
        keep.send(request_bytes("GET", "/one"))
        self.assertEqual(keep.read_response().status, 200)
        silent = RawConn(self.port)
        self.addCleanup(silent.close)
        # Plain HTTP (and garbage) to the TLS port, several times, concurrently.
        outs = []

        def plain():
            outs.append(harness.raw_exchange(
                self.port, request_bytes("GET", "/", headers=[("X", "y")]) * 3, timeout=3))
        threads = [threading.Thread(target=plain) for _ in range(8)]
        for t in threads:
            t.start()
        harness.raw_exchange(self.port, b"\x00" * 5000 + b"garbage\r\n\r\n", timeout=3)
        for t in threads:
            t.join(timeout=10)
        self.assertEqual(len(outs), 8)
        for out in outs:
            self.assertNotIn(b"HTTP/1.1 200", out)
        # Everything else still works: the old connection, new TLS connections, plain listener.
        keep.send(request_bytes("GET", "/two"))
        resp = keep.read_response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["path"], "/two")
        for i in range(5):
            self.assertEqual(self.https_get(self.port, "/after%d" % i).status, 200)
        self.assertEqual(harness.curl(["-o", "/dev/null", "-w", "%{http_code}",
                                       "http://127.0.0.1:%d/" % self.plain]).stdout, b"200")
        self.assert_proxy_alive()
        self.assertGreaterEqual(self.handshake_failures("http_request"), 8)

    def test_keepalive_and_pipelining_over_tls(self):
        with tls_conn(self.port) as c:
            for i in range(20):
                c.send(request_bytes("GET", "/k%d" % i))
                resp = c.read_response()
                self.assertEqual(resp.status, 200)
                self.assertEqual(resp.json()["path"], "/k%d" % i)
            # Pipelined, with a POST body in between.
            c.send(request_bytes("GET", "/p1") + request_bytes("POST", "/p2", body=b"x" * 100000)
                   + request_bytes("GET", "/p3"))
            paths = [c.read_response().json()["path"] for _ in range(3)]
            self.assertEqual(paths, ["/p1", "/p2", "/p3"])
        # A large response over TLS.
        with tls_conn(self.port) as c:
            n = 3 * 1024 * 1024 + 17
            c.send(request_bytes("GET", "/big?bytes=%d" % n))
            resp = c.read_response()
            self.assertEqual(resp.status, 200)
            self.assertEqual(len(resp.body), n)


# ---------------------------------------------------------------------------------------
# Certificate rotation and bad files on reload
# ---------------------------------------------------------------------------------------

class TlsReloadTest(TlsCase):

    def setUp(self):
        super().setUp()
        self.up, self.up_port = self.start_upstream("v1")
        self.port = harness.free_port()
        self.admin = harness.free_port()
        # Certificate files owned by this test, overwritten to rotate.
        self.cert = os.path.join(self.tmp, "listener.crt")
        self.key = os.path.join(self.tmp, "listener.key")
        self.install("rot1")
        self.cfg = harness.base_config(
            self.port, self.admin,
            clusters=[{"name": "v1", "endpoints": ["127.0.0.1:%d" % self.up_port]}],
            routes=[{"name": "r", "match": {"path_prefix": "/"}, "stable": "v1"}],
            state_dir=self.state_dir, workers=WORKERS)
        self.cfg["listeners"] = [{"name": "secure", "address": "127.0.0.1:%d" % self.port,
                                  "tls": {"cert_file": self.cert, "key_file": self.key}}]
        self.start_proxy(self.cfg, self.port)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy))

    def install(self, name):
        crt, key = pem(name)
        for src, dst in ((crt, self.cert), (key, self.key)):
            tmp = dst + ".new"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)

    def reloads(self, result):
        return self.metric("grayproxy_config_reloads_total", result=result)

    def current_cn(self):
        with tls_conn(self.port) as c:
            return peer_cn(c.sock)

    def test_sighup_rotates_certificate(self):
        self.assertEqual(self.current_cn(), "rotation-one.test")
        old = tls_conn(self.port)
        self.addCleanup(old.close)
        old.send(request_bytes("GET", "/before"))
        self.assertEqual(old.read_response().status, 200)
        ok0 = self.reloads("success")
        self.install("rot2")
        self.proxy.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: self.reloads("success") >= ok0 + 1, timeout=10),
                        self.read_proxy_stderr())
        self.assertTrue(harness.wait_until(lambda: self.current_cn() == "rotation-two.test",
                                           timeout=5), self.read_proxy_stderr())
        # Every new connection now sees the new certificate (all workers).
        for _ in range(10):
            self.assertEqual(self.current_cn(), "rotation-two.test")
        # s_client agrees.
        rc, out = s_client(self.port, "-servername", "proxy.test")
        self.assertEqual(rc, 0, out)
        self.assertEqual(s_client_cn(out), "rotation-two.test", out)
        # The connection made before the rotation keeps working.
        old.send(request_bytes("GET", "/after"))
        self.assertEqual(old.read_response().status, 200)
        self.assertEqual(peer_cn(old.sock), "rotation-one.test")

    def test_missing_key_on_reload_keeps_old_config(self):
        fail0 = self.reloads("failure")
        cfg = copy.deepcopy(self.cfg)
        cfg["listeners"][0]["tls"]["key_file"] = os.path.join(self.tmp, "missing.key")
        cfg["routes"][0]["match"]["path_prefix"] = "/only-new"  # would 404 "/" if applied
        self.write_config(cfg)
        self.proxy.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: self.reloads("failure") >= fail0 + 1,
                                           timeout=10), self.read_proxy_stderr())
        self.assertIn("missing.key", self.read_proxy_stderr())
        self.assert_proxy_alive()
        for i in range(5):
            resp = self.https_get(self.port, "/still%d" % i)
            self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.current_cn(), "rotation-one.test")
        # Deleting the key file the running config names: also a failed reload, old context
        # keeps serving.
        os.unlink(self.key)
        self.write_config(self.cfg)
        self.proxy.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: self.reloads("failure") >= fail0 + 2,
                                           timeout=10), self.read_proxy_stderr())
        self.assertEqual(self.https_get(self.port, "/still").status, 200)
        # A key that does not match the certificate is refused too.
        shutil.copyfile(pem("rot2")[1], self.key)
        self.proxy.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: self.reloads("failure") >= fail0 + 3,
                                           timeout=10), self.read_proxy_stderr())
        self.assertEqual(self.current_cn(), "rotation-one.test")
        # Fixing the files makes the next reload succeed.
        ok0 = self.reloads("success")
        self.install("rot2")
        self.proxy.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: self.reloads("success") >= ok0 + 1,
                                           timeout=10), self.read_proxy_stderr())
        self.assertTrue(harness.wait_until(lambda: self.current_cn() == "rotation-two.test",
                                           timeout=5))

    def test_bad_files_at_startup_are_config_errors(self):
        for field, value in (("cert_file", "/nonexistent/cert.pem"),
                             ("key_file", "/nonexistent/key.pem")):
            port, admin = harness.free_port(), harness.free_port()
            cfg = copy.deepcopy(self.cfg)
            cfg["admin"] = {"address": "127.0.0.1:%d" % admin}
            cfg["listeners"][0]["address"] = "127.0.0.1:%d" % port
            cfg["listeners"][0]["tls"][field] = value
            path = self.write_config(cfg, name="bad-%s.yaml" % field)
            r = subprocess.run([harness.proxy_bin(), "-c", path], capture_output=True, timeout=20)
            self.assertNotEqual(r.returncode, 0, r)
            self.assertIn(value, (r.stdout + r.stderr).decode(), r)
        # The same for a cluster's CA file.
        port, admin = harness.free_port(), harness.free_port()
        cfg = copy.deepcopy(self.cfg)
        cfg["admin"] = {"address": "127.0.0.1:%d" % admin}
        cfg["listeners"][0]["address"] = "127.0.0.1:%d" % port
        cfg["clusters"][0]["tls"] = {"ca_file": "/nonexistent/ca.pem"}
        path = self.write_config(cfg, name="bad-ca.yaml")
        r = subprocess.run([harness.proxy_bin(), "-c", path], capture_output=True, timeout=20)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn("/nonexistent/ca.pem", (r.stdout + r.stderr).decode(), r)


# ---------------------------------------------------------------------------------------
# TLS to upstreams
# ---------------------------------------------------------------------------------------

class TlsUpstreamTest(TlsCase):
    """A plain listener; clusters with TLS to TlsUpstream servers. One worker, so one
    upstream pool."""

    def start(self, clusters, workers=1):
        self.port = harness.free_port()
        self.admin = harness.free_port()
        routes = [{"name": c["name"], "match": {"path_prefix": "/%s/" % c["name"]},
                   "stable": c["name"]} for c in clusters]
        self.cfg = harness.base_config(self.port, self.admin, clusters=clusters, routes=routes,
                                       state_dir=self.state_dir, workers=workers)
        self.start_proxy(self.cfg, self.port)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy))

    def get(self, path, headers=()):
        with RawConn(self.port) as c:
            c.send(request_bytes("GET", path, headers=headers))
            return c.read_response()

    def connect_errors(self, route):
        return self.metric("grayproxy_upstream_errors_total", route=route, version="stable",
                           reason="connect")

    def test_right_ca_works_wrong_ca_or_name_is_502(self):
        # One upstream server per cluster: clusters never share an endpoint here.
        good, goodip = self.tls_upstream("upstream"), self.tls_upstream("upstream")
        named = self.tls_upstream("proxy")  # DNS:localhost in its SANs
        wrongca = self.tls_upstream("upstream_wrongca")
        wrongname = self.tls_upstream("upstream")
        noip, mismatch = self.tls_upstream("upstream_noip"), self.tls_upstream("upstream_noip")
        ca = PKI.path("ca.crt")
        self.start([
            {"name": "good", "endpoints": ["127.0.0.1:%d" % good.port],
             "tls": {"ca_file": ca, "sni": "upstream.test"}},
            {"name": "goodip", "endpoints": ["127.0.0.1:%d" % goodip.port],
             "tls": {"ca_file": ca}},
            {"name": "localhost", "endpoints": ["localhost:%d" % named.port],
             "tls": {"ca_file": ca}},
            {"name": "wrongca", "endpoints": ["127.0.0.1:%d" % wrongca.port],
             "tls": {"ca_file": ca, "sni": "upstream.test"}},
            {"name": "wrongname", "endpoints": ["127.0.0.1:%d" % wrongname.port],
             "tls": {"ca_file": ca, "sni": "other.test"}},
            {"name": "noipsan", "endpoints": ["127.0.0.1:%d" % noip.port],
             "tls": {"ca_file": ca}},
            {"name": "hostmismatch", "endpoints": ["localhost:%d" % mismatch.port],
             "tls": {"ca_file": ca}},
        ])
        resp = self.get("/good/x")
        self.assertEqual(resp.status, 200, resp)
        js = resp.json()
        self.assertEqual(js["sni"], "upstream.test")
        self.assertEqual(js["alpn"], "http/1.1")
        self.assertEqual(js["path"], "/good/x")
        self.assertEqual(js["headers"].get("x-forwarded-proto"), "http")
        # An IP endpoint without sni: checked against the IP SAN, no SNI sent.
        resp = self.get("/goodip/")
        self.assertEqual(resp.status, 200, resp)
        self.assertIsNone(resp.json()["sni"])
        # A host-name endpoint without sni: the endpoint's host is the SNI and the name.
        resp = self.get("/localhost/")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["sni"], "localhost")
        m0 = self.metrics()
        routes = {"wrongca": wrongca, "wrongname": wrongname, "noipsan": noip,
                  "hostmismatch": mismatch}
        for route in routes:
            for i in range(3):
                resp = self.get("/%s/%d" % (route, i))
                self.assertEqual(resp.status, 502, "%s: %r" % (route, resp))
        m1 = self.metrics()
        for route, up in routes.items():
            d = (self.metric("grayproxy_upstream_errors_total", m1, route=route,
                             version="stable", reason="connect")
                 - self.metric("grayproxy_upstream_errors_total", m0, route=route,
                               version="stable", reason="connect"))
            self.assertGreaterEqual(d, 3, route)
            self.assertEqual(self.metric("grayproxy_requests_total", m1, route=route,
                                         code_class="5xx"), 3, route)
            # The upstream saw the aborted handshakes, and no request.
            st = up.stats()
            self.assertEqual(st["requests"], 0, (route, st))
            self.assertGreaterEqual(len(st["handshake_errors"]), 3, (route, st))
        # The endpoint is not ejected: the next request is tried again (and fails by TLS,
        # counted as connect, with a new handshake at the upstream).
        hs = len(wrongname.stats()["handshake_errors"])
        self.assertEqual(self.get("/wrongname/again").status, 502)
        self.assertGreaterEqual(self.connect_errors("wrongname"), 4)
        self.assertGreater(len(wrongname.stats()["handshake_errors"]), hs)
        self.assertEqual(self.get("/good/again").status, 200)
        self.assert_proxy_alive()

    def test_mtls(self):
        ca = PKI.path("ca.crt")
        ups = {name: self.tls_upstream("upstream", client_ca=ca)
               for name in ("mtls", "nocert", "badcert")}
        ccrt, ckey = pem("client")
        wcrt, wkey = pem("client_wrongca")
        self.start([
            {"name": "mtls", "endpoints": ["127.0.0.1:%d" % ups["mtls"].port],
             "tls": {"ca_file": ca, "sni": "upstream.test", "cert_file": ccrt, "key_file": ckey}},
            {"name": "nocert", "endpoints": ["127.0.0.1:%d" % ups["nocert"].port],
             "tls": {"ca_file": ca, "sni": "upstream.test"}},
            {"name": "badcert", "endpoints": ["127.0.0.1:%d" % ups["badcert"].port],
             "tls": {"ca_file": ca, "sni": "upstream.test", "cert_file": wcrt, "key_file": wkey}},
        ])
        for i in range(5):
            resp = self.get("/mtls/%d" % i)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["client_cn"], "grayproxy-client")
        st = ups["mtls"].stats()
        self.assertEqual((st["requests"], st["connections"]), (5, 1), st)
        for route in ("nocert", "badcert"):
            resp = self.get("/%s/" % route)
            self.assertEqual(resp.status, 502, "%s: %r" % (route, resp))
            # The upstream records its failed handshake on its own thread, possibly after
            # the proxy already answered (TLS 1.3 sends the client certificate's verdict late).
            self.assertTrue(harness.wait_until(
                lambda: len(ups[route].stats()["handshake_errors"]) >= 1, timeout=5),
                ups[route].stats())
            self.assertEqual(ups[route].stats()["requests"], 0)
        self.assertEqual(self.get("/mtls/again").status, 200)

    def test_verify_false_accepts_self_signed(self):
        insecure, strict = self.tls_upstream("selfsigned"), self.tls_upstream("selfsigned")
        self.start([
            {"name": "insecure", "endpoints": ["127.0.0.1:%d" % insecure.port],
             "tls": {"verify": False, "sni": "whatever.test"}},
            {"name": "strict", "endpoints": ["127.0.0.1:%d" % strict.port],
             "tls": {"sni": "selfsigned.test"}},  # system trust store: self-signed refused
        ])
        resp = self.get("/insecure/")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["sni"], "whatever.test")
        self.assertEqual(self.get("/strict/").status, 502)
        self.assertGreaterEqual(self.connect_errors("strict"), 1)
        self.assertEqual(strict.stats()["requests"], 0)
        err = self.read_proxy_stderr()
        self.assertRegex(err, r"level=warn[^\n]*verif[^\n]*cluster=insecure", err)
        self.assertNotRegex(err, r"verification[^\n]*off[^\n]*cluster=strict", err)

    def test_clusters_sharing_an_endpoint_do_not_share_tls_connections(self):
        # Two clusters name the same upstream address with different TLS settings. A
        # connection (or TLS session) made for one must never serve the other: "wrongca"
        # must not get through on a connection verified with another CA, "nocert" not on one
        # authenticated with "mtls"'s client certificate.
        ca = PKI.path("ca.crt")
        up = self.tls_upstream("upstream", client_ca=ca)
        ccrt, ckey = pem("client")
        ep = "127.0.0.1:%d" % up.port
        self.start([
            {"name": "mtls", "endpoints": [ep],
             "tls": {"ca_file": ca, "sni": "upstream.test", "cert_file": ccrt, "key_file": ckey}},
            {"name": "wrongca", "endpoints": [ep],
             "tls": {"ca_file": PKI.path("wrongca.crt"), "sni": "upstream.test",
                     "cert_file": ccrt, "key_file": ckey}},
            {"name": "nocert", "endpoints": [ep],
             "tls": {"ca_file": ca, "sni": "upstream.test"}},
        ])
        for route in ("wrongca", "nocert"):
            self.assertEqual(self.get("/mtls/").status, 200)  # leaves a pooled connection
            resp = self.get("/%s/" % route)
            self.assertEqual(resp.status, 502, "%s was served over mtls's connection: %r %s"
                             % (route, resp, resp.body[:300]))

    def test_keepalive_reuse_to_tls_upstream(self):
        up = self.tls_upstream("upstream")
        self.start([{"name": "ka", "endpoints": ["127.0.0.1:%d" % up.port],
                     "tls": {"ca_file": PKI.path("ca.crt"), "sni": "upstream.test"}}],
                   workers=WORKERS)
        n = 60
        # Sequential requests on separate client connections, and on one client connection.
        for i in range(n // 2):
            self.assertEqual(self.get("/ka/%d" % i).status, 200)
        with RawConn(self.port) as c:
            for i in range(n // 2):
                c.send(request_bytes("GET", "/ka/k%d" % i))
                self.assertEqual(c.read_response().status, 200)
        st = up.stats()
        self.assertEqual(st["requests"], n, st)
        # One pool per worker: at most one connection each for sequential requests.
        self.assertLessEqual(st["connections"], WORKERS, st)
        self.assertLessEqual(st["handshakes"], WORKERS, st)
        # Concurrent load: still far fewer connections than requests.
        errors = []

        def burst(k):
            try:
                with RawConn(self.port) as c:
                    for i in range(20):
                        c.send(request_bytes("GET", "/ka/b%d-%d" % (k, i)))
                        if c.read_response().status != 200:
                            errors.append(k)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        threads = [threading.Thread(target=burst, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(errors, [])
        st = up.stats()
        self.assertEqual(st["requests"], n + 160, st)
        self.assertLessEqual(st["connections"], 8 + WORKERS, st)

    def test_session_resumption_after_upstream_closes_idle(self):
        # The pool keeps the endpoint's last TLS session; a new connection (after the
        # upstream closed the idle one) offers it and the upstream resumes it.
        up = self.tls_upstream("upstream", idle_close=0.3)
        self.start([{"name": "res", "endpoints": ["127.0.0.1:%d" % up.port],
                     "tls": {"ca_file": PKI.path("ca.crt"), "sni": "upstream.test"}}])
        resp = self.get("/res/1")
        self.assertEqual(resp.status, 200)
        self.assertFalse(resp.json()["resumed"])
        for i in range(3):
            time.sleep(0.8)  # the upstream closed the pooled connection meanwhile
            resp = self.get("/res/%d" % (i + 2))
            self.assertEqual(resp.status, 200, resp)
            self.assertTrue(resp.json()["resumed"], resp.json())
        st = up.stats()
        self.assertEqual(st["connections"], 4, st)
        self.assertEqual(st["resumed"], 3, st)


if __name__ == "__main__":
    unittest.main()
