#!/usr/bin/python3
"""Upstream connection reuse under load (data-path contract, behaviour 1): across a wrk
run (64 connections, 60 s; 20 s under ASan) interleaved with upstream misbehaviour (HEAD
and 204/304 answers that carry bytes they must not, bytes arriving after a complete
response), every response reaches the client that asked.

The upstream (echo_upstream.py) echoes a per-request id in a response header and in the
body; wrk (one connection per thread, so requests and responses alternate strictly in
each thread) sends a fresh id with every request and checks each response against it;
a Python client sends the misbehaving requests through the proxy to the same upstream
endpoint (one cluster) at about 20 per second and checks its own ids. A stray response
(one answering no request) or another request's response reaching a client is a failure,
except for the one race no proxy can see, which the upstream itself reports (see
echo_upstream.py, "ambiguous"). grayproxy_upstream_connections_closed_total
{reason="stray_bytes"} must grow."""

import os
import re
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RawConn, request_bytes  # noqa: E402

SANITIZED = os.environ.get("GRAYPROXY_SANITIZED") == "1"
# Load size only: the ASan build is several times slower, 20 s of it is plenty of reuse.
DURATION_S = 20 if SANITIZED else 60
ECHO_UPSTREAM = os.path.join(harness.HERE, "echo_upstream.py")
MISBEHAVE_INTERVAL_S = 0.05  # ~20 misbehaving requests per second
# How long after a late stray was written a request on that connection may still have been
# sent before the proxy could see the stray (its check at reuse and its write are not one
# step; a preempted proxy thread widens the gap). See echo_upstream.py, "ambiguous".
RACE_MS = 30 if SANITIZED else 10
MAX_LISTED = 200  # mismatches each wrk thread lists by id (all of them are counted)

WRK_SCRIPT = r"""
-- One connection per thread (wrk -t N -c N): request() and response() alternate.
local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   sent = 0
   responses = 0
   ok = 0
   mismatch = 0
   stray = 0
   crossed = 0
   missing = 0
   badstatus = 0
   listed = 0
   bad = ""
   last = "none"
end

function request()
   sent = sent + 1
   last = "w" .. tid .. "-" .. sent
   return wrk.format("GET", "/echo?id=" .. last, { ["x-req-id"] = last })
end

local function note(got, status)
   mismatch = mismatch + 1
   if got == nil then
      missing = missing + 1
   elseif string.sub(got, 1, 6) == "stray-" then
      stray = stray + 1
   elseif got ~= last then
      crossed = crossed + 1
   end
   if listed < MAX_LISTED then
      listed = listed + 1
      bad = bad .. last .. "=" .. tostring(got) .. "/" .. status .. " "
   end
end

-- A response is right when its status is 200 and all three echoed ids are the one sent.
function response(status, headers, body)
   responses = responses + 1
   if status ~= 200 then
      badstatus = badstatus + 1
   end
   local hid, qid = nil, nil
   for k, v in pairs(headers) do
      local lk = string.lower(k)
      if lk == "x-req-id" then
         hid = v
      elseif lk == "x-req-qid" then
         qid = v
      end
   end
   local bid = body and string.match(body, "^id=([^\n]*)\n$")
   if status == 200 and hid == last and qid == last and bid == last then
      ok = ok + 1
   elseif hid ~= last then
      note(hid, status)
   elseif qid ~= last then
      note(qid, status)
   elseif bid ~= last then
      note(bid, status)
   else
      note(hid, status)  -- the right id with a status other than 200
   end
end

function done(summary, latency, requests)
   local keys = { "sent", "responses", "ok", "mismatch", "stray", "crossed", "missing", "badstatus" }
   local t = {}
   for _, k in ipairs(keys) do t[k] = 0 end
   local lists = {}
   for _, th in ipairs(threads) do
      for _, k in ipairs(keys) do t[k] = t[k] + (th:get(k) or 0) end
      local b = th:get("bad")
      if b and b ~= "" then table.insert(lists, b) end
   end
   local parts = {}
   for _, k in ipairs(keys) do table.insert(parts, k .. "=" .. t[k]) end
   io.write("RESULT " .. table.concat(parts, " ") .. "\n")
   io.write("BAD " .. table.concat(lists, "") .. "\n")
end
""".replace("MAX_LISTED", str(MAX_LISTED))


