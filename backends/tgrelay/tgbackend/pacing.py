"""Outgoing pace: ≤ 30 messages in any 1 s window overall (evenly spaced at 28/s) and < 1/s sustained
per private chat (0.95/s, GCRA token buckets; bursts of 3).

Callers reserve a send slot under a short lock and sleep outside it, so threads sending to other
chats never wait behind one busy chat.
"""

from __future__ import annotations

import threading
import time


class Pacer:
    """Computes and waits for each send's slot; disabled pacing returns at once."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        # Telegram counts any 1 s window: no overall burst. At 28/s a window holds 29 slots at most, so a
        # send ~35 ms late (a busy process) still keeps it at 30; at 29/s one such send made it 31.
        overall_rate: float = 28.0,
        overall_burst: int = 1,
        chat_rate: float = 0.95,  # ~1.05 s apart: 5% margin so network jitter cannot make two land < 1 s apart
        chat_burst: int = 3,
    ) -> None:
        self.enabled = enabled
        self._overall_interval = 1.0 / overall_rate
        self._overall_tolerance = (overall_burst - 1) * self._overall_interval
        self._chat_interval = 1.0 / chat_rate
        self._chat_tolerance = (chat_burst - 1) * self._chat_interval
        self._lock = threading.Lock()
        self._overall_tat = 0.0
        self._chat_tat: dict[int, float] = {}
        self._next_prune = 0.0

    def reserve(self, chat_id: int, now: float | None = None) -> float:
        """Book the next slot for chat_id and return how many seconds to wait before sending."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            chat_tat = self._chat_tat.get(chat_id, now)
            start = max(now, chat_tat - self._chat_tolerance, self._overall_tat - self._overall_tolerance)
            self._chat_tat[chat_id] = max(chat_tat, start) + self._chat_interval
            self._overall_tat = max(self._overall_tat, start) + self._overall_interval
            if now >= self._next_prune:
                self._prune(now)
        return start - now

    def wait(self, chat_id: int) -> None:
        """Block the calling thread until chat_id may send again."""
        delay = self.reserve(chat_id)
        if delay > 0:
            time.sleep(delay)

    def _prune(self, now: float) -> None:
        self._chat_tat = {chat: tat for chat, tat in self._chat_tat.items() if tat > now}
        self._next_prune = now + 60.0
