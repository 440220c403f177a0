"""Serve Errbot's web app (the Flask app that plugins' `@webhook` routes live on) with waitress.

Errbot's own Webserver plugin runs werkzeug's development server, which closes every connection after one
response and starts a new thread per connection: a business posting replies pays a TCP handshake and a
thread start per request, and a flood of connections means a flood of threads. waitress (a well-kept
production WSGI server in pure Python) keeps connections alive, serves them from a fixed pool of threads,
caps open connections and drops idle ones. Measured on the relay's API: about
0.72 ms of CPU per request with werkzeug, 0.29 ms with waitress (README, Performance).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import waitress
from waitress import wasyncore
from waitress.server import BaseWSGIServer

log = logging.getLogger("errbot.backends.tgrelay.webserver")

DEFAULT_THREADS = 16
"""Request threads. Most handlers are short (a lock and a transaction); a few call out (a token check on
Telegram, a Stripe checkout, a file link fetching the file from Telegram), so more threads than cores keeps
those from blocking the API."""
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""Request bodies are read whole before a route sees them; larger ones get a 413 from the server itself,
decided from Content-Length before any of the body is read (chunked ones: once past the limit)."""


@dataclass(frozen=True)
class WebserverSettings:
    """Where and how to listen, read from Errbot's WEBSERVER_CONFIG (HOST, PORT, THREADS, MAX_BODY_BYTES, SSL)."""

    host: str
    port: int
    threads: int = DEFAULT_THREADS
    connection_limit: int = 200
    idle_timeout: int = 120
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WebserverSettings:
        """Validate WEBSERVER_CONFIG; ValueError says which key is wrong and what to do instead."""
        ssl = config.get("SSL") or {}
        if isinstance(ssl, dict) and ssl.get("enabled"):
            raise ValueError(
                "WEBSERVER_CONFIG['SSL'] is enabled, but the relay's web server speaks plain HTTP: terminate TLS "
                "in a reverse proxy (nginx, Caddy) in front of it, and set SSL to None"
            )
        host = str(config.get("HOST") or "127.0.0.1")
        port = config.get("PORT")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"WEBSERVER_CONFIG['PORT'] must be a port number (0-65535), got {port!r}")
        threads = config.get("THREADS", DEFAULT_THREADS)
        max_body = config.get("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
        for key, value in (("THREADS", threads), ("MAX_BODY_BYTES", max_body)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"WEBSERVER_CONFIG[{key!r}] must be a positive integer, got {value!r}")
        return cls(host=host, port=port, threads=threads, max_body_bytes=max_body)


class Webserver:
    """One waitress server on its own thread; `stop` lets requests in progress finish, then closes.

    A host that resolves to several addresses (`*`, or `localhost` with both 127.0.0.1 and ::1) gets one
    listener per address; `::` listens on IPv6 and IPv4 alike.
    """

    def __init__(self, app: Callable[..., Any], settings: WebserverSettings) -> None:
        # A full request queue is normal during a burst (requests wait for a thread); waitress would log a
        # warning for every queued request.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self.settings = settings
        self._connections: dict[int, wasyncore.dispatcher] = {}  # waitress's socket map: listeners, channels
        where: dict[str, Any] = {"host": settings.host, "port": settings.port}
        if settings.host.strip("[]") == "::":
            where = {"sockets": [_dual_stack_socket(settings.port)]}
        try:
            self._server = waitress.create_server(
                app,
                map=self._connections,
                **where,
                threads=settings.threads,
                connection_limit=settings.connection_limit,
                channel_timeout=settings.idle_timeout,
                max_request_body_size=settings.max_body_bytes,
                # Answers up to this size are buffered (to a temporary file past 1 MB) so a request thread never
                # waits on a slow client: 32 MB holds any file a bot may download (20 MB).
                outbuf_high_watermark=32 * 1024 * 1024,
                asyncore_use_poll=True,  # select() cannot watch descriptors above 1024
                ident="",  # no Server header naming the software
                clear_untrusted_proxy_headers=True,
            )
        except BaseException:
            wasyncore.close_all(self._connections, ignore_all=True)  # listeners bound before the failure
            raise
        self._listeners = [d for d in self._connections.values() if isinstance(d, BaseWSGIServer)]
        self.port: int = self._listeners[0].effective_port
        self._stopped = False
        self._thread = threading.Thread(target=self._server.run, name="Webserver Thread", daemon=True)

    def start(self) -> None:
        """Start accepting connections."""
        self._thread.start()
        addresses = ", ".join(f"{listener.effective_host}:{listener.effective_port}" for listener in self._listeners)
        log.info("Web server listening on %s (%d threads)", addresses, self.settings.threads)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting; let requests in progress finish (up to `timeout`) and their answers go out (up to
        1 s more); then close every connection. Requests still queued are dropped unanswered: never run,
        safe to retry. Calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        if not self._thread.is_alive():  # never started, or its loop died: nothing else touches the sockets
            self._server.task_dispatcher.shutdown(cancel_pending=False, timeout=timeout)
            wasyncore.close_all(self._connections, ignore_all=True)
            return

        def close_listeners() -> None:
            for listener in self._listeners:
                wasyncore.dispatcher.close(listener)  # the listening socket only, not the server's trigger

        trigger = self._listeners[0].trigger  # thunks pulled through it run on the loop thread, which owns the sockets
        trigger.pull_trigger(close_listeners)
        self._server.task_dispatcher.shutdown(cancel_pending=False, timeout=timeout)
        flushed_by = time.monotonic() + 1.0
        while time.monotonic() < flushed_by and self._answers_pending():
            time.sleep(0.01)
        trigger.pull_trigger(lambda: wasyncore.close_all(self._connections, ignore_all=True))
        self._thread.join(2.0)
        if self._thread.is_alive():
            log.warning("The web server thread did not stop in time")
        else:
            log.info("Web server stopped")

    def _answers_pending(self) -> bool:
        """True while a connection still has response bytes waiting to be sent."""
        return any(getattr(channel, "total_outbufs_len", 0) for channel in list(self._connections.values()))


def _dual_stack_socket(port: int) -> socket.socket:
    """A listening-ready socket on :: that also accepts IPv4 (waitress would set IPV6_V6ONLY)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    except BaseException:
        sock.close()
        raise
    return sock
