"""Typed Telegram errors for plugins (CONTRACTS §2); no message ever contains the bot token."""

from __future__ import annotations


class TelegramError(Exception):
    """Base of every error the backend raises for a Telegram call."""

    code: str = "telegram_error"
    permanent: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BotBlockedError(TelegramError):
    """403: the user blocked the bot, is deactivated, or the bot was kicked; do not retry."""

    code = "blocked"
    permanent = True


class ChatNotFoundError(TelegramError):
    """400 chat not found: the chat id is wrong or the user never talked to the bot."""

    code = "chat_not_found"
    permanent = True


class RejectedError(TelegramError):
    """Any other 400 (bad media URL, bad markup…): Telegram's description says what to change."""

    code = "bad_request"
    permanent = True


class TelegramUnavailableError(TelegramError):
    """429, 5xx or network failure after the backend's own short retries; retry later."""

    code = "unavailable"
    permanent = False


class NotConnectedError(TelegramError):
    """No token is set or Telegram revoked it; set one with `!telegram token <token>`."""

    code = "not_connected"
    permanent = False


class InvalidTokenError(Exception):
    """set_token got a token Telegram refuses."""


class FileTooBigError(Exception):
    """The file is over the Bot API download limit (20 MB) and cannot be fetched."""


class FileGoneError(Exception):
    """Telegram no longer has the file (unknown or expired file_id)."""


class RoomsNotSupportedError(Exception):
    """The relay talks to private chats only; Telegram groups are not rooms here."""
