"""The HTTP layer: a threaded HTTP/1.1 keep-alive server routing to the Bot API, files, control API and page."""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_BODY = 60 * 1024 * 1024


class Reply:
    """An HTTP answer: status, body bytes, content type; `drop` closes the connection without answering."""

    def __init__(self, status: int = 200, body: bytes = b"", content_type: str = "application/json",
                 drop: bool = False, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.drop = drop
        self.headers = headers or {}

    @classmethod
    def json(cls, status: int, value: object) -> Reply:
        """A JSON answer."""
        return cls(status, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


class App(Protocol):
    """What the server routes to (implemented by Sandbox)."""

    def handle_bot_api(self, token: str, method: str, http_method: str, query: dict, content_type: str,
                       body: bytes) -> Reply: ...
    def handle_file(self, token: str, file_path: str) -> Reply: ...
    def handle_control(self, http_method: str, path: str, query: dict, body: bytes) -> Reply: ...
    def handle_page(self) -> Reply: ...


class SandboxServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon threads, a deep backlog, and address reuse."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Client disconnects are normal (long polls cut short); stay quiet rather than print tracebacks."""


class Handler(BaseHTTPRequestHandler):
    """Routes one request; never logs (URLs carry the bot token)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: SandboxServer

    def log_message(self, format: str, *args: object) -> None:
        """Silence access logs: Bot API paths contain the token."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _dispatch(self, http_method: str) -> None:
        app = self.server.app
        try:
            body = self._body()
        except ValueError:
            self._send(Reply.json(413, {"ok": False, "error_code": 413, "description": "Request Entity Too Large"}))
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if path.startswith("/bot") and path.count("/") >= 2:
            token, _, method = path[4:].partition("/")
            reply = app.handle_bot_api(unquote(token), method, http_method, query,
                                       self.headers.get("Content-Type", ""), body)
        elif path.startswith("/file/bot"):
            token, _, file_path = path[len("/file/bot"):].partition("/")
            reply = app.handle_file(unquote(token), unquote(file_path))
        elif path == "/control" or path.startswith("/control/"):
            reply = app.handle_control(http_method, path, query, body)
        elif path in ("/", "/index.html") and http_method == "GET":
            reply = app.handle_page()
        else:
            reply = Reply.json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if reply.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True
