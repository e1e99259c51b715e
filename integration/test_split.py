#!/usr/bin/python3
"""End-to-end tests of the canary split (docs/design.md "Cohort hashing").

The expected version of every request is computed here, independently of the proxy, with
python3-xxhash:  seed = XXH3_64(salt); bucket = XXH3_64(key, seed) % 10000;
canary iff bucket < round(weight * 100).  Each answer is checked twice: the x-gray-version
header the upstream saw, and which upstream (stable or canary cluster) answered.
"""

import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

import xxhash

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RawConn, request_bytes  # noqa: E402

HOST = "example.test"
N_HEADER_KEYS = 3000
N_COOKIE_KEYS = 500
THREADS = 4


# ---------------------------------------------------------------------------------------
# The rule, computed independently of the proxy
# ---------------------------------------------------------------------------------------

def bucket(key, salt):
    if isinstance(key, str):
        key = key.encode("latin-1")
    seed = xxhash.xxh3_64_intdigest(salt.encode())
    return xxhash.xxh3_64_intdigest(key, seed=seed) % 10000


def weight_bp(percent):
    return int(round(percent * 100))


def expected_version(key, salt, percent):
    return "canary" if bucket(key, salt) < weight_bp(percent) else "stable"


# ---------------------------------------------------------------------------------------
# Client helpers
# ---------------------------------------------------------------------------------------

