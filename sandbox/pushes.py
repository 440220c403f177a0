"""Simulated user activity: push_* build realistic Updates (messages, media, callbacks) and queue them."""

from __future__ import annotations

import os
from collections.abc import Iterable

from sandbox import shapes
from sandbox.files import FileStore
from sandbox.markup import inline_buttons, reply_buttons
from sandbox.updatequeue import UpdateQueue
from sandbox.world import World


def sample_bytes(kind: str, size: int = 2048) -> bytes:
    """Plausible bytes for a media kind when a test does not care about content."""
    magic = {"photo": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "sticker": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
             "voice": b"OggS\x00\x02", "audio": b"ID3\x04\x00"}.get(kind, b"\x00\x00\x00\x18ftypmp42")
    return magic + os.urandom(size)


class PushMixin:
    """The push_* half of Sandbox; relies on _world, _queue and _files set by Sandbox.__init__."""

    _world: World
    _queue: UpdateQueue
    _files: FileStore

    def _push_message(self, user_id: int, content: dict, user: dict) -> dict:
        with self._world.lock:
            message = self._world.user_message(user_id, content, user)
            return self._queue.push(lambda uid: {"update_id": uid, "message": message})

    @staticmethod
    def _caption(content: dict, caption: str | None) -> dict:
        if caption is not None:
            content["caption"] = caption
        return content

    def push_text(self, user_id: int, text: str, **user: object) -> dict:
        """A text message; "/command args" gets a bot_command entity like a real client sends."""
        content: dict = {"text": text}
        entities = shapes.command_entities(text)
        if entities:
            content["entities"] = entities
        return self._push_message(user_id, content, user)

    def push_many(self, items: Iterable[tuple[int, str]]) -> list[dict]:
        """Many text messages [(user_id, text)] under one lock with one wake-up (benchmark fast path)."""
        def maker(user_id: int, text: str):
            content: dict = {"text": text}
            entities = shapes.command_entities(text)
            if entities:
                content["entities"] = entities
            message = self._world.user_message(user_id, content, {})
            return lambda uid: {"update_id": uid, "message": message}
        with self._world.lock:
            return self._queue.push_many([maker(user_id, text) for user_id, text in items])

    def push_photo(self, user_id: int, data: bytes | None = None, caption: str | None = None, *,
                   width: int = 1280, height: int = 960, **user: object) -> dict:
        """A photo: three PhotoSize entries, largest last, each downloadable."""
        data = sample_bytes("photo") if data is None else data
        sizes = []
        for side, share in ((90, 16), (320, 4), (max(width, height), 1)):
            scale = min(1.0, side / max(width, height))
            part = data if share == 1 else data[: max(1, len(data) // share)]
            stored = self._files.add("photo", part, mime_type="image/jpeg")
            sizes.append(shapes.photo_size(stored, max(1, round(width * scale)), max(1, round(height * scale))))
        return self._push_message(user_id, self._caption({"photo": sizes}, caption), user)

    def push_document(self, user_id: int, data: bytes | None = None, file_name: str = "file.pdf",
                      mime_type: str = "application/pdf", caption: str | None = None, **user: object) -> dict:
        """A document (any file sent "as file")."""
        data = sample_bytes("document") if data is None else data
        stored = self._files.add("document", data, mime_type=mime_type, file_name=file_name)
        return self._push_message(user_id, self._caption({"document": shapes.document(stored)}, caption), user)

    def push_big_document(self, user_id: int, size: int = 25 * 2**20, file_name: str = "big.zip",
                          mime_type: str = "application/zip", caption: str | None = None, **user: object) -> dict:
        """A document over the 20 MB download limit; only its size is kept (no bytes allocated)."""
        stored = self._files.add("document", None, size=size, mime_type=mime_type, file_name=file_name)
        return self._push_message(user_id, self._caption({"document": shapes.document(stored)}, caption), user)

    def push_audio(self, user_id: int, data: bytes | None = None, *, duration: int = 30,
                   performer: str | None = None, title: str | None = None, file_name: str = "audio.mp3",
                   mime_type: str = "audio/mpeg", caption: str | None = None, **user: object) -> dict:
        """An audio file (music)."""
        data = sample_bytes("audio") if data is None else data
        stored = self._files.add("audio", data, mime_type=mime_type, file_name=file_name)
        content = {"audio": shapes.audio(stored, duration, performer, title)}
        return self._push_message(user_id, self._caption(content, caption), user)

    def push_voice(self, user_id: int, data: bytes | None = None, *, duration: int = 3,
                   mime_type: str = "audio/ogg", caption: str | None = None, **user: object) -> dict:
        """A voice note (OGG/Opus)."""
        data = sample_bytes("voice") if data is None else data
        stored = self._files.add("voice", data, mime_type=mime_type)
        return self._push_message(user_id, self._caption({"voice": shapes.voice(stored, duration)}, caption), user)

    def push_video(self, user_id: int, data: bytes | None = None, *, width: int = 640, height: int = 360,
                   duration: int = 5, file_name: str = "video.mp4", mime_type: str = "video/mp4",
                   caption: str | None = None, **user: object) -> dict:
        """A video."""
        data = sample_bytes("video") if data is None else data
        stored = self._files.add("video", data, mime_type=mime_type, file_name=file_name)
        content = {"video": shapes.video(stored, width, height, duration)}
        return self._push_message(user_id, self._caption(content, caption), user)

    def push_video_note(self, user_id: int, data: bytes | None = None, *, length: int = 240, duration: int = 5,
                        **user: object) -> dict:
        """A round video note (no caption, no mime type, as Telegram sends it)."""
        data = sample_bytes("video_note") if data is None else data
        stored = self._files.add("video_note", data)
        return self._push_message(user_id, {"video_note": shapes.video_note(stored, length, duration)}, user)

    def push_animation(self, user_id: int, data: bytes | None = None, *, width: int = 320, height: int = 240,
                       duration: int = 3, file_name: str = "animation.mp4", mime_type: str = "video/mp4",
                       caption: str | None = None, **user: object) -> dict:
        """A GIF animation; like Telegram, the message carries both `animation` and `document`."""
        data = sample_bytes("animation") if data is None else data
        stored = self._files.add("animation", data, mime_type=mime_type, file_name=file_name)
        content = {"animation": shapes.video(stored, width, height, duration), "document": shapes.document(stored)}
        return self._push_message(user_id, self._caption(content, caption), user)

    def push_sticker(self, user_id: int, data: bytes | None = None, *, emoji: str = "👍", is_animated: bool = False,
                     is_video: bool = False, set_name: str | None = None, **user: object) -> dict:
        """A sticker (static WebP by default; is_animated → TGS, is_video → WebM)."""
        data = sample_bytes("sticker") if data is None else data
        mime = "video/webm" if is_video else "application/x-tgsticker" if is_animated else "image/webp"
        stored = self._files.add("sticker", data, mime_type=mime,
                                 file_name="sticker.webm" if is_video else "sticker.tgs" if is_animated else None)
        content = {"sticker": shapes.sticker(stored, emoji, is_animated, is_video, set_name)}
        return self._push_message(user_id, content, user)

    def push_location(self, user_id: int, lat: float, long: float, **user: object) -> dict:
        """A shared location."""
        return self._push_message(user_id, {"location": {"latitude": lat, "longitude": long}}, user)

    def push_venue(self, user_id: int, lat: float, long: float, title: str, address: str, **user: object) -> dict:
        """A venue; like Telegram, the message also carries its `location`."""
        location = {"latitude": lat, "longitude": long}
        venue = {"location": location, "title": title, "address": address}
        return self._push_message(user_id, {"venue": venue, "location": location}, user)

    def push_contact(self, user_id: int, phone_number: str, first_name: str, last_name: str | None = None, *,
                     contact_user_id: int | None = None, sender: dict | None = None) -> dict:
        """A shared contact; `sender` holds the sending user's own fields (first_name etc.)."""
        contact: dict = {"phone_number": phone_number, "first_name": first_name}
        if last_name is not None:
            contact["last_name"] = last_name
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self._push_message(user_id, {"contact": contact}, sender or {})

    def push_callback(self, user_id: int, message_id: int, data: str, *, forged: bool = False,
                      **user: object) -> dict:
        """A callback_query for a button on the bot's message; ValueError unless such a button exists (or forged)."""
        message = self._world.bot_message(user_id, message_id)
        if not forged:
            if message is None:
                raise ValueError(f"the bot has no message {message_id} in chat {user_id}")
            if not any(b.get("callback_data") == data for b in inline_buttons(message.get("reply_markup"))):
                raise ValueError(f"message {message_id} has no inline button with callback_data {data!r}")
        sender = self._world.user(user_id, user)
        if message is None:
            chat = self._world.chat(user_id)
            message = {"message_id": message_id, "chat": chat, "date": 0}
        query_id, instance = self._world.new_callback_query(user_id)
        query = {"id": query_id, "from": sender, "message": message, "chat_instance": instance, "data": data}
        return self._queue.push(lambda uid: {"update_id": uid, "callback_query": query})

    def press_button(self, user_id: int, message_id: int, text: str, **user: object) -> dict:
        """Press the inline callback button labelled `text` on the bot's message."""
        message = self._world.bot_message(user_id, message_id)
        buttons = inline_buttons(message.get("reply_markup")) if message else []
        for button in buttons:
            if button["text"] == text and "callback_data" in button:
                return self.push_callback(user_id, message_id, button["callback_data"], **user)
        raise ValueError(f"no inline callback button {text!r} on message {message_id} in chat {user_id}")

    def tap_reply(self, user_id: int, text: str, *, lat: float = 52.52, long: float = 13.405,
                  **user: object) -> dict:
        """Tap a button of the chat's current reply keyboard: its text, or a location for request_location."""
        with self._world.lock:
            keyboard = self._world.reply_keyboards.get(user_id)
        for button in reply_buttons(keyboard) if keyboard else []:
            if button["text"] == text:
                if button.get("request_location"):
                    return self.push_location(user_id, lat, long, **user)
                return self.push_text(user_id, text, **user)
        raise ValueError(f"chat {user_id} has no reply keyboard button {text!r}")

    def push_raw(self, update: dict | str) -> dict | str:
        """Queue anything (a dict as given, or raw possibly-invalid JSON text) in the next position."""
        return self._queue.push(lambda uid: update)
