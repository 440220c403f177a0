"""The whole product in one test process: sandbox (Telegram), real Errbot with TGRelay and the Relay plugin,
Errbot's Webserver on a real port, and a real webhook receiver (the business).

    from tests.helpers.relay_stack import relay_stack  # noqa: F401  (pytest fixture)

    def test_x(relay_stack):
        hook = relay_stack.add_webhook(["*"])
        relay_stack.sandbox.push_text(555, "hi")
        event = relay_stack.wait_event("message:appUser")
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import smooch
from errbot.core_plugins.wsview import reset_app

from sandbox import Sandbox
from tests.helpers.backend_bot import ADMIN_ID, ROOT, TOKEN, RunningBot, start_bot, wait_until
from tests.helpers.receiver import Receiver

APP_ID = "testapp"
KEY_ID = "app_testkey"
KEY_SECRET = "test-key-secret-0123456789"
CORE_PLUGINS = ("ACLs", "Help", "Health", "Plugins", "Utils", "CommandNotFoundFilter")
PLUGIN_DIRS = (ROOT / "plugins",)


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RelayStack:
    """Handles on every part of a running relay."""

    sandbox: Sandbox
    receiver: Receiver
    bot: RunningBot
    http_url: str

    @property
    def api(self) -> str:
        """Base URL of the app's API."""
        return f"{self.http_url}/v1.1/apps/{APP_ID}"

    @property
    def auth(self) -> tuple[str, str]:
        """HTTP Basic credentials of the provisioned API key."""
        return KEY_ID, KEY_SECRET

    @property
    def service(self) -> Any:
        """The running RelayService (store, dispatchers, api)."""
        return self.bot.plugin("Relay").service

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """An authenticated API call; path is relative to the app."""
        kwargs.setdefault("auth", self.auth)
        kwargs.setdefault("timeout", 15)
        return requests.request(method, f"{self.api}{path}", **kwargs)

    def add_webhook(self, triggers: list[str] | None = None, target: str | None = None,
                    include_full_app_user: bool = False) -> dict:
        """Create a webhook to the receiver through the API; returns the webhook object (with secret)."""
        body: dict[str, Any] = {"target": target or self.receiver.url + "/hook",
                                "includeFullAppUser": include_full_app_user}
        if triggers is not None:
            body["triggers"] = triggers
        response = self.request("POST", "/webhooks", json=body)
        assert response.status_code == 201, response.text
        return response.json()["webhook"]

    def events(self, trigger: str | None = None) -> list[dict]:
        """Webhook bodies received so far, optionally of one trigger."""
        bodies = [r.json for r in self.receiver.requests]
        return [b for b in bodies if trigger is None or b.get("trigger") == trigger]

    def wait_event(self, trigger: str, predicate: Callable[[dict], bool] = lambda e: True,
                   timeout: float = 15) -> dict:
        """The first received webhook body of `trigger` matching predicate."""
        found: list[dict] = []

        def seen() -> bool:
            found[:] = [e for e in self.events(trigger) if predicate(e)]
            return bool(found)

        wait_until(seen, timeout, f"no {trigger} webhook arrived")
        return found[0]

    def app_user_id(self, telegram_user_id: int) -> str:
        """The appUser _id of a Telegram user who has written to the bot."""
        wait_until(lambda: self.service.store.app_user_by_telegram_id(telegram_user_id) is not None, 15,
                   f"Telegram user {telegram_user_id} never reached the relay")
        return self.service.store.app_user_by_telegram_id(telegram_user_id)["_id"]

    def smooch_api_client(self, jwt: str | None = None) -> smooch.ApiClient:
        """The official Smooch client configured for this server (Basic auth, or a JWT).

        smooch 5.x keeps its configuration in a process-wide singleton, so this sets it for the test.
        """
        configuration = smooch.configuration
        configuration.host = self.http_url
        configuration.api_key.pop("Authorization", None)
        configuration.api_key_prefix.pop("Authorization", None)
        configuration.username, configuration.password = ("", "") if jwt else self.auth
        if jwt:
            configuration.api_key["Authorization"] = jwt
            configuration.api_key_prefix["Authorization"] = "Bearer"
        return smooch.ApiClient(host=configuration.host)


def start_relay_stack(sandbox: Sandbox, receiver: Receiver, *, extra_config: dict[str, Any] | None = None,
                      data_dir: str | None = None, token: str | None = TOKEN) -> RelayStack:
    """Start Errbot with the Relay plugin, serving HTTP on a free port; returns once the API answers."""
    reset_app()  # Errbot's Flask app is process-global: a previous bot's routes must not linger
    port = free_port()
    http_url = f"http://127.0.0.1:{port}"
    body_limit = (extra_config or {}).get("RELAY_MAX_BODY_BYTES", 1024 * 1024)
    config = {
        "CORE_PLUGINS": CORE_PLUGINS,
        # as config_template.py: the server itself refuses bodies over twice the relay's limit
        "WEBSERVER_CONFIG": {"HOST": "127.0.0.1", "PORT": port, "SSL": None, "MAX_BODY_BYTES": 2 * body_limit},
        "RELAY_PUBLIC_URL": http_url,
        "RELAY_APP_ID": APP_ID,
        "RELAY_API_KEY_ID": KEY_ID,
        "RELAY_API_KEY_SECRET": KEY_SECRET,
        "RELAY_WEBHOOK_TIMEOUT": 5.0,
        **(extra_config or {}),
    }
    bot = start_bot(sandbox.url, token=token, plugin_dirs=PLUGIN_DIRS, extra_config=config, data_dir=data_dir,
                    required_plugins=("Relay",))

    def api_up() -> bool:
        try:
            return requests.get(f"{http_url}/v1.1/openapi.json", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(api_up, 20, "the relay's HTTP API never came up")
    except BaseException:
        bot.stop()
        raise
    return RelayStack(sandbox, receiver, bot, http_url)


@pytest.fixture
def relay_stack() -> Iterator[RelayStack]:
    """A sandbox, a receiver and a running relay, all stopped at teardown."""
    sandbox = Sandbox(host="127.0.0.1", port=0)
    sandbox.start()
    sandbox.add_bot(TOKEN, username="relay_test_bot")
    receiver = Receiver()
    stack = start_relay_stack(sandbox, receiver)
    try:
        yield stack
    finally:
        if stack.bot.thread.is_alive():
            stack.bot.stop()
        receiver.stop()
        sandbox.stop()


__all__ = ["ADMIN_ID", "APP_ID", "KEY_ID", "KEY_SECRET", "RelayStack", "relay_stack", "start_relay_stack"]
