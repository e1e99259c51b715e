#!/usr/bin/python3
"""A WebSocket upstream for grayproxy's integration tests (Debian's python3-websockets,
asyncio API of websockets 10.x).

    ws_upstream.py --port P [--name NAME]

With --port 0 it picks a free port and prints "LISTENING <port>" as its first stdout line.
Binds 127.0.0.1 only; exits on SIGTERM/SIGINT.

Every connection, whatever its path:
  - echoes each message back as it came (text as text, binary as binary);
  - text "whoami" -> JSON {"name", "path", "headers": [[lower-case name, value], ...]}:
    which server this is and the request head of the upgrade request it saw;
  - text "stats"  -> JSON {"name", "open": connections open now (this one included),
    "total": connections accepted so far, "closed": connections closed so far};
  - a query push_ms=N in the request path: the server also sends "push <i>" every N ms,
    unprompted, until the connection closes.

Messages of any size are accepted (max_size=None); no compression, no pings from the
server (a tunnel must carry only the test's own traffic).
"""

import argparse
import asyncio
import json
import signal
import sys
import urllib.parse

import websockets


class Server:
    def __init__(self, name):
        self.name = name
        self.open = 0
        self.total = 0
        self.closed = 0

    async def pusher(self, ws, interval):
        i = 0
        try:
            for i in range(10 ** 7):
                await asyncio.sleep(interval)
                await ws.send("push %d" % i)
        except websockets.ConnectionClosed:
            pass

    async def handler(self, ws, path=None):
        self.open += 1
        self.total += 1
        path = ws.path
        headers = [[k.lower(), v] for k, v in ws.request_headers.raw_items()]
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        push = None
        if "push_ms" in q:
            push = asyncio.get_running_loop().create_task(self.pusher(ws, int(q["push_ms"]) / 1000.0))
        try:
            async for msg in ws:
                if msg == "whoami":
                    await ws.send(json.dumps({"name": self.name, "path": path, "headers": headers}))
                elif msg == "stats":
                    await ws.send(json.dumps({"name": self.name, "open": self.open,
                                              "total": self.total, "closed": self.closed}))
                else:
                    await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            if push is not None:
                push.cancel()
            self.open -= 1
            self.closed += 1


async def main_async(port, name):
    server = Server(name)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(server.handler, "127.0.0.1", port, max_size=None,
                                ping_interval=None, compression=None, close_timeout=2,
                                backlog=4096) as srv:
        sys.stdout.write("LISTENING %d\n" % srv.sockets[0].getsockname()[1])
        sys.stdout.flush()
        await stop


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="ws")
    args = ap.parse_args()
    asyncio.run(main_async(args.port, args.name))


if __name__ == "__main__":
    main()
