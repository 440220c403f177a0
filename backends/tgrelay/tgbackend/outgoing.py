"""What plugins hand to send_outgoing (CONTRACTS §2): plain dataclasses, no Telegram objects."""

from __future__ import annotations

from dataclasses import dataclass

TEXT_FORMATS = ("markdown", "html", "plain")
MEDIA_KINDS = ("photo", "document", "audio", "video")


@dataclass
class InlineButton:
    """An inline button: exactly one of url / callback_payload (any length, stored server-side)."""

    text: str
    url: str | None = None
    callback_payload: str | None = None


@dataclass
class ReplyButton:
    """A reply-keyboard button (a quick reply), optionally asking for the user's location."""

    text: str
    request_location: bool = False


@dataclass
class OutgoingMessage:
    """One logical message; the backend may send it as several Telegram messages."""

    text: str | None = None
    text_format: str = "markdown"
    media_kind: str | None = None
    media_url: str | None = None
    media_bytes: bytes | None = None
    filename: str | None = None
    location: tuple[float, float] | None = None
    inline_keyboard: list[list[InlineButton]] | None = None
    reply_keyboard: list[list[ReplyButton]] | None = None
    remove_reply_keyboard: bool = False
    disable_notification: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the field when the message cannot be sent as given."""
        if self.text_format not in TEXT_FORMATS:
            raise ValueError(f"text_format must be one of {TEXT_FORMATS}, not {self.text_format!r}")
        if self.media_kind is not None:
            if self.media_kind not in MEDIA_KINDS:
                raise ValueError(f"media_kind must be one of {MEDIA_KINDS}, not {self.media_kind!r}")
            if (self.media_url is None) == (self.media_bytes is None):
                raise ValueError("a media message needs exactly one of media_url or media_bytes")
        if self.media_kind is None and self.location is None and not self.text:
            raise ValueError("nothing to send: give text, media_kind or location")
        if self.inline_keyboard and self.reply_keyboard:
            raise ValueError("Telegram allows one keyboard per message: inline_keyboard or reply_keyboard")
        for row in self.inline_keyboard or ():
            for button in row:
                if (button.url is None) == (button.callback_payload is None):
                    raise ValueError(
                        f"inline button {button.text!r} needs exactly one of url or callback_payload"
                    )