class Misbehaver(threading.Thread):
    """Sends HEAD /m/head, GET /m/204, /m/304, /m/late (stray after 20 ms) and /m/late
    with delay_ms=2 in rotation through the proxy, one every MISBEHAVE_INTERVAL_S on a
    keep-alive connection (a new one after a close), and checks that each response is
    its own. (Under wrk's load the proxy often reuses a connection within 20 ms, before
    the late stray would be sent: echo_upstream.py then skips it. The 2 ms variant finds
    more connections idle in the pool, so the check at reuse is exercised more often.)"""

    KINDS = [("HEAD", "/m/head", "", 200), ("GET", "/m/204", "", 204), ("GET", "/m/304", "", 304),
             ("GET", "/m/late", "", 200), ("GET", "/m/late", "&delay_ms=2", 200)]

    def __init__(self, port, duration):
        super().__init__(daemon=True)
        self.port = port
        self.duration = duration
        self.halt = threading.Event()
        self.sent = 0
        self.ok = 0
        self.mismatches = []   # (sent id, got id, status)
        self.errors = []       # exceptions (connection closed, unparsable response...)
        self.reconnects = 0

    def run(self):
        conn = None
        t0 = time.monotonic()
        n_max = int(self.duration / MISBEHAVE_INTERVAL_S) + 10
        try:
            for i in range(n_max):
                if self.halt.is_set() or time.monotonic() - t0 >= self.duration:
                    break
                wait = t0 + i * MISBEHAVE_INTERVAL_S - time.monotonic()
                if wait > 0 and self.halt.wait(wait):
                    break
                method, path, extra, want = self.KINDS[i % len(self.KINDS)]
                rid = "m-%s-%d" % (path.rsplit("/", 1)[1], i)
                try:
                    if conn is None:
                        conn = RawConn(self.port, timeout=10)
                    conn.send(request_bytes(method, "%s?id=%s%s" % (path, rid, extra),
                                            headers=[("x-req-id", rid)]))
                    r = conn.read_response(method)
                except (OSError, EOFError, ValueError) as e:
                    self.errors.append("%s %s: %r" % (method, rid, e))
                    if conn is not None:
                        conn.close()
                    conn = None
                    self.reconnects += 1
                    self.sent += 1
                    continue
                self.sent += 1
                got = r.get("x-req-id")
                if got == rid and r.get("x-req-qid") == rid and r.status == want:
                    self.ok += 1
                else:
                    self.mismatches.append((rid, got, r.status))
                if r.get("connection", "").lower() == "close":
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()


