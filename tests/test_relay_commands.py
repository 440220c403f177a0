"""The !relay admin commands, typed by an admin in Telegram (the sandbox), against the running relay."""

import re

import requests

from tests.helpers.backend_bot import ADMIN_ID, wait_until
from tests.helpers.relay_stack import APP_ID

pytest_plugins = ["tests.helpers.relay_stack"]


def _command(stack, text: str) -> str:
    """Send `text` as the admin and return the bot's answer."""
    before = len(stack.sandbox.sent(chat_id=ADMIN_ID))
    stack.sandbox.push_text(ADMIN_ID, text)
    wait_until(lambda: len(stack.sandbox.sent(chat_id=ADMIN_ID)) > before, 15, f"no answer to {text!r}")
    return stack.sandbox.sent(chat_id=ADMIN_ID)[before]["text"]


def test_api_keys_are_created_listed_and_revoked(relay_stack):
    stack = relay_stack
    answer = _command(stack, "!relay key create helpdesk")
    key_id = re.search(r"Key id: (app_[0-9a-f]{24})", answer).group(1)
    secret = re.search(r"Secret: (\S+)", answer).group(1)
    url = f"{stack.api}/webhooks"
    assert requests.get(url, auth=(key_id, secret), timeout=10).status_code == 200
    listed = _command(stack, "!relay key list")
    assert key_id in listed and "helpdesk" in listed and secret not in listed
    assert "revoked" in _command(stack, f"!relay key revoke {key_id}")
    assert requests.get(url, auth=(key_id, secret), timeout=10).status_code == 401
    assert "No active API key" in _command(stack, "!relay key revoke app_000000000000000000000000")


def test_webhooks_are_managed_from_chat(relay_stack):
    stack = relay_stack
    answer = _command(stack, f"!relay webhook add {stack.receiver.url}/chat message:appUser,postback")
    webhook_id = re.search(r"Webhook ([0-9a-f]{24}) added", answer).group(1)
    [hook] = stack.request("GET", "/webhooks").json()["webhooks"]
    assert hook["_id"] == webhook_id and hook["triggers"] == ["message:appUser", "postback"]
    assert webhook_id in _command(stack, "!relay webhook list")
    assert "Not added" in _command(stack, "!relay webhook add ftp://example.com/x")
    assert "removed" in _command(stack, f"!relay webhook remove {webhook_id}")
    assert stack.request("GET", "/webhooks").json()["webhooks"] == []


def test_status_and_redeliver(relay_stack):
    stack = relay_stack
    status = _command(stack, "!relay status")
    assert "connected as @relay_test_bot" in status and APP_ID in status
    assert "dead letters: 0" in status
    assert f"HTTP server: listening on 127.0.0.1:{stack.http_url.rsplit(':', 1)[1]}" in status
    assert _command(stack, "!relay redeliver") == "No dead letters."
    assert "No buy actions yet." in _command(stack, "!relay payments")


def test_admin_commands_are_not_relayed_but_admin_chat_is(relay_stack):
    stack = relay_stack
    stack.add_webhook(["message:appUser"])
    _command(stack, "!relay status")
    stack.sandbox.push_text(ADMIN_ID, "a plain message from an admin")
    event = stack.wait_event("message:appUser")
    assert event["messages"][0]["text"] == "a plain message from an admin"
    assert [e["messages"][0]["text"] for e in stack.events("message:appUser")] == ["a plain message from an admin"]
