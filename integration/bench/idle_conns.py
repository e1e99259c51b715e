#!/usr/bin/python3
"""Open N keep-alive connections to a proxy, send one GET on each, read the response,
and keep them all open (idle) until stdin closes or a line arrives.

usage: idle_conns.py PORT N [BATCH]
Prints "READY ok=<n> failed=<n>" once every connection has its response (or failed),
then waits; on any line on stdin (or EOF) it closes everything and prints "CLOSED alive=<n>"
(how many were still open, i.e. not closed by the proxy while idle).
"""
import resource
import selectors
import socket
import sys
import time


def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2])
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    sel = selectors.DefaultSelector()
    done_ok, failed = [], 0
    started = 0
    pending = {}  # sock -> [state, buf]
    deadline = time.monotonic() + 120

    def start_one(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        req = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nx-user-id: idle-%d\r\n\r\n" % (port, i)).encode()
        pending[s] = ["connecting", req, b""]
        sel.register(s, selectors.EVENT_WRITE)

    while (started < n or pending) and time.monotonic() < deadline:
        while started < n and len(pending) < batch:
            start_one(started)
            started += 1
        for key, ev in sel.select(timeout=1.0):
            s = key.fileobj
            st = pending[s]
            try:
                if st[0] == "connecting":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect")
                    s.sendall(st[1])
                    st[0] = "reading"
                    sel.modify(s, selectors.EVENT_READ)
                else:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed before response")
                    st[2] += data
                    head, sep, body = st[2].partition(b"\r\n\r\n")
                    if sep:
                        clen = 0
                        for line in head.split(b"\r\n")[1:]:
                            k, _, v = line.partition(b":")
                            if k.strip().lower() == b"content-length":
                                clen = int(v.strip())
                        if len(body) >= clen:
                            sel.unregister(s)
                            del pending[s]
                            done_ok.append(s)
            except OSError:
                sel.unregister(s)
                del pending[s]
                s.close()
                failed += 1
    for s in list(pending):
        sel.unregister(s)
        s.close()
        failed += 1
    print("READY ok=%d failed=%d" % (len(done_ok), failed), flush=True)
    sys.stdin.readline()
    alive = 0
    for s in done_ok:
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                pass  # closed by peer
            else:
                alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        s.close()
    print("CLOSED alive=%d" % alive, flush=True)


if __name__ == "__main__":
    main()