class SourceConn(RawConn):
    """RawConn whose client socket is bound to a chosen loopback source address."""

    def __init__(self, port, source_ip, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source_ip, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout


def header_keys(n):
    """Distinct, varied header keys (ASCII printable, inner spaces and punctuation)."""
    keys = []
    shapes = [
        lambda i: "user-%d" % i,
        lambda i: "%08x-%04x-4%03x-a%03x-%012x" % (i * 2654435761 % (1 << 32), i % 65536,
                                                  i % 4096, (i * 7) % 4096, i * 40503),
        lambda i: "acct:%d/region=eu-%d" % (i * 17, i % 5),
        lambda i: "Mixed Case Key %d" % i,
        lambda i: "e%d@example.com" % i,
        lambda i: "%d" % (10 ** 9 + i * 7919),
        lambda i: "k!#$%%&'*+.^_`|~-%d" % i,
    ]
    seen = set()
    for i in range(n):
        k = shapes[i % len(shapes)](i)
        assert k not in seen
        seen.add(k)
        keys.append(k)
    return keys


def cookie_keys(n):
    """Distinct cookie values (cookie-octet characters only)."""
    return ["c%d-%x.%s" % (i, i * 2246822519 % (1 << 32), "abcdefgh"[i % 8] * (1 + i % 5))
            for i in range(n)]


def run_parallel(port, items, make_request, threads=THREADS, pass_name=""):
    """Send one request per item over `threads` keep-alive connections.
    make_request(item) -> (target, headers). Returns {item: Response}."""
    results = {}
    errors = []
    lock = threading.Lock()
    chunks = [items[i::threads] for i in range(threads)]

    def worker(chunk):
        conn = None
        try:
            conn = RawConn(port, timeout=15)
            for item in chunk:
                target, headers = make_request(item)
                conn.send(request_bytes("GET", target, host=HOST, headers=headers))
                r = conn.read_response()
                with lock:
                    results[item] = r
                if r.get("connection", "").lower() == "close":
                    conn.close()
                    conn = RawConn(port, timeout=15)
        except Exception as e:  # reported by the caller
            with lock:
                errors.append("%s: %r" % (pass_name, e))
        finally:
            if conn:
                conn.close()

    ts = [threading.Thread(target=worker, args=(c,), daemon=True) for c in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    if errors:
        raise AssertionError("request errors: %s" % errors[:5])
    if any(t.is_alive() for t in ts):
        raise AssertionError("%s: request threads did not finish in time" % pass_name)
    return results


# ---------------------------------------------------------------------------------------
# Fixture
# ---------------------------------------------------------------------------------------

HDR_WEIGHT = 12.34        # two decimals: 1234 basis points
HDR_WEIGHT_RAISED = 40.05
CK_WEIGHT = 27.5
CK_SALT = "cookie-salt-v2"
IP_WEIGHT = 50
XFF_WEIGHT = 50

OVERRIDES = [
    {"header": "x-canary", "value": "always", "to": "canary"},
    {"header": "x-canary", "value": "never", "to": "stable"},
    {"cookie": "force", "value": "c", "to": "canary"},
    {"cookie": "force", "value": "s", "to": "stable"},
]


class SplitBase(harness.ProxyTestCase):

    def setUp(self):
        super().setUp()
        self.up_s, self.port_s = self.start_upstream("stable")
        self.up_c, self.port_c = self.start_upstream("canary")
        self.listen = harness.free_port()
        self.admin = harness.free_port()
        self.cfg = self.make_config(HDR_WEIGHT)
        self.start_proxy(self.cfg, self.listen)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy),
                        "admin listener not up")

    def route(self, name, prefix, split, stable="stable", canary="canary"):
        return {"name": name, "match": {"path_prefix": prefix}, "stable": stable,
                "canary": canary, "split": split}

    def make_config(self, hdr_weight):
        routes = [
            # header key, salt defaults to the route name, overrides, version exposed
            self.route("hdr", "/h", {"weight": hdr_weight, "hash_on": {"header": "x-user-id"},
                                     "overrides": OVERRIDES, "expose_version": True}),
            # cookie key, explicit salt, cookie fallback (the default for cookie keys)
            self.route("ck", "/c", {"weight": CK_WEIGHT, "hash_on": {"cookie": "uid"},
                                    "salt": CK_SALT, "fallback": "cookie", "cookie_ttl": "1h",
                                    "overrides": OVERRIDES}),
            # header key falling back to the client address; X-Forwarded-For not trusted
            self.route("ip", "/ip", {"weight": IP_WEIGHT, "hash_on": {"header": "x-user-id"},
                                     "fallback": "client_ip", "expose_version": False}),
            # ... and trusted
            self.route("xff", "/xff", {"weight": XFF_WEIGHT, "hash_on": {"header": "x-user-id"},
                                       "fallback": "client_ip", "trust_forwarded_for": True,
                                       "expose_version": True}),
            self.route("zero", "/zero", {"weight": 0, "hash_on": {"header": "x-user-id"},
                                         "overrides": OVERRIDES, "expose_version": True}),
            self.route("full", "/full", {"weight": 100, "hash_on": {"header": "x-user-id"},
                                         "overrides": OVERRIDES, "expose_version": True}),
        ]
        return harness.base_config(
            self.listen, self.admin,
            clusters=[{"name": "stable", "endpoints": ["127.0.0.1:%d" % self.port_s]},
                      {"name": "canary", "endpoints": ["127.0.0.1:%d" % self.port_c]}],
            routes=routes, state_dir=self.state_dir)

    # -- checks -------------------------------------------------------------------------

    def version_of(self, r, label):
        """The version a response was routed to; asserts the upstream's view is coherent."""
        self.assertEqual(r.status, 200, "%s: %r %r" % (label, r, r.body[:300]))
        js = r.json()
        seen = js["headers"].get("x-gray-version")
        self.assertIsInstance(seen, str, "%s: upstream saw x-gray-version %r" % (label, seen))
        self.assertIn(seen, ("stable", "canary"), label)
        self.assertEqual(js["name"], seen,
                         "%s: x-gray-version %r but answered by the %r upstream"
                         % (label, seen, js["name"]))
        self.assertEqual(r.get("x-upstream"), js["name"], label)
        return seen

    def assert_all_as_rule(self, results, expect, label):
        """results {key: Response}; expect {key: version}. Reports the first mismatches."""
        bad = []
        for key, want in expect.items():
            got = self.version_of(results[key], "%s key %r" % (label, key))
            if got != want:
                bad.append((key, want, got))
        self.assertEqual(bad, [], "%s: %d of %d keys off the rule, e.g. (key, want, got) %r"
                         % (label, len(bad), len(expect), bad[:10]))

    def one(self, target, headers=(), conn=None):
        own = conn is None
        c = conn or RawConn(self.listen, timeout=15)
        try:
            c.send(request_bytes("GET", target, host=HOST, headers=list(headers)))
            return c.read_response()
        finally:
            if own:
                c.close()

    def status_route(self, name):
        st, js = harness.http_get_json(self.admin, "/status")
        self.assertEqual(st, 200)
        for r in js["routes"]:
            if r["name"] == name:
                return r
        self.fail("route %r not in /status: %r" % (name, js))


