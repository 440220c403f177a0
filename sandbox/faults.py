"""Injected faults (fail_next, drop_next) and Telegram's send pace (30/s overall, ~1/s per chat)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from sandbox.apierror import ApiError


@dataclass
class _Rule:
    method: str
    remaining: int
    error: ApiError | None


class FaultPlan:
    """Queued faults, consumed in order by the first matching request ("*" matches any method)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def fail_next(self, method: str, status: int, description: str, retry_after: int | None, count: int) -> None:
        """The next `count` matching calls answer with this error."""
        self._add(_Rule(method.lower(), count, ApiError(status, description, retry_after)))

    def drop_next(self, method: str, count: int) -> None:
        """The next `count` matching calls get their connection closed without an answer."""
        self._add(_Rule(method.lower(), count, None))

    def _add(self, rule: _Rule) -> None:
        if rule.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(rule)

    def take(self, method: str) -> tuple[bool, ApiError | None]:
        """(matched, error) for a request; matched with error None means drop the connection."""
        name = method.lower()
        with self._lock:
            for rule in self._rules:
                if rule.method in ("*", name):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return True, rule.error
        return False, None

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._rules.clear()


class RateLimiter:
    """Telegram's pace for sends: ≤ 30/s overall (sliding second), and a per-chat bucket refilled at 1/s."""

    def __init__(self, overall_per_second: int = 30, chat_burst: int = 3, chat_rate: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._overall = overall_per_second
        self._recent: deque[float] = deque()
        self._burst = chat_burst
        self._rate = chat_rate
        self._buckets: dict[int, tuple[float, float]] = {}

    def check(self, chat_id: int, now: float | None = None) -> None:
        """Count one send to chat_id, or raise 429 with retry_after (whole seconds, at least 1)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= self._overall:
                wait = 1.0 - (now - self._recent[0])
                raise _too_many(wait)
            tokens, last = self._buckets.get(chat_id, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[chat_id] = (tokens, now)
                raise _too_many((1.0 - tokens) / self._rate)
            self._buckets[chat_id] = (tokens - 1.0, now)
            self._recent.append(now)


def _too_many(wait: float) -> ApiError:
    seconds = max(1, math.ceil(wait))
    return ApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
