"""Test-only plugin: records callback_message calls (body, sender, extras) and fails on demand."""

from __future__ import annotations

import threading
from typing import Any

from errbot import BotPlugin


class Probe(BotPlugin):
    """Tests read .calls and set .fail_times to make the next callbacks raise."""

    def activate(self) -> None:
        super().activate()
        self.calls: list[dict] = []
        self.fail_times = 0
        self.failures = 0
        self.changed = threading.Condition()

    def callback_message(self, msg: Any) -> None:
        with self.changed:
            if self.fail_times > 0:
                self.fail_times -= 1
                self.failures += 1
                raise RuntimeError("probe: simulated storage failure")
            self.calls.append(
                {"body": msg.body, "frm": getattr(msg.frm, "id", None), "extras": dict(msg.extras)}
            )
            self.changed.notify_all()

    def wait_calls(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Block until at least count calls were recorded; return them (AssertionError on timeout)."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"probe saw {len(self.calls)} messages, expected {count}: {self.calls}")
            return list(self.calls)
