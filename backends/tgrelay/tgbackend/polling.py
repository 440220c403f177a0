"""Lossless long polling: getUpdates → handle the whole batch → acknowledge (offset persisted once per batch).

A handler exception leaves the batch unacknowledged and retries it with backoff; a crash re-delivers it,
and updates at or below the persisted "seen_upto" mark come back flagged as redelivered.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field

from telegram.error import InvalidToken, RetryAfter

from tgbackend.client import TelegramClient, retry_after_seconds, translate

log = logging.getLogger("errbot.backends.tgrelay.polling")
MAX_BACKOFF = 30.0


@dataclass
class PollingStatus:
    """What telegram_status() reports about the update stream."""

    updates_received: int = 0
    last_error: str | None = None
    last_poll_ok: float | None = None
    token_refused: bool = False
    extra: dict = field(default_factory=dict)


class OffsetStore:
    """The per-bot polling marks in the backend's Errbot storage: the acknowledged offset and the
    highest update_id ever handed to plugins (seen_upto)."""

    def __init__(self, storage: MutableMapping, lock: threading.Lock) -> None:
        self._storage = storage
        self._lock = lock
        self._cache: dict[int, dict] = {}

    def _key(self, bot_id: int) -> str:
        return f"polling:{bot_id}"

    def load(self, bot_id: int) -> dict:
        """{"offset": int | None, "seen_upto": int} for this bot."""
        if bot_id not in self._cache:
            with self._lock:
                stored = self._storage.get(self._key(bot_id)) if hasattr(self._storage, "get") else None
            marks = dict(stored) if isinstance(stored, dict) else {}
            self._cache[bot_id] = {"offset": marks.get("offset"), "seen_upto": marks.get("seen_upto", 0)}
        return self._cache[bot_id]

    def save(self, bot_id: int, *, offset: int | None = None, seen_upto: int | None = None) -> None:
        """Update and persist the marks (one storage write)."""
        marks = self.load(bot_id)
        if offset is not None:
            marks["offset"] = offset
        if seen_upto is not None:
            marks["seen_upto"] = max(marks["seen_upto"] or 0, seen_upto)
        with self._lock:
            self._storage[self._key(bot_id)] = dict(marks)


class Poller:
    """The getUpdates loop; runs in Errbot's backend thread (serve_once) and calls handle() there."""

    def __init__(
        self,
        client: TelegramClient,
        offsets: OffsetStore,
        handle: Callable[[dict, bool], None],
        status: PollingStatus,
        *,
        poll_timeout: float,
        reconnect: Callable[[], bool],
    ) -> None:
        self._client = client
        self._offsets = offsets
        self._handle = handle
        self._status = status
        self._poll_timeout = poll_timeout
        self._reconnect = reconnect
        self.stop = threading.Event()
        self.wake = threading.Event()

    def request_stop(self) -> None:
        """Make run() return soon; the batch in hand stays unacknowledged if its handling was cut short."""
        self.stop.set()
        self.wake.set()

    def _pause(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()

    def run(self) -> None:
        """Poll until request_stop()."""
        backoff = 1.0
        while not self.stop.is_set():
            bot = self._client.bot
            if bot is None:
                if not self._reconnect():
                    self._pause(backoff if not self._status.token_refused else 3600.0)
                    backoff = min(backoff * 1.5, MAX_BACKOFF)
                else:
                    backoff = 1.0
                continue
            generation = self._client.generation
            marks = self._offsets.load(bot.id)
            try:
                updates = self._fetch(bot, marks["offset"])
            except _Interrupted:
                continue
            except InvalidToken:
                self._client.mark_revoked()
                continue
            except RetryAfter as exc:
                self._status.last_error = str(translate(exc))
                self._pause(retry_after_seconds(exc))
                continue
            except Exception as exc:
                error = translate(exc)
                self._status.last_error = str(error)
                log.warning("getUpdates failed (%s); retrying in %.1f s", error, backoff)
                self._pause(backoff)
                backoff = min(backoff * 1.5, MAX_BACKOFF)
                continue
            backoff = 1.0
            self._status.last_poll_ok = time.time()
            if not updates or generation != self._client.generation:
                continue
            self._handle_batch(bot.id, updates, marks)

    def _fetch(self, bot: object, offset: int | None) -> list[dict]:
        future = self._client.schedule(bot.get_raw_updates(offset, self._poll_timeout))  # type: ignore[attr-defined]
        deadline = time.monotonic() + self._poll_timeout + 30.0
        while True:
            if self.wake.is_set():
                self.wake.clear()
                future.cancel()
                raise _Interrupted
            try:
                return future.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                if time.monotonic() > deadline:
                    future.cancel()
                    raise TimeoutError("getUpdates did not answer in time") from None

    def _handle_batch(self, bot_id: int, updates: list[dict], marks: dict) -> None:
        ids = [u["update_id"] for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
        if not ids:
            log.warning("getUpdates returned %d entries without update_id; skipping them", len(updates))
            return
        previously_seen = marks["seen_upto"] or 0
        highest = max(ids)
        self._offsets.save(bot_id, seen_upto=highest)
        handled: set[int] = set()
        attempt = 0
        backoff = 0.5
        while True:
            try:
                for update in updates:
                    update_id = update.get("update_id") if isinstance(update, dict) else None
                    if update_id in handled:
                        continue
                    self._handle(
                        update, attempt > 0 or (isinstance(update_id, int) and update_id <= previously_seen)
                    )
                    handled.add(update_id)  # type: ignore[arg-type]
                break
            except Exception:
                attempt += 1
                log.exception(
                    "A plugin failed on an update; the batch stays unacknowledged, retry %d in %.1f s",
                    attempt,
                    backoff,
                )
                self._status.last_error = "a plugin failed to handle an update (see the log)"
                self.stop.wait(backoff)
                if self.stop.is_set():
                    return
                backoff = min(backoff * 2, MAX_BACKOFF)
        self._status.updates_received += len(updates)
        self._offsets.save(bot_id, offset=highest + 1)


class _Interrupted(Exception):
    """The long poll was cut short (shutdown or a new token)."""
