"""pytest fixtures for a sandbox and real Errbot + TGRelay bots. Import them into a test module:

from tests.helpers.backend_fixtures import bot_factory, sandbox  # noqa: F401

def test_x(sandbox, bot_factory):
    running = bot_factory(plugin_dirs=[...], extra_config={...})   # token TOKEN is registered
    sandbox.push_text(555, "hello")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox import Sandbox
from tests.helpers.backend_bot import TOKEN, RunningBot, start_bot


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox with the bot TOKEN (username relay_test_bot) registered."""
    sb = Sandbox(host="127.0.0.1", port=0)
    sb.start()
    sb.add_bot(TOKEN, username="relay_test_bot")
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def bot_factory(sandbox: Sandbox) -> Iterator[Callable[..., RunningBot]]:
    """start(**kwargs of start_bot) → RunningBot against `sandbox`; every bot is stopped at teardown."""
    started: list[RunningBot] = []

    def start(**kwargs: Any) -> RunningBot:
        running = start_bot(sandbox.url, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()
