#!/usr/bin/python3
"""A small, controllable HTTP/1.1 upstream for grayproxy's integration tests.

Raw-socket based, one thread per connection, keep-alive. Standard library only.

    upstream.py --port P [--name NAME] [--default-query QUERY]

With --port 0 it picks a free port and prints "LISTENING <port>" as its first stdout line.
--default-query (e.g. "status=503" or "close=rst") applies those parameters to every request
that does not set them itself: one endpoint of a cluster misbehaving while the others do not.

Behaviour, chosen by the query string of the request target:
  (default)        200, JSON body describing the request (see describe()), header x-upstream: NAME
  status=N         respond with status N (204, 304 and 1xx without body)
  delay_ms=N       sleep N ms after reading the request body, before responding
  bytes=N          body of N bytes of a deterministic pattern (pattern_chunk()), Content-Length,
                   written in 64 KiB pieces
  chunked=1        chunked response encoding (with bytes=N: the pattern; else the JSON body)
  close=before     read the request, then close the socket without a response
  close=rst        read the request, then reset the connection (SO_LINGER 0)
  close=mid        send the head and part of the body, then close
  close_after=1    respond normally (keep-alive framing, no Connection: close), then close:
                   an upstream that drops an idle keep-alive connection
  close_next=1     respond normally and keep the connection open, but read the NEXT request
                   on this connection and close without answering it: an upstream that
                   closes an idle connection just as the proxy reuses it
  garbage=1        answer with bytes that are not HTTP, then close
  big_header=N     add a response header x-big with an N-byte value
  many_headers=N   add N response headers x-many-I of 100 bytes each
  trickle=1        write the response head in 512-byte pieces, 1 ms apart
  early=1          send "103 Early Hints" before the final response
  framing=both     answer with both Content-Length and Transfer-Encoding: chunked (ambiguous)
  eof_body=1       answer with neither Content-Length nor chunked: body delimited by close
  hop=1            add hop-by-hop headers to the response (Connection: x-foo, x-foo,
                   Keep-Alive, Proxy-Connection, Trailer) and an end-to-end x-end: kept
  GET /__stats     {"connections": accepted TCP connections, "requests": requests served}
                   (/__stats requests themselves are not counted in "requests")

Request bodies are framed by Content-Length or chunked and hashed (sha256) while they are
read, never held whole in memory. "Expect: 100-continue" is answered with 100 Continue.
HEAD is answered with the head the GET would have had. Connection: close is honoured.
"""

import argparse
import hashlib
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse

CHUNK = 64 * 1024
PATTERN_MOD = 251
_PATTERN = bytes(i % PATTERN_MOD for i in range(CHUNK + PATTERN_MOD))
MAX_LINE = 64 * 1024
MAX_HEAD = 256 * 1024
IDLE_TIMEOUT_S = 120.0