class TestGoldenVector(unittest.TestCase):
    def test_python_xxhash_matches_design_vector(self):
        # docs/design.md: XXH3_64bits_withSeed("abc", 3, XXH3_64bits("shop", 4)) = 13306870394290195008
        seed = xxhash.xxh3_64_intdigest(b"shop")
        self.assertEqual(xxhash.xxh3_64_intdigest(b"abc", seed=seed), 13306870394290195008)


class TestHeaderAndCookieKeys(SplitBase):

    def test_3000_header_keys_follow_the_rule_and_stick(self):
        keys = header_keys(N_HEADER_KEYS)
        expect = {k: expected_version(k, "hdr", HDR_WEIGHT) for k in keys}
        n_canary = sum(1 for v in expect.values() if v == "canary")
        # Not a test of the proxy: makes sure the key set exercises both sides.
        self.assertTrue(200 < n_canary < 600, n_canary)

        t0 = time.monotonic()
        first = run_parallel(self.listen, keys,
                             lambda k: ("/h/item?i=1", [("X-User-Id", k)]), pass_name="pass 1")
        elapsed = time.monotonic() - t0
        self.assert_all_as_rule(first, expect, "header pass 1")
        for k in keys[:50]:
            self.assertEqual(first[k].get("x-gray-version"), expect[k],
                             "expose_version: response header for key %r" % k)

        # Sticky: the same keys again, other connections, reversed order, other paths.
        again = run_parallel(self.listen, list(reversed(keys)),
                             lambda k: ("/h/other/%d" % (len(k) % 7), [("x-user-id", k)]),
                             threads=3, pass_name="pass 2")
        self.assert_all_as_rule(again, expect, "header pass 2")
        # Each request reached exactly one upstream, once.
        served = {name: harness.upstream_stats(port)["requests"]
                  for name, port in (("stable", self.port_s), ("canary", self.port_c))}
        self.assertEqual(served, {"canary": 2 * n_canary, "stable": 2 * (len(keys) - n_canary)})
        sys.stderr.write("[%d header keys in %.2fs, %d canary] " % (len(keys), elapsed, n_canary))
        self.assert_proxy_alive()

    def test_client_supplied_x_gray_version_is_replaced(self):
        keys = header_keys(200)
        for k in keys:
            want = expected_version(k, "hdr", HDR_WEIGHT)
            lie = "stable" if want == "canary" else "canary"
            r = self.one("/h/spoof", [("x-user-id", k), ("X-Gray-Version", lie)])
            self.assertEqual(self.version_of(r, "spoofed %r" % k), want, k)

    def test_500_cookie_keys_follow_the_rule_and_stick(self):
        keys = cookie_keys(N_COOKIE_KEYS)
        expect = {k: expected_version(k, CK_SALT, CK_WEIGHT) for k in keys}
        n_canary = sum(1 for v in expect.values() if v == "canary")
        self.assertTrue(60 < n_canary < 220, n_canary)

        position = {k: n % 3 for n, k in enumerate(keys)}

        def cookie_req(k):
            i = position[k]  # vary where the cookie sits
            if i == 0:
                return "/c/page", [("Cookie", "uid=%s" % k)]
            if i == 1:
                return "/c/page", [("Cookie", "theme=dark; uid=%s; lang=en" % k)]
            return "/c/page", [("Cookie", "a=1"), ("Cookie", "uid=%s" % k)]

        first = run_parallel(self.listen, keys, cookie_req, pass_name="cookie pass 1")
        self.assert_all_as_rule(first, expect, "cookie pass 1")
        for k in keys:
            self.assertFalse(first[k].has("set-cookie"),
                             "Set-Cookie issued although the uid cookie was sent: %r"
                             % first[k].get_all("set-cookie"))
            self.assertFalse(first[k].has("x-gray-version"),
                             "x-gray-version exposed on a route without expose_version")
        again = run_parallel(self.listen, list(reversed(keys)),
                             lambda k: ("/c/again", [("Cookie", "uid=%s" % k)]),
                             threads=2, pass_name="cookie pass 2")
        self.assert_all_as_rule(again, expect, "cookie pass 2")

    def test_keyless_request_gets_cookie_and_stays(self):
        pat = re.compile(r"^uid=([^;]+); Path=/; Max-Age=3600; HttpOnly; SameSite=Lax$")
        ids = set()
        versions = set()
        with RawConn(self.listen) as c:
            for i in range(40):
                r = self.one("/c/new?i=%d" % i, conn=c)
                v = self.version_of(r, "keyless %d" % i)
                cookies = r.get_all("set-cookie")
                self.assertEqual(len(cookies), 1, "keyless request %d: Set-Cookie %r" % (i, cookies))
                m = pat.match(cookies[0])
                self.assertIsNotNone(m, "Set-Cookie format: %r" % cookies[0])
                cid = m.group(1)
                self.assertNotIn(cid, ids, "cookie id issued twice")
                ids.add(cid)
                # The request that got the cookie was routed by the new id.
                self.assertEqual(v, expected_version(cid, CK_SALT, CK_WEIGHT),
                                 "keyless request not routed by its new id %r" % cid)
                versions.add(v)
                # Sending it back (other connection, several times) stays on that version.
                for j in range(3):
                    back = self.one("/c/back?j=%d" % j, [("Cookie", "uid=" + cid)])
                    self.assertEqual(self.version_of(back, "cookie back %s" % cid), v,
                                     "id %r moved version when sent back" % cid)
                    self.assertFalse(back.has("set-cookie"), back.get_all("set-cookie"))
        # 40 fresh ids at 27.5%: both versions (the chance of one side only is < 1e-5)
        self.assertEqual(versions, {"stable", "canary"})

    def test_empty_cookie_value_counts_as_keyless(self):
        r = self.one("/c/empty", [("Cookie", "uid=")])
        self.version_of(r, "empty uid")
        self.assertEqual(len(r.get_all("set-cookie")), 1, r)


