"""SIGTERM (systemd, docker stop) stops the real bot process cleanly and quickly, losing nothing."""

import time

import pytest

from tests.helpers.process_stack import ProcessStack, wait_until

pytest_plugins = ["tests.helpers.process_stack"]


@pytest.fixture
def stack(process_stack: ProcessStack) -> ProcessStack:
    """The relay as real processes (tests/helpers/process_stack.py)."""
    return process_stack


def test_sigterm_stops_the_bot_gracefully_and_nothing_is_lost(stack):
    stack.start_bot()
    stack.add_webhook(["message:appUser"])
    for n in range(20):
        stack.push_text(5000 + n, f"before stop {n}")
    proc = stack.bot_proc
    started = time.monotonic()
    stack.stop_bot()
    took = time.monotonic() - started
    output = stack.bot_output()
    assert proc.returncode == 0, output[-2000:]
    assert took < 15, f"shutdown took {took:.1f} s"
    assert "SIGTERM received" in output and "Traceback" not in output

    stack.start_bot()
    texts = lambda: {m["text"] for b in stack.receiver.bodies() if b.get("trigger") == "message:appUser"  # noqa: E731
                     for m in b["messages"]}
    wait_until(lambda: texts() >= {f"before stop {n}" for n in range(20)}, 60, "a message was lost across the stop")
