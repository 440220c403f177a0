"""Admin commands for the TGRelay backend: `!telegram token <token>` and `!telegram status`."""

from __future__ import annotations

import logging
from typing import Any

from errbot import BotPlugin, botcmd

log = logging.getLogger("errbot.plugins.TelegramAdmin")

DIRECT_ONLY = "Send this command to the bot in a private chat."


class TelegramAdmin(BotPlugin):
    """Lets a bot admin connect the relay to Telegram and check the connection, without a restart."""

    def _allowed(self, msg: Any) -> bool:
        is_admin = getattr(self._bot, "is_admin", None)
        return bool(msg.is_direct and (is_admin is None or is_admin(msg.frm)))

    @botcmd(admin_only=True)
    def telegram_token(self, msg: Any, args: str) -> str | None:
        """Connect to Telegram with a new bot token from @BotFather: !telegram token 123456:ABC…"""
        if not self._allowed(msg):
            return None
        self._delete_command_message(msg)
        token = args.strip()
        if not token:
            return "Usage: `!telegram token <token>` with the token @BotFather gave you."
        from tgbackend.errors import InvalidTokenError, TelegramError

        try:
            info = self._bot.set_token(token)
        except InvalidTokenError as exc:
            return f"Token refused: {exc}. The bot keeps its current connection."
        except TelegramError as exc:
            return f"Could not check the token with Telegram ({exc}). Nothing changed; try again shortly."
        return f"Connected as @{info.username}: {info.link}"

    @botcmd(admin_only=True)
    def telegram_status(self, msg: Any, args: str) -> str | None:
        """Show whether the bot is connected to Telegram, as whom, and the last error."""
        if not self._allowed(msg):
            return None
        status = self._bot.telegram_status()
        if status["connected"]:
            who = f"Connected as @{status['username']} ({status['link']})"
        else:
            who = "Not connected: set a token with `!telegram token <token>`"
        return (
            f"{who}\n"
            f"API: {status['api_url']}\n"
            f"Updates received: {status['updates_received']}\n"
            f"Last error: {status['last_error'] or 'none'}"
        )

    def _delete_command_message(self, msg: Any) -> None:
        """Remove the admin's message that holds the token from the chat history."""
        message_id = msg.extras.get("message_id")
        chat_id = msg.extras.get("chat_id")
        if message_id is None or chat_id is None:
            return
        from tgbackend.errors import TelegramError

        try:
            self._bot.delete_message(chat_id, message_id)
        except TelegramError as exc:
            log.warning("Could not delete the message holding the token (%s); delete it by hand", exc)
