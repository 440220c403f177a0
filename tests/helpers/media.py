"""A real local HTTP server that serves media files with their content types (what Telegram fetches by URL)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 200 + b"\xff\xd9"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class MediaServer:
    """Serves {path: (content_type, bytes)} on 127.0.0.1; unknown paths get 404."""

    def __init__(self, files: dict[str, tuple[str, bytes]] | None = None) -> None:
        self.files = files or {"/cat.jpg": ("image/jpeg", JPEG), "/doc.pdf": ("application/pdf", PDF)}
        media = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                entry = media.files.get(self.path)
                if entry is None:
                    self.send_error(404)
                    return
                content_type, body = entry
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="media-server").start()

    def url(self, path: str) -> str:
        """The URL of a served path."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
