"""A real HTTP webhook receiver on 127.0.0.1 for tests: records requests and misbehaves on demand.

    with Receiver() as rx:
        rx.respond(503, times=2)          # the next two requests get 503, then the default (200)
        rx.respond(200, delay=30, times=1)   # hang past a client's timeout
        rx.refuse(); rx.listen()          # stop accepting connections (refused), then resume on the same port
        rx.respond(200, body_size=50 * 2**20)   # a huge streamed body
        rx.respond(302, redirect="/loop")  # a redirect loop
        rx.wait_for(lambda reqs: len(reqs) >= 3, timeout=10)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """One recorded request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    t: float

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass
class Rule:
    """How to answer: status, optional delay (hang), body size, redirect location; `times` None = forever."""

    status: int = 200
    delay: float = 0.0
    body_size: int = 0
    redirect: str | None = None
    times: int | None = None
    path: str | None = None
    served: int = field(default=0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Receiver:
    """A thread-safe recording webhook receiver (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Condition()
        self._requests: list[Request] = []
        self._rules: list[Rule] = []
        self._default = Rule()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.listen()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    def listen(self) -> None:
        """Start accepting connections (on the same port after `refuse()`)."""
        if self._server is not None:
            return
        handler = self._handler_class()
        deadline = time.monotonic() + 10
        while True:
            try:
                server = _Server((self.host, self.port), handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def refuse(self) -> None:
        """Stop listening: new connections are refused until `listen()`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        """Stop listening and release hanging handlers."""
        self._stopping.set()
        self.refuse()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ------------------------------------------------------------------------------

    def respond(self, status: int = 200, *, delay: float = 0.0, body_size: int = 0, redirect: str | None = None,
                times: int | None = None, path: str | None = None) -> None:
        """Queue a rule (first matching unexhausted rule wins); `times=None` makes it the default."""
        rule = Rule(status, delay, body_size, redirect, times, path)
        with self._lock:
            if times is None and path is None:
                self._default = rule
            else:
                self._rules.append(rule)

    def _rule_for(self, path: str) -> Rule:
        with self._lock:
            for rule in self._rules:
                if (rule.path is None or rule.path == path) and (rule.times is None or rule.served < rule.times):
                    rule.served += 1
                    return rule
            return self._default

    # -- records --------------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """A snapshot of the recorded requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many requests arrived."""
        with self._lock:
            return len(self._requests)

    def bodies(self) -> list[Any]:
        """The JSON bodies of the recorded requests."""
        return [r.json for r in self.requests]

    def wait_for(self, predicate: Callable[[list[Request]], bool], timeout: float = 10) -> list[Request]:
        """Block until predicate(requests) is true; AssertionError with what arrived after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self._requests)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"receiver: condition not met in {timeout}s; {len(self._requests)} requests")
                self._lock.wait(min(remaining, 0.1))
            return list(self._requests)

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    self.close_connection = True  # the sender died mid-request: nothing was delivered
                    return
                self._serve(body)

            do_PUT = do_POST

            def _serve(self, body: bytes) -> None:
                receiver._record(Request(self.command, self.path, dict(self.headers.items()), body, time.monotonic()))
                rule = receiver._rule_for(self.path)
                if rule.delay and receiver._stopping.wait(rule.delay):
                    return
                try:
                    self.send_response(rule.status)
                    if rule.redirect:
                        self.send_header("Location", rule.redirect)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(rule.body_size))
                    self.end_headers()
                    chunk = b"x" * 65536
                    left = rule.body_size
                    while left > 0 and not receiver._stopping.is_set():
                        piece = chunk[: min(left, len(chunk))]
                        self.wfile.write(piece)
                        left -= len(piece)
                except OSError:
                    self.close_connection = True

        return Handler
