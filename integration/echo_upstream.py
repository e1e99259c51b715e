#!/usr/bin/python3
"""An HTTP/1.1 upstream that echoes a per-request id and, on request, misbehaves by
sending bytes after the framed end of its response: for test_reuse_soak.py.

    echo_upstream.py --port P [--race-ms MS]

With --port 0 it picks a free port and prints "LISTENING <port>" as its first stdout line.
Raw sockets, one thread per connection, keep-alive; binds 127.0.0.1 only.

Every response carries the request's id: the request header x-req-id (else the query
parameter id) in the response header x-req-id, the query parameter id in x-req-qid, and a
body "id=<x-req-id>\\n". A "stray" response is a whole, well-framed 200 response that
answers nothing, with x-req-id/x-req-qid "stray-<conn>-<n>": a proxy that reads it as
the answer to a later request hands that client a response that is not its own.

  HEAD /m/head   200 with Content-Length: 8 and no body (right for HEAD), then 20 ms
                 later a stray response. The head declared body bytes, so a proxy must
                 not reuse the connection; a proxy that did gets the stray (or has sent
                 its next request already: that one is answered after the stray).
  GET /m/204     204 and, in the same write, a stray response.
  GET /m/304     304 with Content-Length: 5 and 5 body bytes, then, in the same write, a
                 stray response.
  GET /m/late    200 with Content-Length: 8 and an 8-byte body (complete, reusable), then
                 20 ms later (or delay_ms=N from the query string: N ms), in a segment
                 of its own, a stray response, but only if the
                 connection is idle then: no byte of a next request has arrived and the
                 peer has not closed. (A proxy that reused the connection within those
                 20 ms could not have seen anything wrong, so the stray is not sent; this
                 is counted as late_skipped.) A stray sent to an idle connection sits in
                 the proxy's receive queue before it sends anything more on it, so the
                 proxy's check at reuse must find it.
  GET /__stats   JSON counters (below); not counted as a request.
  anything else  200, the id echoed.

Race accounting ("ambiguous"): a proxy that checks a pooled connection just before
reusing it can still be beaten by a late stray that lands between its check and its
write of the next request (or while that request is on its way). No proxy can tell;
that request gets the stray. So after each late stray the server takes the arrival time
of the next request on that connection (the kernel's receive timestamp, SO_TIMESTAMPNS)
and, if it arrived before the stray was written or less than --race-ms (default 10) after,
records its id in "ambiguous". The stray has then become that request's answer and the
request's own response is extra bytes in turn, so the same rule applies to the next
request after it. Any other mismatch a client sees is the proxy's fault.

Stats: requests, connections, head, s204, s304, late, late_sent, late_skipped,
head_strays_sent, ambiguous (list of ids), errors.
"""

import argparse
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse

STRAY_DELAY_S = 0.020
MAX_HEAD = 64 * 1024


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {"requests": 0, "connections": 0, "head": 0, "s204": 0, "s304": 0, "late": 0,
                  "late_sent": 0, "late_skipped": 0, "head_strays_sent": 0, "errors": 0}
        self.ambiguous = []

    def inc(self, k, n=1):
        with self.lock:
            self.c[k] += n
            return self.c[k]

    def add_ambiguous(self, rid, delta_ms):
        with self.lock:
            self.ambiguous.append([rid, round(delta_ms, 3)])

    def snapshot(self):
        with self.lock:
            d = dict(self.c)
            d["ambiguous"] = list(self.ambiguous)
            return d


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic value
TIMESPEC = struct.Struct("qq")