class ReuseSoak(harness.ProxyTestCase):

    def start_echo_upstream(self):
        err_path = os.path.join(self.tmp, "echo-upstream.stderr")
        with open(err_path, "ab") as err:
            proc = subprocess.Popen([harness.PYTHON, ECHO_UPSTREAM, "--port", "0", "--race-ms", str(RACE_MS)],
                                    stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        self._procs.append(("echo-upstream", proc))
        self._logs.append(err_path)
        line = harness.read_first_line(proc, timeout=15.0)
        if not line.startswith(b"LISTENING "):
            self.fail("echo upstream did not start: %r" % line)
        return int(line.split()[1])

    def closed_total(self, reason):
        return self.metrics().get(("grayproxy_upstream_connections_closed_total",
                                  frozenset({"reason": reason}.items())), 0.0)

    def test_every_response_reaches_the_client_that_asked(self):
        up = self.start_echo_upstream()
        self.listen, self.admin = harness.free_port(), harness.free_port()
        cfg = harness.base_config(
            self.listen, self.admin,
            clusters=[{"name": "echo", "endpoints": ["127.0.0.1:%d" % up]}],
            routes=[{"name": "echo", "match": {"path_prefix": "/"}, "stable": "echo"}],
            state_dir=self.state_dir)
        cfg["workers"] = 1  # one pool: every dirty connection is a candidate for wrk's requests
        cfg["timeouts"] = dict(cfg["timeouts"], upstream_response="10s", idle="30s")
        self.start_proxy(cfg, self.listen)
        self.assertTrue(harness.wait_port(self.admin, timeout=10, proc=self.proxy), "admin not listening")
        # Both kinds of traffic go through the same route, cluster and endpoint.
        with RawConn(self.listen) as c:
            c.send(request_bytes("GET", "/echo?id=warmup", headers=[("x-req-id", "warmup")]))
            r = c.read_response()
            self.assertEqual((r.status, r.get("x-req-id"), r.body), (200, "warmup", b"id=warmup\n"))
        stray_before = self.closed_total("stray_bytes")

        script = os.path.join(self.tmp, "reqid.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        mis = Misbehaver(self.listen, DURATION_S)
        wrk_out = os.path.join(self.tmp, "wrk.out")
        t0 = time.monotonic()
        with open(wrk_out, "wb") as out:
            wrk = subprocess.Popen(["wrk", "-t", "64", "-c", "64", "-d", "%ds" % DURATION_S,
                                    "--timeout", "10s", "-s", script,
                                    "http://127.0.0.1:%d/echo" % self.listen],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._procs.append(("wrk", wrk))
        self._logs.append(wrk_out)
        mis.start()
        try:
            wrk.wait(timeout=DURATION_S + 120)
        finally:
            mis.halt.set()
            mis.join(timeout=30)
        elapsed = time.monotonic() - t0
        with open(wrk_out, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        self.assertEqual(wrk.returncode, 0, text)
        self.assertFalse(mis.is_alive())

        m = re.search(r"^RESULT (.*)$", text, re.M)
        self.assertIsNotNone(m, text)
        res = {k: int(v) for k, v in (p.split("=") for p in m.group(1).split())}
        bad_line = re.search(r"^BAD ?(.*)$", text, re.M).group(1)
        # "sent=got/status" for each wrong response (got: the id it carried, "nil" if none)
        listed = [(p.split("=", 1)[0], p.split("=", 1)[1]) for p in bad_line.split()]
        rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
        sock_err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        up_stats = harness.http_get_json(up, "/__stats")[1]
        ambiguous = {rid for rid, _ in up_stats["ambiguous"]}
        stray_after = self.closed_total("stray_bytes")
        closed = {k[1] and dict(k[1]).get("reason"): v for k, v in self.metrics().items()
                  if k[0] == "grayproxy_upstream_connections_closed_total"}

        # Mismatches the upstream saw racing a late stray are nobody's fault (see
        # echo_upstream.py); every other one is.
        wrk_unexplained = [(s, g) for s, g in listed if s not in ambiguous]
        wrk_unlisted = res["mismatch"] - len(listed)
        mis_unexplained = [x for x in mis.mismatches if x[0] not in ambiguous]
        summary = ("\nreuse soak: %.0f s, wrk %s req/s (%d responses, %.0f/s by the script), "
                   "misbehaving requests %d (ok %d, mismatched %d, errors %d, reconnects %d)\n"
                   "  wrk: %s; socket errors: %s\n"
                   "  upstream: %s\n"
                   "  stray_bytes closes %r -> %r; closed_total by reason %r\n"
                   "  wrk mismatches unexplained %d (e.g. %r), unlisted %d; "
                   "misbehaving mismatches unexplained %d (e.g. %r); errors e.g. %r\n"
                   % (elapsed, rate.group(1) if rate else "?", res["responses"],
                      res["responses"] / max(elapsed, 1e-9), mis.sent, mis.ok, len(mis.mismatches),
                      len(mis.errors), mis.reconnects, m.group(1),
                      sock_err.groups() if sock_err else "none",
                      {k: v for k, v in up_stats.items() if k != "ambiguous"}
                      | {"ambiguous": len(ambiguous),
                         "ambiguous e.g. (id, ms after the stray)": up_stats["ambiguous"][:6]},
                      stray_before, stray_after, closed, len(wrk_unexplained), wrk_unexplained[:5],
                      max(0, wrk_unlisted), len(mis_unexplained), mis_unexplained[:5], mis.errors[:3]))
        sys.stderr.write(summary)

        # The misbehaviour really happened, all through the run.
        self.assertGreaterEqual(mis.sent, DURATION_S / MISBEHAVE_INTERVAL_S * 0.5, summary)
        for k in ("head", "s204", "s304", "late"):
            self.assertGreater(up_stats[k], DURATION_S * 2, summary)
        self.assertGreater(res["responses"], DURATION_S * 100, summary)
        # Every response reached the client that asked, and only that one: a wrk response
        # with another id, a stray's id, no id, or a status other than 200 is listed, and
        # only the race no proxy can see (the upstream's "ambiguous" ids) excuses one.
        self.assertEqual(len(wrk_unexplained), 0, summary)
        self.assertLessEqual(wrk_unlisted, 0, summary)
        self.assertEqual(res["missing"], 0, summary)  # never a response the proxy made up
        self.assertEqual(len(mis_unexplained), 0, summary)
        self.assertEqual(len(mis.errors), 0, summary)
        if sock_err:
            self.assertEqual(sock_err.groups(), ("0", "0", "0", "0"), summary)
        self.assertEqual(up_stats["errors"], 0, summary)
        # The proxy found stray bytes and closed those connections.
        self.assertGreater(stray_after, stray_before, summary)
        self.assert_proxy_alive()


if __name__ == "__main__":
    unittest.main(verbosity=2)
