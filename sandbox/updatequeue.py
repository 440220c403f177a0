"""Pending updates with Telegram's getUpdates semantics: offsets confirm and forget, long polls wake on push."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice

from sandbox.apierror import ApiError


def conflict_other_poll() -> ApiError:
    """The answer to a long poll superseded by a newer getUpdates call."""
    return ApiError(409, "Conflict: terminated by other getUpdates request; "
                         "make sure that only one bot instance is running")


def encode(update: object) -> bytes:
    """Compact JSON bytes of an update (a str is taken as already-serialised, possibly malformed, JSON)."""
    if isinstance(update, str):
        return update.encode("utf-8")
    return json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class UpdateQueue:
    """Updates in order of arrival, keyed by a position id (the update_id the sandbox assigned)."""

    def __init__(self, first_update_id: int) -> None:
        self._cv = threading.Condition()
        self._items: deque[tuple[int, bytes]] = deque()
        self._next_id = first_update_id
        self._poll_generation = 0
        self.available_at: dict[int, float] = {}
        self.acknowledged = 0

    def push(self, make: Callable[[int], object]) -> object:
        """Assign the next update_id, build the update with it, and make it available at once."""
        return self.push_many([make])[0]

    def push_many(self, makers: Iterable[Callable[[int], object]]) -> list[object]:
        """Push several updates under one lock with a single wake-up (the benchmark fast path)."""
        out = []
        with self._cv:
            for make in makers:
                update_id = self._next_id
                self._next_id += 1
                update = make(update_id)
                self._items.append((update_id, encode(update)))
                self.available_at[update_id] = time.time()
                out.append(update)
            self._cv.notify_all()
        return out

    def pending(self) -> int:
        """How many updates are not yet confirmed."""
        with self._cv:
            return len(self._items)

    def drop_pending(self) -> None:
        """Forget every pending update (drop_pending_updates)."""
        with self._cv:
            self._items.clear()

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            while len(self._items) > -offset:
                self._items.popleft()
            return
        while self._items and self._items[0][0] < offset:
            self._items.popleft()
        self.acknowledged = max(self.acknowledged, offset - 1)

    def get(self, offset: int | None, limit: int, timeout: float) -> tuple[list[int], list[bytes]]:
        """Confirm below offset, then wait up to timeout for updates; (ids, JSON bytes) of up to `limit`."""
        deadline = time.monotonic() + timeout
        with self._cv:
            if offset is not None and offset != 0:
                self._confirm(offset)
            self._poll_generation += 1
            generation = self._poll_generation
            self._cv.notify_all()
            while not self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cv.wait(remaining)
                if self._poll_generation != generation:
                    raise conflict_other_poll()
            chosen = list(islice(self._items, limit))
        return [uid for uid, _ in chosen], [data for _, data in chosen]
