"""Raw Telegram update dicts → what the backend dispatches (CONTRACTS §1 extras). Pure: no I/O."""

from __future__ import annotations

import mimetypes
import time
from dataclasses import dataclass
from typing import Any

KINDS_WITH_FILE = ("photo", "animation", "sticker", "video_note", "video", "voice", "audio", "document")
IGNORED_UPDATE_KINDS = (
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "my_chat_member",
    "chat_member",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "shipping_query",
    "pre_checkout_query",
    "poll",
    "poll_answer",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "purchased_paid_media",
)


class MalformedUpdate(ValueError):
    """The update is not something Telegram would send (or not something the relay understands)."""


class IgnoredUpdate(Exception):
    """A valid update the relay deliberately does not relay (groups, channels, edits…)."""


@dataclass
class Incoming:
    """One relayable update: who sent it, the text and the CONTRACTS §1 extras."""

    user: dict
    body: str
    extras: dict
    callback_query_id: str | None = None
    callback_data: str | None = None


def _user(raw: Any) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), int):
        raise MalformedUpdate("the sender ('from') is missing or has no integer id")
    return {
        "id": raw["id"],
        "first_name": raw.get("first_name"),
        "last_name": raw.get("last_name"),
        "username": raw.get("username"),
        "language_code": raw.get("language_code"),
    }


def _mime(declared: str | None, name: str | None, fallback: str | None) -> str | None:
    if declared:
        return declared
    if name:
        guessed, _ = mimetypes.guess_type(name)
        if guessed:
            return guessed
    return fallback


def _photo_area(size: Any) -> tuple[int, int]:
    if not isinstance(size, dict):
        raise MalformedUpdate("a photo size is not an object")
    return (size.get("width") or 0) * (size.get("height") or 0), size.get("file_size") or 0


def _file(kind: str, media: Any) -> dict:
    if kind == "photo":
        if not isinstance(media, list) or not media:
            raise MalformedUpdate("photo has no sizes")
        media = max(media, key=_photo_area)
    if not isinstance(media, dict) or not isinstance(media.get("file_id"), str):
        raise MalformedUpdate(f"{kind} has no file_id")
    name = media.get("file_name")
    if kind == "photo":
        mime = "image/jpeg"
    elif kind == "sticker":
        mime = (
            "video/webm"
            if media.get("is_video")
            else ("application/x-tgsticker" if media.get("is_animated") else "image/webp")
        )
    elif kind == "voice":
        mime = media.get("mime_type") or "audio/ogg"
    elif kind == "video_note":
        mime = "video/mp4"
    else:
        mime = _mime(media.get("mime_type"), name, "application/octet-stream")
    width, height = media.get("width"), media.get("height")
    if kind == "video_note" and media.get("length") is not None:
        width = height = media.get("length")
    size = media.get("file_size")
    return {
        "file_id": media["file_id"],
        "file_unique_id": media.get("file_unique_id"),
        "mime_type": mime,
        "size": size if isinstance(size, int) else None,
        "name": name,
        "width": width,
        "height": height,
        "duration": media.get("duration"),
        "emoji": media.get("emoji"),
    }


def _message_content(message: dict) -> tuple[str, dict]:
    """The kind of a private message and the extras that depend on it."""
    text = message.get("text")
    caption = message.get("caption")
    content: dict[str, Any] = {
        "text": text if text is not None else caption,
        "file": None,
        "location": None,
        "contact": None,
        "start_payload": None,
    }
    if isinstance(text, str):
        command, _, rest = text.partition(" ")
        if command == "/start" or command.startswith("/start@"):
            content["start_payload"] = rest.strip()
            return "start", content
        return "text", content
    for kind in KINDS_WITH_FILE:
        if kind in message:
            content["file"] = _file(kind, message[kind])
            return kind, content
    if isinstance(message.get("venue"), dict):
        venue = message["venue"]
        location = venue.get("location") or message.get("location") or {}
        content["location"] = {
            "latitude": location.get("latitude"),
            "longitude": location.get("longitude"),
            "title": venue.get("title"),
            "address": venue.get("address"),
        }
        return "venue", content
    if isinstance(message.get("location"), dict):
        location = message["location"]
        if not isinstance(location.get("latitude"), (int, float)):
            raise MalformedUpdate("location has no latitude")
        content["location"] = {"latitude": location["latitude"], "longitude": location.get("longitude")}
        return "location", content
    if isinstance(message.get("contact"), dict):
        contact = message["contact"]
        content["contact"] = {
            "phone_number": contact.get("phone_number"),
            "first_name": contact.get("first_name"),
            "last_name": contact.get("last_name"),
            "user_id": contact.get("user_id"),
        }
        return "contact", content
    raise MalformedUpdate(f"unsupported message content: {sorted(k for k in message if k not in _ENVELOPE)}")


_ENVELOPE = frozenset(("message_id", "from", "chat", "date", "caption", "caption_entities", "entities"))


def _private_chat_id(message: dict) -> int:
    chat = message.get("chat")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        raise MalformedUpdate("the message has no chat id")
    if chat.get("type", "private") != "private":
        raise IgnoredUpdate(f"{chat.get('type')} chat {chat['id']}")
    return chat["id"]


def parse_update(update: Any) -> Incoming:
    """Turn one raw update dict into an Incoming; raise IgnoredUpdate or MalformedUpdate otherwise."""
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        raise MalformedUpdate("not an object with an integer update_id")
    update_id = update["update_id"]
    if isinstance(update.get("message"), dict):
        message = update["message"]
        chat_id = _private_chat_id(message)
        user = _user(message.get("from"))
        kind, content = _message_content(message)
        date = message.get("date")
        extras = {
            "update_id": update_id,
            "kind": kind,
            "chat_id": chat_id,
            "message_id": message.get("message_id"),
            "date": date if isinstance(date, int) else int(time.time()),
            "user": user,
            **content,
            "callback_payload": None,
        }
        return Incoming(user=user, body=content["text"] or "", extras=extras)
    if isinstance(update.get("callback_query"), dict):
        query = update["callback_query"]
        user = _user(query.get("from"))
        message = query.get("message")
        chat_id = user["id"]
        message_id = None
        if isinstance(message, dict):
            chat_id = _private_chat_id(message)
            message_id = message.get("message_id")
        elif query.get("inline_message_id"):
            raise IgnoredUpdate("callback from an inline message")
        data = query.get("data")
        extras = {
            "update_id": update_id,
            "kind": "callback",
            "chat_id": chat_id,
            "message_id": message_id,
            "date": int(time.time()),
            "user": user,
            "text": None,
            "file": None,
            "location": None,
            "contact": None,
            "start_payload": None,
            "callback_payload": None,
        }
        query_id = query.get("id")
        return Incoming(
            user=user,
            body="",
            extras=extras,
            callback_query_id=str(query_id) if query_id is not None else None,
            callback_data=data if isinstance(data, str) else None,
        )
    for kind in IGNORED_UPDATE_KINDS:
        if kind in update:
            raise IgnoredUpdate(kind)
    raise MalformedUpdate(f"unknown update with keys {sorted(update)}")