def pattern_chunk(offset, n):
    """n (<= 64 KiB) bytes of the pattern starting at absolute offset: byte i = i % 251."""
    start = offset % PATTERN_MOD
    return memoryview(_PATTERN)[start:start + n]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0

    def new_connection(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def new_request(self):
        with self.lock:
            self.requests += 1

    def snapshot(self):
        with self.lock:
            return {"connections": self.connections, "requests": self.requests}


class BadRequest(Exception):
    pass


class PeerGone(Exception):
    pass


class Reader:
    """Buffered reads from a socket: lines and exact byte counts."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        data = self.sock.recv(CHUNK)
        if not data:
            raise PeerGone()
        self.buf += data

    def readline(self, limit=MAX_LINE):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self._fill()

    def read_some(self, n):
        """Up to n bytes (at least 1)."""
        if not self.buf:
            self._fill()
        piece = bytes(self.buf[:n])
        del self.buf[:len(piece)]
        return piece

    def at_eof_or_empty(self):
        return not self.buf


class Request:
    def __init__(self):
        self.method = ""
        self.target = ""
        self.version = ""
        self.headers = []  # (lower-case name, value) in order

    def get_all(self, name):
        return [v for (k, v) in self.headers if k == name]

    def get(self, name, default=None):
        vals = self.get_all(name)
        return vals[0] if vals else default

    def tokens(self, name):
        out = []
        for v in self.get_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out


def read_head(reader):
    """Return a Request, or None on a clean EOF before any byte."""
    total = 0
    # Tolerate empty lines before the request line (RFC 9112 2.2).
    while True:
        try:
            line = reader.readline()
        except PeerGone:
            return None
        total += len(line)
        if line.strip():
            break
        if total > MAX_HEAD:
            raise BadRequest("head too large")
    req = Request()
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest("bad request line")
    req.method, req.target, req.version = parts
    while True:
        line = reader.readline()
        total += len(line)
        if total > MAX_HEAD:
            raise BadRequest("head too large")
        text = line.decode("latin-1").rstrip("\r\n")
        if text == "":
            break
        if ":" not in text:
            raise BadRequest("bad header line")
        name, value = text.split(":", 1)
        req.headers.append((name.strip().lower(), value.strip()))
    return req


def read_body(reader, req, on_data):
    """Read the request body per its framing; call on_data(bytes) for each piece."""
    if "chunked" in req.tokens("transfer-encoding"):
        while True:
            line = reader.readline().decode("latin-1").strip()
            size_txt = line.split(";", 1)[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise BadRequest("bad chunk size %r" % line)
            if size == 0:
                while reader.readline().strip():  # trailers
                    pass
                return
            left = size
            while left:
                piece = reader.read_some(min(left, CHUNK))
                left -= len(piece)
                on_data(piece)
            if reader.readline().strip():
                raise BadRequest("missing CRLF after chunk")
    cl = req.get_all("content-length")
    if cl:
        try:
            left = int(cl[0])
        except ValueError:
            raise BadRequest("bad content-length")
        while left > 0:
            piece = reader.read_some(min(left, CHUNK))
            left -= len(piece)
            on_data(piece)


def header_map(req):
    out = {}
    for k, v in req.headers:
        if k in out:
            if isinstance(out[k], list):
                out[k].append(v)
            else:
                out[k] = [out[k], v]
        else:
            out[k] = v
    return out


class Connection(threading.Thread):
    def __init__(self, server, sock, peer):
        super().__init__(daemon=True)
        self.server = server
        self.sock = sock
        self.peer = peer

    def run(self):
        self.conn_id = self.server.stats.new_connection()
        self.conn_requests = 0
        self.poison_next = False
        self.trickle = False
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(IDLE_TIMEOUT_S)
            reader = Reader(self.sock)
            while True:
                try:
                    req = read_head(reader)
                except BadRequest as e:
                    self.send_simple(400, str(e), close=True)
                    return
                if req is None:
                    return
                try:
                    keep = self.handle(reader, req)
                except BadRequest as e:
                    self.send_simple(400, str(e), close=True)
                    return
                if not keep:
                    return
        except (PeerGone, OSError):
            return
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    # -- responses ---------------------------------------------------------------------

    def send_simple(self, status, text, close=False):
        body = text.encode()
        head = "HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % (status, len(body))
        if close:
            head += "Connection: close\r\n"
        try:
            self.sock.sendall(head.encode() + b"\r\n" + body)
        except OSError:
            pass

    def handle(self, reader, req):
        url = urllib.parse.urlsplit(req.target)
        path = url.path if url.path else req.target
        q = dict(urllib.parse.parse_qsl(self.server.default_query, keep_blank_values=True))
        q.update(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        conn_tokens = req.tokens("connection")
        if req.version == "HTTP/1.1":
            keep = "close" not in conn_tokens
        else:
            keep = "keep-alive" in conn_tokens

        has_body = bool(req.get_all("content-length")) or bool(req.get_all("transfer-encoding"))
        if has_body and req.version == "HTTP/1.1" and "100-continue" in req.tokens("expect"):
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        sha = hashlib.sha256()
        count = [0]

        def on_data(piece):
            sha.update(piece)
            count[0] += len(piece)

        read_body(reader, req, on_data)

        if path == "/__stats":
            body = json.dumps(self.server.stats.snapshot()).encode()
            self.respond(req, 200, [("Content-Type", "application/json")], body, keep)
            return keep

        self.server.stats.new_request()
        self.conn_requests += 1
        if self.poison_next:
            self.sock.close()
            return False
        if q.get("close_next") == "1":
            self.poison_next = True

        close_mode = q.get("close", "")
        if close_mode == "before":
            self.sock.close()
            return False
        if close_mode == "rst":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            return False

        if "delay_ms" in q:
            time.sleep(int(q["delay_ms"]) / 1000.0)

        status = int(q.get("status", "200"))
        headers = [("x-upstream", self.server.name), ("x-conn-id", str(self.conn_id))]
        if "big_header" in q:
            headers.append(("x-big", "b" * int(q["big_header"])))
        for i in range(int(q.get("many_headers", "0"))):
            headers.append(("x-many-%d" % i, "m" * 100))
        if q.get("early") == "1":
            self.sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")

        if q.get("garbage") == "1":
            self.sock.sendall(b"this is not http\r\n\r\n")
            time.sleep(0.05)
            self.sock.close()
            return False
        if q.get("framing") == "both":
            body = b"hello"
            self.sock.sendall(self.head_bytes(200, headers + [("Content-Length", "5"),
                                                             ("Transfer-Encoding", "chunked")], keep=True)
                              + b"5\r\nhello\r\n0\r\n\r\n")
            time.sleep(0.05)
            self.sock.close()
            return False
        if q.get("eof_body") == "1":
            n = int(q.get("bytes", "100000"))
            self.sock.sendall(self.head_bytes(200, headers, keep=True))
            off = 0
            while off < n:
                k = min(CHUNK, n - off)
                self.sock.sendall(pattern_chunk(off, k))
                off += k
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.close()
            return False
        if q.get("hop") == "1":
            headers += [
                ("Connection", "x-foo"),
                ("x-foo", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("Trailer", "x-trailer-field"),
                ("x-end", "kept"),
            ]
        chunked = q.get("chunked") == "1"
        self.trickle = q.get("trickle") == "1"

        if close_mode == "mid":
            total = int(q.get("bytes", "1048576"))
            head = self.head_bytes(status, headers + [("Content-Length", str(total))], keep=True)
            self.sock.sendall(head)
            self.sock.sendall(pattern_chunk(0, min(total // 2, 4096)))
            time.sleep(0.05)
            self.sock.close()
            return False

        if "bytes" in q:
            total = int(q["bytes"])
            self.stream_pattern(req, status, headers, total, chunked, keep)
        else:
            desc = {
                "name": self.server.name,
                "method": req.method,
                "path": path,
                "query": url.query,
                "target": req.target,
                "version": req.version,
                "headers": header_map(req),
                "body_sha256": sha.hexdigest(),
                "body_len": count[0],
                "conn_id": self.conn_id,
                "conn_requests": self.conn_requests,
                "peer": "%s:%d" % self.peer[:2],
            }
            body = json.dumps(desc).encode()
            headers.append(("Content-Type", "application/json"))
            if chunked:
                self.respond_chunked(req, status, headers, [body[: len(body) // 2], body[len(body) // 2:]], keep)
            else:
                self.respond(req, status, headers, body, keep)

        if q.get("close_after") == "1":
            # Like an upstream whose keep-alive timer fired: the response said nothing
            # about closing, the connection just goes away afterwards.
            time.sleep(0.01)
            self.sock.close()
            return False
        return keep

    def head_bytes(self, status, headers, keep):
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if not keep:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    def bodyless(req, status):
        return req.method == "HEAD" or status in (204, 304) or 100 <= status < 200

    def respond(self, req, status, headers, body, keep):
        no_body_status = status in (204, 304) or 100 <= status < 200
        if not no_body_status:
            headers = headers + [("Content-Length", str(len(body)))]
        data = self.head_bytes(status, headers, keep)
        if self.trickle:
            for i in range(0, len(data), 512):
                self.sock.sendall(data[i:i + 512])
                time.sleep(0.001)
            data = b""
        if not self.bodyless(req, status):
            data += body
        self.sock.sendall(data)

    def respond_chunked(self, req, status, headers, pieces, keep):
        if self.bodyless(req, status):
            self.sock.sendall(self.head_bytes(status, headers, keep))
            return
        out = [self.head_bytes(status, headers + [("Transfer-Encoding", "chunked")], keep)]
        for p in pieces:
            if p:
                out.append(b"%x\r\n" % len(p) + bytes(p) + b"\r\n")
        out.append(b"0\r\n\r\n")
        self.sock.sendall(b"".join(out))

    def stream_pattern(self, req, status, headers, total, chunked, keep):
        if status in (204, 304):
            self.sock.sendall(self.head_bytes(status, headers, keep))
            return
        if chunked:
            self.sock.sendall(self.head_bytes(status, headers + [("Transfer-Encoding", "chunked")], keep))
        else:
            self.sock.sendall(self.head_bytes(status, headers + [("Content-Length", str(total))], keep))
        if req.method == "HEAD":
            return
        off = 0
        while off < total:
            n = min(CHUNK, total - off)
            piece = pattern_chunk(off, n)
            if chunked:
                self.sock.sendall(b"%x\r\n" % n)
                self.sock.sendall(piece)
                self.sock.sendall(b"\r\n")
            else:
                self.sock.sendall(piece)
            off += n
        if chunked:
            self.sock.sendall(b"0\r\n\r\n")


REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden",
    404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


class Server:
    def __init__(self, port, name, default_query=""):
        self.name = name
        self.default_query = default_query
        self.stats = Stats()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]

    def serve_forever(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except InterruptedError:
                continue
            Connection(self, conn, peer).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="upstream")
    ap.add_argument("--default-query", default="")
    args = ap.parse_args()
    server = Server(args.port, args.name, args.default_query)
    sys.stdout.write("LISTENING %d\n" % server.port)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
