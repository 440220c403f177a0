"""Builders of Bot API objects (User, Chat, media, entities) in the exact shapes Telegram sends."""

from __future__ import annotations

from sandbox.entities import utf16_len
from sandbox.files import StoredFile

USER_FIELDS = ("first_name", "last_name", "username", "language_code", "is_premium")


def user_object(user_id: int, fields: dict) -> dict:
    """A Telegram User for a person (is_bot false); absent optional fields are left out, as Telegram does."""
    user: dict = {"id": user_id, "is_bot": False, "first_name": fields.get("first_name") or f"User{user_id}"}
    for key in ("last_name", "username", "language_code", "is_premium"):
        if fields.get(key) is not None:
            user[key] = fields[key]
    return user


def private_chat(user: dict) -> dict:
    """The private Chat with a user."""
    chat = {"id": user["id"], "first_name": user["first_name"]}
    for key in ("last_name", "username"):
        if key in user:
            chat[key] = user[key]
    chat["type"] = "private"
    return chat


def command_entities(text: str) -> list[dict]:
    """A bot_command entity for text that starts with "/command" (as clients mark it)."""
    if not text.startswith("/") or len(text) < 2:
        return []
    command = text.split(None, 1)[0]
    if not all(ch.isalnum() or ch in "_@" for ch in command[1:]):
        return []
    return [{"offset": 0, "length": utf16_len(command), "type": "bot_command"}]


def file_fields(stored: StoredFile) -> dict:
    """file_id, file_unique_id and file_size of a stored file."""
    return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": stored.size}


def photo_size(stored: StoredFile, width: int, height: int) -> dict:
    """One PhotoSize."""
    return {**file_fields(stored), "width": width, "height": height}


def document(stored: StoredFile) -> dict:
    """A Document object."""
    out: dict = {}
    if stored.file_name:
        out["file_name"] = stored.file_name
    if stored.mime_type:
        out["mime_type"] = stored.mime_type
    return {**out, **file_fields(stored)}


def audio(stored: StoredFile, duration: int, performer: str | None, title: str | None) -> dict:
    """An Audio object."""
    out: dict = {"duration": duration}
    if performer:
        out["performer"] = performer
    if title:
        out["title"] = title
    return {**out, **document(stored)}


def voice(stored: StoredFile, duration: int) -> dict:
    """A Voice object."""
    return {"duration": duration, "mime_type": stored.mime_type or "audio/ogg", **file_fields(stored)}


def video(stored: StoredFile, width: int, height: int, duration: int) -> dict:
    """A Video (or Animation) object."""
    return {"duration": duration, "width": width, "height": height, **document(stored)}


def video_note(stored: StoredFile, length: int, duration: int) -> dict:
    """A VideoNote object."""
    return {"duration": duration, "length": length, **file_fields(stored)}


def sticker(stored: StoredFile, emoji: str, is_animated: bool, is_video: bool, set_name: str | None) -> dict:
    """A Sticker object (regular type, 512x512)."""
    out: dict = {"width": 512, "height": 512, "emoji": emoji}
    if set_name:
        out["set_name"] = set_name
    return {**out, "is_animated": is_animated, "is_video": is_video, "type": "regular", **file_fields(stored)}
