"""The log of every Bot API request the sandbox answered, with waiting for a matching one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Recorder:
    """Append-only request log: {method, params, files, token, t, status, result?}."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._entries: list[dict] = []

    def add(self, entry: dict) -> None:
        """Record one answered request and wake waiters."""
        with self._cv:
            self._entries.append(entry)
            self._cv.notify_all()

    def select(self, method: str | None = None, chat_id: int | None = None) -> list[dict]:
        """Recorded requests, oldest first, optionally only one method (case-insensitive) and/or chat."""
        with self._cv:
            entries = list(self._entries)
        if method is not None:
            wanted = method.lower()
            entries = [e for e in entries if e["method"].lower() == wanted]
        if chat_id is not None:
            entries = [e for e in entries if e["params"].get("chat_id") == chat_id]
        return entries

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float) -> dict:
        """The first recorded request matching predicate, waiting up to timeout; AssertionError otherwise."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cv:
            while True:
                while seen < len(self._entries):
                    entry = self._entries[seen]
                    seen += 1
                    if predicate(entry):
                        return entry
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching request within {timeout} s "
                                         f"({len(self._entries)} recorded)")
                self._cv.wait(remaining)

    def clear(self) -> None:
        """Forget the log."""
        with self._cv:
            self._entries.clear()