class Conn(threading.Thread):
    def __init__(self, stats, sock, cid, race_s):
        super().__init__(daemon=True)
        self.stats = stats
        self.sock = sock
        self.cid = cid
        self.race_s = race_s
        self.buf = bytearray()
        self.buf_rx = 0.0            # when the first byte now in buf arrived (wall clock)
        self.head_rx = 0.0           # ... and that of the request head being served
        self.strays = 0
        self.desync = False          # extra bytes were written: the next request may race them
        self.watch_since = 0.0       # when the last write of extra bytes started
        self.raced_write = False     # a request was already waiting after that write
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.rx_ts = True
        except OSError:
            self.rx_ts = False

    # -- I/O ------------------------------------------------------------------------------

    def pending(self):
        """A byte of a next request is here, or the peer closed (non-blocking)."""
        if self.buf:
            return True
        try:
            return len(self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)) >= 0
        except BlockingIOError:
            return False
        except OSError:
            return True

    def recv(self):
        """Bytes from the socket into buf (b'' at EOF), noting when they arrived."""
        if self.rx_ts:
            data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(TIMESPEC.size))
            ts = None
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= TIMESPEC.size:
                    sec, ns = TIMESPEC.unpack(raw[:TIMESPEC.size])
                    ts = sec + ns / 1e9
            if ts is None:
                ts = time.time()
        else:
            data = self.sock.recv(65536)
            ts = time.time()
        if data and not self.buf:
            self.buf_rx = ts
        self.buf += data
        return data

    def write(self, data, extra=False):
        """Send data; extra=True: bytes that answer no request (a late stray)."""
        t = time.time()
        self.sock.sendall(data)
        if extra:
            self.desync = True
        if self.desync:
            self.watch_since = t
            self.raced_write = self.pending()

    def check_race(self, rid, arrived):
        """After extra bytes were written: was this request sent before they could be seen?"""
        if not self.desync:
            return
        delta = arrived - self.watch_since
        if self.raced_write or delta <= self.race_s:
            self.stats.add_ambiguous(rid, delta * 1000.0)  # and its own answer is extra now
        else:
            self.desync = False
        self.raced_write = False

    def read_head(self):
        """(method, target, headers dict lower-case) or None at EOF."""
        for _ in range(100000):
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                self.head_rx = self.buf_rx
                head = bytes(self.buf[:i]).decode("latin-1")
                del self.buf[:i + 4]
                lines = head.split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    raise ValueError("bad request line %r" % lines[0])
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                return parts[0], parts[1], headers
            if len(self.buf) > MAX_HEAD:
                raise ValueError("head too large")
            had = bool(self.buf)
            if not self.recv():
                if had:
                    raise ValueError("EOF inside a head")
                return None
        raise ValueError("unreachable")

    def read_body(self, headers):
        n = int(headers.get("content-length", "0") or "0")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise ValueError("chunked request bodies are not supported here")
        while len(self.buf) < n:
            if not self.recv():
                raise ValueError("EOF inside a body")
        del self.buf[:n]

    # -- responses ------------------------------------------------------------------------

    @staticmethod
    def response(status, rid, qid, body, content_length=None, reason=None):
        reasons = {200: "OK", 204: "No Content", 304: "Not Modified"}
        head = ["HTTP/1.1 %d %s" % (status, reason or reasons.get(status, "X")),
                "x-req-id: %s" % rid, "x-req-qid: %s" % qid]
        if content_length is not None:
            head.append("Content-Length: %d" % content_length)
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    def stray(self):
        self.strays += 1
        sid = "stray-%d-%d" % (self.cid, self.strays)
        body = ("id=%s\n" % sid).encode()
        return self.response(200, sid, sid, body, len(body))

    def run(self):
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(10 ** 9):
                if not self.serve_one():
                    break
        except (OSError, ValueError) as e:
            if not isinstance(e, (ConnectionResetError, BrokenPipeError)):
                self.stats.inc("errors")
                sys.stderr.write("conn %d: %r\n" % (self.cid, e))
        finally:
            self.sock.close()

    def serve_one(self):
        req = self.read_head()
        if req is None:
            return False
        method, target, headers = req
        self.read_body(headers)
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query))
        qid = query.get("id", "")
        rid = headers.get("x-req-id", qid)
        keep = "close" not in headers.get("connection", "").lower()
        if url.path == "/__stats":
            body = json.dumps(self.stats.snapshot()).encode()
            self.write(self.response(200, "stats", "stats", body, len(body)))
            return keep
        self.check_race(rid, self.head_rx)
        self.stats.inc("requests")
        body = ("id=%s\n" % rid).encode()
        if method == "HEAD" and url.path == "/m/head":
            self.stats.inc("head")
            self.write(self.response(200, rid, qid, b"", 8))
            time.sleep(STRAY_DELAY_S)
            self.write(self.stray())
            self.stats.inc("head_strays_sent")
        elif url.path == "/m/204":
            self.stats.inc("s204")
            self.write(self.response(204, rid, qid, b"") + self.stray())
        elif url.path == "/m/304":
            self.stats.inc("s304")
            self.write(self.response(304, rid, qid, b"abcde", 5) + self.stray())
        elif url.path == "/m/late":
            self.stats.inc("late")
            self.write(self.response(200, rid, qid, b"latebody", 8))
            time.sleep(int(query.get("delay_ms", 0)) / 1000.0 or STRAY_DELAY_S)
            if self.pending():
                self.stats.inc("late_skipped")
            else:
                self.write(self.stray(), extra=True)
                self.stats.inc("late_sent")
        elif method == "HEAD":
            self.write(self.response(200, rid, qid, b"", len(body)))
        else:
            self.write(self.response(200, rid, qid, body, len(body)))
        return keep


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--race-ms", type=float, default=10.0)
    args = ap.parse_args()
    stats = Stats()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(1024)
    sys.stdout.write("LISTENING %d\n" % ls.getsockname()[1])
    sys.stdout.flush()
    try:
        for _ in range(10 ** 9):
            try:
                sock, _ = ls.accept()
            except InterruptedError:
                continue
            Conn(stats, sock, stats.inc("connections"), args.race_ms / 1000.0).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