class TestOverridesAndExtremes(SplitBase):

    def test_weight_0_never_canary_and_100_always_canary(self):
        keys = header_keys(600)
        zero = run_parallel(self.listen, keys, lambda k: ("/zero", [("x-user-id", k)]),
                            pass_name="weight 0")
        full = run_parallel(self.listen, keys, lambda k: ("/full", [("x-user-id", k)]),
                            pass_name="weight 100")
        self.assert_all_as_rule(zero, {k: "stable" for k in keys}, "weight 0")
        self.assert_all_as_rule(full, {k: "canary" for k in keys}, "weight 100")
        # Keyless (client_ip fallback) too.
        self.assertEqual(self.version_of(self.one("/zero"), "keyless w0"), "stable")
        self.assertEqual(self.version_of(self.one("/full"), "keyless w100"), "canary")

    def test_overrides_both_directions_at_every_weight(self):
        keys = header_keys(40)
        cases = [
            ([("x-canary", "always")], "canary"),
            ([("X-Canary", "never")], "stable"),
            ([("Cookie", "force=c")], "canary"),
            ([("Cookie", "x=1; force=s")], "stable"),
        ]
        for prefix, route_weight, salt in (("/zero", 0, "zero"), ("/full", 100, "full"),
                                           ("/h", HDR_WEIGHT, "hdr")):
            for extra, want in cases:
                for k in keys:
                    # with a key (which alone would say otherwise for many keys) and without
                    r = self.one(prefix + "/o", [("x-user-id", k)] + extra)
                    self.assertEqual(self.version_of(r, "%s %r %r" % (prefix, extra, k)), want,
                                     "override %r on %s (weight %s) key %r" % (extra, prefix,
                                                                               route_weight, k))
                r = self.one(prefix + "/o", extra)
                self.assertEqual(self.version_of(r, "%s keyless %r" % (prefix, extra)), want)
            # A value that matches no override falls through to the hash.
            for k in keys:
                r = self.one(prefix + "/o", [("x-user-id", k), ("x-canary", "sometimes"),
                                             ("Cookie", "force=maybe")])
                self.assertEqual(self.version_of(r, "no-override %r" % k),
                                 expected_version(k, salt, route_weight))

    def test_cookie_route_overrides(self):
        keys = cookie_keys(40)
        for k in keys:
            r = self.one("/c/o", [("Cookie", "uid=%s; force=c" % k)])
            self.assertEqual(self.version_of(r, "ck force=c"), "canary")
            r = self.one("/c/o", [("Cookie", "uid=%s" % k), ("x-canary", "never")])
            self.assertEqual(self.version_of(r, "ck never"), "stable")
        # An override decides before the fallback: no cookie is issued for it to hash.
        r = self.one("/c/o", [("x-canary", "always")])
        self.assertEqual(self.version_of(r, "ck keyless always"), "canary")


