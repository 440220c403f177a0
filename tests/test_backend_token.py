"""The token: set from chat (good, bad, rotation without restart), missing or revoked, never in a log line."""

from __future__ import annotations

import logging
import pathlib

import pytest

from tests.helpers.backend_bot import ADMIN_ID, ROOT, TOKEN, wait_until
from tgbackend.errors import InvalidTokenError, NotConnectedError
from tgbackend.outgoing import OutgoingMessage

pytest_plugins = ["tests.helpers.backend_fixtures"]
PLUGINS = [ROOT / "tests" / "plugins" / "probe", ROOT / "plugins" / "telegram_admin"]
ROTATED = "424242:AARotatedSecretForTheSameBot-0987654321"
SECRETS = (TOKEN, ROTATED, "424242:AAForgedButWellFormed-secret-value")


def assert_no_token_anywhere(caplog: pytest.LogCaptureFixture, running) -> None:
    text = caplog.text + pathlib.Path(running.log_file).read_text(encoding="utf-8")
    for record in caplog.records:
        text += record.getMessage() + (record.exc_text or "")
    assert text, "nothing was logged: the scan would prove nothing"
    for secret in SECRETS:
        assert secret not in text
        assert secret.split(":", 1)[1] not in text


def admin_reply(sb, contains: str) -> str:
    request = sb.wait_for(lambda r: r["method"] == "sendMessage" and r["params"].get("chat_id") == ADMIN_ID
                          and contains in r["params"].get("text", ""), timeout=15)
    return request["params"]["text"]


def test_token_rotation_from_chat_without_restart(sandbox, bot_factory, caplog):
    caplog.set_level(logging.DEBUG)
    running = bot_factory(plugin_dirs=PLUGINS, required_plugins=["Probe", "TelegramAdmin"])
    sandbox.add_bot(ROTATED, username="relay_test_bot")
    command = sandbox.push_text(ADMIN_ID, f"!telegram token {ROTATED}")
    reply = admin_reply(sandbox, "Connected as")
    assert "@relay_test_bot" in reply and "https://t.me/relay_test_bot" in reply
    deleted = sandbox.requests("deleteMessage", chat_id=ADMIN_ID)
    assert deleted and deleted[-1]["params"]["message_id"] == command["message"]["message_id"]
    sandbox.revoke(TOKEN)
    sandbox.push_text(5001, "after rotation")
    probe = running.plugin("Probe")
    wait_until(lambda: any(c["body"] == "after rotation" for c in probe.calls), 15, "polling did not resume")
    running.backend.send_outgoing(5001, OutgoingMessage(text="sent with the new token"))
    assert sandbox.requests("sendMessage", chat_id=5001)[-1]["token"] == ROTATED
    assert running.backend[("token")] == ROTATED
    assert running.backend.telegram_status()["connected"] is True
    assert_no_token_anywhere(caplog, running)


def test_bad_token_is_refused_and_old_connection_stays(sandbox, bot_factory, caplog):
    caplog.set_level(logging.DEBUG)
    running = bot_factory(plugin_dirs=PLUGINS, required_plugins=["TelegramAdmin"])
    sandbox.push_text(ADMIN_ID, f"!telegram token {SECRETS[2]}")
    reply = admin_reply(sandbox, "refused")
    assert "keeps its current connection" in reply and SECRETS[2] not in reply
    assert sandbox.requests("deleteMessage", chat_id=ADMIN_ID)
    status = running.backend.telegram_status()
    assert status["connected"] is True and status["username"] == "relay_test_bot"
    assert sandbox.requests("sendMessage", chat_id=ADMIN_ID)[-1]["token"] == TOKEN
    assert_no_token_anywhere(caplog, running)


def test_missing_token_activates_plugins_and_set_token_starts_polling(sandbox, bot_factory, caplog):
    caplog.set_level(logging.DEBUG)
    running = bot_factory(plugin_dirs=PLUGINS, token=None, required_plugins=["Probe", "TelegramAdmin"])
    backend = running.backend
    status = backend.telegram_status()
    assert status["connected"] is False and status["username"] is None
    assert any("No Telegram token" in r.getMessage() and "!telegram token" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(NotConnectedError):
        backend.send_outgoing(5101, OutgoingMessage(text="nobody to send with"))
    with pytest.raises(InvalidTokenError):
        backend.set_token(SECRETS[2])
    info = backend.set_token(TOKEN)
    assert info.username == "relay_test_bot" and info.link == "https://t.me/relay_test_bot"
    sandbox.push_text(5101, "first message")
    probe = running.plugin("Probe")
    wait_until(lambda: any(c["body"] == "first message" for c in probe.calls), 15, "polling did not start")
    assert_no_token_anywhere(caplog, running)


def test_revoked_token_is_reported_and_a_new_one_recovers(sandbox, bot_factory, caplog):
    caplog.set_level(logging.DEBUG)
    running = bot_factory(plugin_dirs=PLUGINS, required_plugins=["Probe"])
    sandbox.revoke(TOKEN)
    wait_until(lambda: not running.backend.telegram_status()["connected"], 15, "revocation not noticed")
    assert "rejected" in running.backend.telegram_status()["last_error"]
    assert any("revoked" in r.getMessage() and "!telegram token" in r.getMessage() for r in caplog.records)
    assert "Probe" in running.backend.plugin_manager.get_all_active_plugin_names()
    sandbox.add_bot(ROTATED)
    running.backend.set_token(ROTATED)
    sandbox.push_text(5201, "back")
    probe = running.plugin("Probe")
    wait_until(lambda: any(c["body"] == "back" for c in probe.calls), 15, "polling did not resume")
    assert_no_token_anywhere(caplog, running)


def test_exceptions_with_the_token_are_scrubbed_in_logs(sandbox, bot_factory, caplog):
    caplog.set_level(logging.DEBUG)
    running = bot_factory(plugin_dirs=PLUGINS)
    try:
        raise RuntimeError(f"boom https://api.telegram.org/file/bot{TOKEN}/photos/1.jpg")
    except RuntimeError:
        logging.getLogger("some.library").exception("download failed for %s", f"bot{TOKEN}")
    assert "<redacted-token>" in caplog.text
    assert_no_token_anywhere(caplog, running)
