"""Sandbox: a local, strict Telegram Bot API simulator for tests, `make run` and benchmarks (CONTRACTS §7)."""

from __future__ import annotations

import mimetypes
import threading
import time
import zlib
from collections.abc import Callable

from sandbox.apierror import ApiError, unauthorized
from sandbox.botapi import Bot, BotApi, RawUpdates
from sandbox.control import ControlApi
from sandbox.faults import FaultPlan, RateLimiter
from sandbox.files import FileStore
from sandbox.page import PAGE
from sandbox.params import decode_params, read_body
from sandbox.pushes import PushMixin
from sandbox.recorder import Recorder
from sandbox.server import Reply, SandboxServer
from sandbox.updatequeue import UpdateQueue
from sandbox.world import World


class Sandbox(PushMixin):
    """One simulated Telegram: bots (tokens), users who write to them, updates, files, faults, request log."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, enforce_limits: bool = False, *,
                 first_update_id: int = 10000) -> None:
        self.host = host
        self.port = port
        self.enforce_limits = enforce_limits
        self._world = World()
        self._queue = UpdateQueue(first_update_id)
        self._files = FileStore()
        self._faults = FaultPlan()
        self._recorder = Recorder()
        self._limiter = RateLimiter()
        self._bots: dict[str, Bot] = {}
        self._bots_lock = threading.Lock()
        self._api = BotApi(self._world, self._queue, self._files, self._limiter, lambda: self.enforce_limits)
        self._control = ControlApi(self)
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Listen and serve in a daemon thread; returns self (so `sb = Sandbox().start()` works)."""
        self._server = SandboxServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="telegram-sandbox", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (the Bot API is at {url}/bot<token>/<method>)."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- bots ----------------------------------------------------------------------------------------

    def add_bot(self, token: str, username: str = "relay_test_bot", first_name: str = "Relay") -> dict:
        """Make `token` valid for a bot; returns its User object (what getMe answers)."""
        head = token.split(":", 1)[0]
        bot_id = int(head) if head.isdigit() else zlib.crc32(token.encode()) % 10**9 + 10**9
        user = {"id": bot_id, "is_bot": True, "first_name": first_name, "username": username,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False,
                "can_connect_to_business": False, "has_main_web_app": False}
        with self._bots_lock:
            self._bots[token] = Bot(token, user, {"url": ""}, {})
        return dict(user)

    def revoke(self, token: str) -> None:
        """The token now gets 401 Unauthorized."""
        with self._bots_lock:
            self._bots.pop(token, None)

    def _bot(self, token: str) -> Bot | None:
        with self._bots_lock:
            return self._bots.get(token)

    # --- reading what the bot did --------------------------------------------------------------------

    def requests(self, method: str | None = None, chat_id: int | None = None) -> list[dict]:
        """Every Bot API request: {method, params, files: {name: bytes}, token, t, status, result?}."""
        return self._recorder.select(method, chat_id)

    def sent(self, chat_id: int | None = None) -> list[dict]:
        """Messages from successful send* calls (as Telegram Message dicts, edits applied, deletions gone)."""
        return self._world.sent(chat_id)

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 10) -> dict:
        """The first recorded request matching predicate (waiting up to timeout), else AssertionError."""
        return self._recorder.wait_for(predicate, timeout)

    def file_bytes(self, file_id: str) -> bytes | None:
        """The bytes behind a file_id (None for unknown or size-only big files)."""
        stored = self._files.get(file_id)
        return stored.data if stored else None

    @property
    def update_available_at(self) -> dict[int, float]:
        """update_id → wall-clock time (time.time()) it became available to getUpdates."""
        return self._queue.available_at

    @property
    def offset_acknowledged(self) -> int:
        """Highest update_id confirmed by a getUpdates offset."""
        return self._queue.acknowledged

    def pending_updates(self) -> int:
        """Updates not yet confirmed by the bot."""
        return self._queue.pending()

    # --- faults --------------------------------------------------------------------------------------

    def fail_next(self, method: str, status: int, description: str, retry_after: int | None = None,
                  count: int = 1) -> None:
        """The next `count` calls of method ("*" = any) answer Telegram's error with this status."""
        self._faults.fail_next(method, status, description, retry_after, count)

    def drop_next(self, method: str, count: int = 1) -> None:
        """The next `count` calls of method ("*" = any) get their connection closed without an answer."""
        self._faults.drop_next(method, count)

    def block_user(self, user_id: int) -> None:
        """Sends to this chat answer 403 "Forbidden: bot was blocked by the user"."""
        with self._world.lock:
            self._world.blocked.add(user_id)

    def unblock_user(self, user_id: int) -> None:
        """Undo block_user."""
        with self._world.lock:
            self._world.blocked.discard(user_id)

    def clear_faults(self) -> None:
        """Forget pending fail_next/drop_next faults."""
        self._faults.clear()

    # --- HTTP entry points (called by the server) ----------------------------------------------------

    def handle_bot_api(self, token: str, method: str, http_method: str, query: dict, content_type: str,
                       body: bytes) -> Reply:
        """One Bot API call: parse, authenticate, apply faults, run, record."""
        arrived = time.monotonic()
        name = self._api.canonical(method) or method
        raw, uploads, parse_error = dict(query), {}, None
        try:
            fields, uploads = read_body(content_type, body)
            raw.update(fields)
        except ApiError as exc:
            parse_error = exc
        params = decode_params(raw)
        entry = {"method": name, "params": params, "files": {k: u.data for k, u in uploads.items()},
                 "token": token, "t": arrived, "status": 0}
        reply = self._answer(token, name, params, uploads, parse_error, entry)
        entry["status"] = 0 if reply.drop else reply.status
        self._recorder.add(entry)
        return reply

    def _answer(self, token: str, name: str, params: dict, uploads: dict, parse_error: ApiError | None,
                entry: dict) -> Reply:
        bot = self._bot(token)
        try:
            if bot is None:
                raise unauthorized()
            matched, fault = self._faults.take(name)
            if matched and fault is None:
                return Reply(drop=True)
            if fault is not None:
                raise fault
            if parse_error is not None:
                raise parse_error
            result = self._api.call(bot, name, params, uploads)
        except ApiError as exc:
            entry["description"] = exc.description
            return Reply.json(exc.status, exc.body())
        if isinstance(result, RawUpdates):
            entry["update_ids"] = result.update_ids
            return Reply(200, b'{"ok":true,"result":[' + b",".join(result.chunks) + b"]}")
        entry["result"] = result
        return Reply.json(200, {"ok": True, "result": result})

    def handle_file(self, token: str, file_path: str) -> Reply:
        """GET {url}/file/bot<token>/<file_path>: the file's bytes."""
        if self._bot(token) is None:
            return Reply.json(401, unauthorized().body())
        stored = self._files.by_path(file_path)
        if stored is None or stored.data is None:
            return Reply.json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        content_type = stored.mime_type or mimetypes.guess_type(file_path)[0] or "application/octet-stream"
        return Reply(200, stored.data, content_type)

    def handle_control(self, http_method: str, path: str, query: dict, body: bytes) -> Reply:
        """The JSON control API under /control/."""
        return self._control.handle(http_method, path, query, body)

    def handle_page(self) -> Reply:
        """GET /: the chat page where a person plays the Telegram user."""
        return Reply(200, PAGE, "text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