class TestClientIpFallback(SplitBase):

    SOURCES = ["127.0.0.%d" % i for i in range(2, 62)]

    def test_client_ip_decides_and_xff_is_ignored_when_not_trusted(self):
        expect = {ip: expected_version(ip, "ip", IP_WEIGHT) for ip in self.SOURCES}
        self.assertEqual(set(expect.values()), {"stable", "canary"})
        for ip in self.SOURCES:
            for rep in range(2):  # two connections from the same address: sticky
                with SourceConn(self.listen, ip) as c:
                    r = self.one("/ip/x", conn=c)
                    js = r.json()
                    self.assertIn(ip, js["headers"].get("x-forwarded-for", ""),
                                  "source address not used: %r" % js["headers"])
                    self.assertEqual(self.version_of(r, "ip %s" % ip), expect[ip],
                                     "client_ip fallback for %s (rep %d)" % (ip, rep))
                    self.assertFalse(r.has("x-gray-version"),
                                     "x-gray-version exposed with expose_version: false")
                    self.assertFalse(r.has("set-cookie"))
                    # Not trusted: an X-Forwarded-For whose last entry hashes the other way
                    # changes nothing.
                    for fake in ("10.9.8.%d" % n for n in range(1, 9)):
                        r = self.one("/ip/x", [("X-Forwarded-For", "1.2.3.4, " + fake)], conn=c)
                        self.assertEqual(self.version_of(r, "ip %s xff %s" % (ip, fake)),
                                         expect[ip], "untrusted XFF %s moved %s" % (fake, ip))
        # The header key still wins over the fallback.
        for k in header_keys(50):
            r = self.one("/ip/k", [("x-user-id", k)])
            self.assertEqual(self.version_of(r, "ip route key %r" % k),
                             expected_version(k, "ip", IP_WEIGHT))

    def test_trusted_xff_last_entry_decides(self):
        lasts = ["198.51.100.%d" % i for i in range(1, 101)]
        expect = {x: expected_version(x, "xff", XFF_WEIGHT) for x in lasts}
        self.assertEqual(set(expect.values()), {"stable", "canary"})
        with RawConn(self.listen) as c:
            for n, last in enumerate(lasts):
                variants = [
                    [("X-Forwarded-For", last)],
                    [("X-Forwarded-For", "203.0.113.%d, 192.0.2.7,%s" % (n, last))],
                    [("X-Forwarded-For", "203.0.113.%d" % (200 - n)), ("X-Forwarded-For", last)],
                    [("X-Forwarded-For", "10.0.0.1,  %s " % last)],
                ]
                for hv in variants:
                    r = self.one("/xff/a", hv, conn=c)
                    self.assertEqual(self.version_of(r, "xff %r" % hv), expect[last],
                                     "XFF %r: last entry %s should decide" % (hv, last))
                    self.assertEqual(r.get("x-gray-version"), expect[last])
        # No XFF: the peer address decides.
        for ip in self.SOURCES[:20]:
            with SourceConn(self.listen, ip) as sc:
                r = self.one("/xff/b", conn=sc)
                self.assertEqual(self.version_of(r, "xff route, no XFF, %s" % ip),
                                 expected_version(ip, "xff", XFF_WEIGHT))


