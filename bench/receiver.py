"""The benchmark's business: a webhook receiver in its own process, so its cost is not charged to the relay.

    python -m bench.receiver --port 0      # prints "PORT <n>" once listening

A small asyncio HTTP/1.1 server (keep-alive, Content-Length bodies). For every POST it records the arrival
time (time.time(), comparable with the sandbox's update_available_at on the same machine), the benchmark
marker found in the body ("bench#<n>", from the text or caption) and the appUser id. Control routes:
GET /_count → {"count": n}; GET /_dump → {"arrivals": [[marker, t, app_user_id], ...]}; POST /_reset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time

MARKER = re.compile(rb"bench#(\d+)")
APP_USER = re.compile(rb'"appUser":\{"_id":"([0-9a-f]+)"')
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Recorder:
    """Arrivals of one benchmark phase."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, float, str | None]] = []

    def reply(self, method: bytes, path: bytes, body: bytes) -> bytes:
        if path.startswith(b"/_"):
            if path == b"/_count":
                data = {"count": len(self.arrivals)}
            elif path == b"/_dump":
                data = {"arrivals": self.arrivals}
            else:
                self.arrivals = []
                data = {"ok": True}
            payload = json.dumps(data).encode()
            return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                len(payload), payload)
        now = time.time()
        found = MARKER.search(body)
        user = APP_USER.search(body)
        self.arrivals.append((int(found.group(1)) if found else -1, now,
                              user.group(1).decode() if user else None))
        return OK


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, recorder: Recorder) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:].strip())
            body = await reader.readexactly(length) if length else b""
            writer.write(recorder.reply(method, path, body))
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main_async(host: str, port: int) -> None:
    recorder = Recorder()
    server = await asyncio.start_server(lambda r, w: serve(r, w, recorder), host, port, backlog=512,
                                        limit=4 * 2**20)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(main_async(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
