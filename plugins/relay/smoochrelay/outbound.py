"""Business → Telegram: an accepted appMaker message becomes one or more OutgoingMessages for the backend.

Text keeps Smooch's markup (rendered to Telegram HTML); link, webview and buy actions become URL buttons,
postbacks become callback buttons, reply and locationRequest become a one-time reply keyboard; carousels and
lists become one message per item.
"""

from __future__ import annotations

from typing import Any

from smoochrelay import smooch
from smoochrelay.inbound import callback_payload
from tgbackend.outgoing import InlineButton, OutgoingMessage, ReplyButton

CAPTION_LIMIT = 1024
KEYBOARD_PROMPT = "Please choose:"
URL_ACTIONS = frozenset({"link", "webview", "buy"})
REPLY_ACTIONS = frozenset({"reply", "locationRequest"})


def render(message: dict[str, Any]) -> list[OutgoingMessage]:
    """The Telegram messages that carry one Smooch appMaker message, in sending order."""
    kind = message.get("type")
    if kind in ("carousel", "list"):
        return _render_items(message)
    text = smooch.telegram_html(message["text"]) if message.get("text") else None
    inline, reply = _keyboards(message["_id"], message.get("actions") or [])
    if kind == "image":
        return [OutgoingMessage(text=text, text_format="html", media_kind="photo", media_url=message["mediaUrl"],
                                inline_keyboard=inline, reply_keyboard=reply)]
    if kind == "file":
        return [OutgoingMessage(text=text, text_format="html", media_kind="document",
                                media_url=message["mediaUrl"], inline_keyboard=inline, reply_keyboard=reply)]
    if kind == "location":
        coordinates = message["coordinates"]
        parts = [OutgoingMessage(location=(float(coordinates["lat"]), float(coordinates["long"])),
                                 inline_keyboard=inline, reply_keyboard=reply)]
        if text:
            parts.insert(0, OutgoingMessage(text=text, text_format="html"))
        return parts
    if text is None:
        text = KEYBOARD_PROMPT
    return [OutgoingMessage(text=text, text_format="html", inline_keyboard=inline, reply_keyboard=reply)]


def _render_items(message: dict[str, Any]) -> list[OutgoingMessage]:
    """Carousel and list: an optional lead text, then each item as photo or text with its buttons."""
    parts: list[OutgoingMessage] = []
    if message.get("text"):
        parts.append(OutgoingMessage(text=smooch.telegram_html(message["text"]), text_format="html"))
    for item in message["items"]:
        caption = f"<b>{smooch.telegram_html(item['title'])}</b>"
        if item.get("description"):
            caption += "\n" + smooch.telegram_html(item["description"])
        inline, _ = _keyboards(message["_id"], item.get("actions") or [])
        if item.get("mediaUrl"):
            parts.append(OutgoingMessage(text=caption, text_format="html", media_kind="photo",
                                         media_url=item["mediaUrl"], inline_keyboard=inline))
        else:
            parts.append(OutgoingMessage(text=caption, text_format="html", inline_keyboard=inline))
    inline, reply = _keyboards(message["_id"], message.get("actions") or [])
    if inline or reply:
        parts.append(OutgoingMessage(text=KEYBOARD_PROMPT, inline_keyboard=inline, reply_keyboard=reply,
                                     text_format="plain"))
    return parts


def _keyboards(message_id: str, actions: list[dict[str, Any]]
               ) -> tuple[list[list[InlineButton]] | None, list[list[ReplyButton]] | None]:
    """Inline buttons (one per row, as Telegram clients show them best) and the reply keyboard."""
    inline: list[list[InlineButton]] = []
    reply: list[list[ReplyButton]] = []
    for action in actions:
        kind = action["type"]
        if kind in URL_ACTIONS:
            inline.append([InlineButton(text=action["text"], url=action["uri"])])
        elif kind == "postback":
            inline.append([InlineButton(text=action["text"],
                                        callback_payload=callback_payload(message_id, action["_id"]))])
        elif kind == "reply":
            reply.append([ReplyButton(text=action["text"])])
        elif kind == "locationRequest":
            reply.append([ReplyButton(text=action["text"], request_location=True)])
    return inline or None, reply or None


def reply_actions(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The quick replies a message offers (their taps come back as plain text), or None."""
    actions = [a for a in message.get("actions") or [] if a.get("type") in REPLY_ACTIONS]
    return actions or None