class TestWeightRaise(SplitBase):

    def test_raising_weight_by_sighup_keeps_every_canary(self):
        keys = header_keys(N_HEADER_KEYS)
        before = {k: expected_version(k, "hdr", HDR_WEIGHT) for k in keys}
        after = {k: expected_version(k, "hdr", HDR_WEIGHT_RAISED) for k in keys}
        # The rule itself is monotonic (checked on the expectation, not the proxy).
        self.assertTrue(all(after[k] == "canary" for k in keys if before[k] == "canary"))
        moved = [k for k in keys if before[k] != after[k]]
        self.assertTrue(len(moved) > 500, len(moved))

        self.assertAlmostEqual(self.status_route("hdr")["weight_percent"], HDR_WEIGHT, places=6)
        r1 = run_parallel(self.listen, keys, lambda k: ("/h/r", [("x-user-id", k)]),
                          pass_name="before raise")
        self.assert_all_as_rule(r1, before, "before raise")
        was_canary = {k for k in keys if self.version_of(r1[k], k) == "canary"}

        # Rewrite the file and reload.
        self.write_config(self.make_config(HDR_WEIGHT_RAISED))
        self.proxy.send_signal(signal.SIGHUP)
        ok = harness.wait_until(
            lambda: abs(self.status_route("hdr")["weight_percent"] - HDR_WEIGHT_RAISED) < 1e-9,
            timeout=10)
        self.assertTrue(ok, "weight not raised after SIGHUP: %r\n%s"
                        % (self.status_route("hdr"), self.read_proxy_stderr()))
        self.assert_proxy_alive()

        r2 = run_parallel(self.listen, keys, lambda k: ("/h/r", [("x-user-id", k)]),
                          pass_name="after raise")
        demoted = [k for k in was_canary if self.version_of(r2[k], k) != "canary"]
        self.assertEqual(demoted, [], "keys that were canary became stable after the raise")
        self.assert_all_as_rule(r2, after, "after raise")
        # Other routes kept their weights.
        self.assertAlmostEqual(self.status_route("ck")["weight_percent"], CK_WEIGHT, places=6)

    def test_raising_weight_by_restart_keeps_every_canary(self):
        keys = header_keys(1000)
        r1 = run_parallel(self.listen, keys, lambda k: ("/h/r", [("x-user-id", k)]),
                          pass_name="before restart")
        self.assert_all_as_rule(r1, {k: expected_version(k, "hdr", HDR_WEIGHT) for k in keys},
                                "before restart")
        was_canary = {k for k in keys if self.version_of(r1[k], k) == "canary"}
        harness.stop_process(self.proxy)
        self.assertEqual(self.proxy.returncode, 0, self.read_proxy_stderr())
        self.start_proxy(self.make_config(HDR_WEIGHT_RAISED), self.listen)
        self.assertAlmostEqual(harness.wait_until(lambda: harness.wait_port(self.admin, 5)
                                                  and self.status_route("hdr")["weight_percent"]),
                               HDR_WEIGHT_RAISED, places=6)
        r2 = run_parallel(self.listen, keys, lambda k: ("/h/r", [("x-user-id", k)]),
                          pass_name="after restart")
        demoted = [k for k in was_canary if self.version_of(r2[k], k) != "canary"]
        self.assertEqual(demoted, [])
        self.assert_all_as_rule(r2, {k: expected_version(k, "hdr", HDR_WEIGHT_RAISED)
                                     for k in keys}, "after restart")


if __name__ == "__main__":
    unittest.main()
