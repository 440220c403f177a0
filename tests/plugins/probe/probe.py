"""Test-only plugin: records callback_message calls (body, sender, extras) and fails on demand."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from errbot import BotPlugin


class Probe(BotPlugin):
    """Tests read .calls and set .fail_times to make the next callbacks raise. In a separate process,
    PROBE_JOURNAL=<file> appends one JSON line per call and PROBE_DELAY=<seconds> slows each call down."""

    def activate(self) -> None:
        super().activate()
        self.calls: list[dict] = []
        self.fail_times = 0
        self.failures = 0
        self.changed = threading.Condition()
        journal = os.environ.get("PROBE_JOURNAL")
        self.journal = open(journal, "a", encoding="utf-8") if journal else None
        self.delay = float(os.environ.get("PROBE_DELAY", "0"))

    def deactivate(self) -> None:
        if self.journal is not None:
            self.journal.close()
        super().deactivate()

    def callback_message(self, msg: Any) -> None:
        with self.changed:
            if self.fail_times > 0:
                self.fail_times -= 1
                self.failures += 1
                raise RuntimeError("probe: simulated storage failure")
            self.calls.append(
                {"body": msg.body, "frm": getattr(msg.frm, "id", None), "extras": dict(msg.extras)}
            )
            if self.journal is not None:
                extras = msg.extras
                line = {"update_id": extras.get("update_id"), "redelivered": extras.get("redelivered")}
                self.journal.write(json.dumps(line) + "\n")
                self.journal.flush()
            if self.delay:
                time.sleep(self.delay)
            self.changed.notify_all()

    def wait_calls(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Block until at least count calls were recorded; return them (AssertionError on timeout)."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"probe saw {len(self.calls)} messages, expected {count}: {self.calls}")
            return list(self.calls)
