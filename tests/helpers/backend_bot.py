"""Run the real Errbot with the TGRelay backend against a Telegram sandbox, inside the test process.

    from tests.helpers.backend_bot import start_bot, TOKEN, ADMIN_ID
    sb = Sandbox().start(); sb.add_bot(TOKEN)
    running = start_bot(sb.url, plugin_dirs=[ROOT / "plugins" / "relay"], extra_config={"RELAY_APP_ID": "app"})
    ...  running.backend is the TGRelayBackend; running.plugin("Relay") the plugin object
    running.stop()

Or, in pytest, the fixtures of tests/helpers/backend_fixtures.py (`sandbox`, `bot_factory`).
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from errbot.bootstrap import setup_bot

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKEN = "424242:AAFakeTokenForTheRelayTests-abcdefghijk"
OTHER_TOKEN = "434343:AAAnotherFakeTokenForTheRelayTests-xyz"
ADMIN_ID = 1000
CORE_PLUGINS = ("ACLs", "Help", "Health", "Plugins", "Utils", "CommandNotFoundFilter")


class BotConfig:
    """A plain config object, as setup_bot accepts (attributes = Errbot settings)."""


def make_config(
    api_url: str,
    data_dir: str,
    *,
    token: str | None = TOKEN,
    plugin_dirs: Iterable[str | pathlib.Path] = (),
    admins: Iterable[str] = (str(ADMIN_ID),),
    extra_config: dict[str, Any] | None = None,
) -> BotConfig:
    """The settings a TGRelay test bot runs with; extra_config overrides or adds any key."""
    config = BotConfig()
    config.BACKEND = "TGRelay"
    config.BOT_DATA_DIR = data_dir
    config.BOT_LOG_FILE = str(pathlib.Path(data_dir) / "errbot.log")
    config.BOT_LOG_LEVEL = logging.DEBUG
    config.BOT_EXTRA_BACKEND_DIR = str(ROOT / "backends")
    config.BOT_EXTRA_PLUGIN_DIR = [str(p) for p in plugin_dirs]
    config.STORAGE = "Memory"
    config.AUTOINSTALL_DEPS = False
    config.CORE_PLUGINS = CORE_PLUGINS
    config.BOT_ADMINS = tuple(admins)
    config.BOT_ADMINS_NOTIFICATIONS = ()
    config.BOT_PREFIX = "!"
    config.ACCESS_CONTROLS_DEFAULT = {"allowusers": tuple(admins)}
    config.HIDE_RESTRICTED_ACCESS = True
    config.SUPPRESS_CMD_NOT_FOUND = True
    config.BOT_IDENTITY = {"token": token, "api_url": api_url, "poll_timeout": 1, "pacing": False}
    config.CPU_AFFINITY = "off"  # in-process bots share pytest's process: pinning would pin the tests too
    for key, value in (extra_config or {}).items():
        setattr(config, key, value)
    return config


@dataclass
class RunningBot:
    """A started bot: the backend, its serve_forever thread, and where its data and log live."""

    backend: Any
    thread: threading.Thread
    data_dir: str
    log_file: str
    _handlers: list = field(default_factory=list)

    def plugin(self, name: str) -> Any:
        """The active plugin object called name."""
        return self.backend.plugin_manager.get_plugin_obj_by_name(name)

    def wait_connected(self, timeout: float = 15.0) -> None:
        """Wait until the backend is connected to Telegram (a token was accepted)."""
        wait_until(lambda: self.backend.telegram_status()["connected"], timeout, "bot never connected")

    def stop(self, timeout: float = 20.0) -> None:
        """request_shutdown, join the thread, and drop the log handlers setup_bot added."""
        self.backend.request_shutdown()
        self.thread.join(timeout)
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        assert not self.thread.is_alive(), "the bot thread did not stop"


def wait_until(condition: Any, timeout: float = 10.0, message: str = "condition not met") -> None:
    """Poll condition() until truthy or raise AssertionError(message)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.02)


def start_bot(
    api_url: str,
    *,
    token: str | None = TOKEN,
    plugin_dirs: Iterable[str | pathlib.Path] = (),
    admins: Iterable[str] = (str(ADMIN_ID),),
    extra_config: dict[str, Any] | None = None,
    data_dir: str | None = None,
    required_plugins: Iterable[str] = (),
    timeout: float = 30.0,
) -> RunningBot:
    """setup_bot + serve_forever in a daemon thread; returns once plugins are active (and, with a
    token, once connected). required_plugins: plugin names that must be active before returning."""
    data_dir = data_dir or tempfile.mkdtemp(prefix="tgrelay-test-")
    config = make_config(
        api_url, data_dir, token=token, plugin_dirs=plugin_dirs, admins=admins, extra_config=extra_config
    )
    root = logging.getLogger()
    before = list(root.handlers)
    backend = setup_bot("TGRelay", root, config)
    added = [h for h in root.handlers if h not in before]
    thread = threading.Thread(target=backend.serve_forever, name="errbot serve_forever", daemon=True)
    thread.start()
    running = RunningBot(backend, thread, data_dir, config.BOT_LOG_FILE, added)
    try:
        names = set(required_plugins) | {"Utils"}
        wait_until(
            lambda: names <= set(backend.plugin_manager.get_all_active_plugin_names()),
            timeout,
            f"plugins {sorted(names)} did not activate",
        )
        if token is not None:
            running.wait_connected(timeout)
    except BaseException:
        running.stop()
        raise
    return running
