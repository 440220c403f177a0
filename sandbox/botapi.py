"""The Bot API methods: strict parameter checks as Telegram does, then effects on the sandbox's world."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox import media, shapes
from sandbox.apierror import ApiError, bad_request, blocked, chat_not_found, method_not_found
from sandbox.entities import format_text
from sandbox.faults import RateLimiter
from sandbox.files import DOWNLOAD_LIMIT, FileStore
from sandbox.markup import validate_reply_markup
from sandbox.params import Upload, get_bool, get_float, get_int, get_json, get_str
from sandbox.updatequeue import UpdateQueue
from sandbox.world import World

MAX_TEXT = 4096
MAX_CAPTION = 1024
CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
                "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"}
MEDIA_METHODS = {"sendPhoto": "photo", "sendDocument": "document", "sendAudio": "audio", "sendVoice": "voice",
                 "sendVideo": "video", "sendAnimation": "animation", "sendVideoNote": "video_note",
                 "sendSticker": "sticker"}
SEND_METHODS = {"sendMessage", "sendLocation", "sendVenue", "sendContact", *MEDIA_METHODS}
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


@dataclass
class RawUpdates:
    """getUpdates' answer: pre-serialised update JSON, spliced into the response as is."""

    update_ids: list[int]
    chunks: list[bytes]


@dataclass
class Bot:
    """A bot the sandbox knows, with its own webhook and command settings."""

    token: str
    user: dict
    webhook: dict
    commands: dict


class BotApi:
    """Dispatches method calls; methods are case-insensitive like Telegram's."""

    def __init__(self, world: World, queue: UpdateQueue, files: FileStore, limiter: RateLimiter,
                 enforce_limits: Callable[[], bool]) -> None:
        self._world = world
        self._queue = queue
        self._files = files
        self._limiter = limiter
        self._enforce_limits = enforce_limits
        self._lock = threading.Lock()
        self._methods: dict[str, tuple[str, Callable[[Bot, dict, dict[str, Upload]], object]]] = {}
        for name in ("getMe", "logOut", "close", "deleteWebhook", "setWebhook", "getWebhookInfo", "getUpdates",
                     "sendMessage", "sendLocation", "sendVenue", "sendContact", "sendChatAction",
                     "answerCallbackQuery", "editMessageText", "editMessageReplyMarkup", "deleteMessage",
                     "getFile", "setMyCommands", "getMyCommands", "deleteMyCommands", "getChat"):
            self._methods[name.lower()] = (name, getattr(self, "_" + name))
        for name, kind in MEDIA_METHODS.items():
            self._methods[name.lower()] = (name, self._media_sender(kind))

    def canonical(self, method: str) -> str | None:
        """The method's canonical camelCase name, or None if the Bot API has no such method."""
        entry = self._methods.get(method.lower())
        return entry[0] if entry else None

    def call(self, bot: Bot, method: str, params: dict, uploads: dict[str, Upload]) -> object:
        """Run a method; returns its result or raises ApiError."""
        entry = self._methods.get(method.lower())
        if entry is None:
            raise method_not_found()
        return entry[1](bot, params, uploads)

    # --- helpers -------------------------------------------------------------------------------------

    def _chat(self, params: dict, *, sending: bool) -> dict:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        chat = self._world.chat(chat_id) if isinstance(chat_id, int) and not isinstance(chat_id, bool) else None
        if chat is None:
            raise chat_not_found()
        if sending:
            with self._world.lock:
                is_blocked = chat["id"] in self._world.blocked
            if is_blocked:
                raise blocked()
        return chat

    def _pace(self, chat: dict) -> None:
        if self._enforce_limits():
            self._limiter.check(chat["id"])

    @staticmethod
    def _markup(params: dict) -> dict | None:
        markup = get_json(params, "reply_markup")
        return None if markup is None else validate_reply_markup(markup)

    def _send(self, bot: Bot, chat: dict, content: dict, markup: dict | None, params: dict) -> dict:
        sender = {k: bot.user[k] for k in ("id", "is_bot", "first_name", "username")}
        message: dict = {"message_id": self._world.next_message_id(chat["id"], from_user=False),
                         "from": sender, "chat": chat, "date": int(time.time()), **content}
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        if get_bool(params, "has_protected_content") or get_bool(params, "protect_content"):
            message["has_protected_content"] = True
        self._world.store_bot_message(message, markup)
        return message

    @staticmethod
    def _caption(params: dict) -> dict:
        caption = get_str(params, "caption")
        if caption is None:
            return {}
        text, entities = format_text(caption, get_str(params, "parse_mode"))
        if len(text) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        out: dict = {}
        if text:
            out["caption"] = text
        if entities:
            out["caption_entities"] = entities
        return out

    # --- bot and updates -----------------------------------------------------------------------------

    def _getMe(self, bot: Bot, params: dict, uploads: dict) -> dict:
        return bot.user

    def _logOut(self, bot: Bot, params: dict, uploads: dict) -> bool:
        return True

    def _close(self, bot: Bot, params: dict, uploads: dict) -> bool:
        return True

    def _getChat(self, bot: Bot, params: dict, uploads: dict) -> dict:
        return {**self._chat(params, sending=False), "accent_color_id": 0, "max_reaction_count": 11}

    def _setWebhook(self, bot: Bot, params: dict, uploads: dict) -> bool:
        url = get_str(params, "url") or ""
        if url and not url.lower().startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        with self._lock:
            bot.webhook = {"url": url, "max_connections": get_int(params, "max_connections", 40) or 40}
            if params.get("allowed_updates") is not None:
                bot.webhook["allowed_updates"] = get_json(params, "allowed_updates")
        if get_bool(params, "drop_pending_updates"):
            self._queue.drop_pending()
        return True

    def _deleteWebhook(self, bot: Bot, params: dict, uploads: dict) -> bool:
        with self._lock:
            bot.webhook = {"url": ""}
        if get_bool(params, "drop_pending_updates"):
            self._queue.drop_pending()
        return True

    def _getWebhookInfo(self, bot: Bot, params: dict, uploads: dict) -> dict:
        with self._lock:
            info = dict(bot.webhook)
        info.setdefault("url", "")
        info["has_custom_certificate"] = False
        info["pending_update_count"] = self._queue.pending()
        return info

    def _getUpdates(self, bot: Bot, params: dict, uploads: dict) -> RawUpdates:
        with self._lock:
            webhook_set = bool(bot.webhook.get("url"))
        if webhook_set:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = get_int(params, "offset")
        limit = min(100, max(1, get_int(params, "limit", 100) or 100))
        timeout = max(0, get_int(params, "timeout", 0) or 0)
        allowed = get_json(params, "allowed_updates")
        if allowed is not None and not isinstance(allowed, list):
            raise bad_request("can't parse allowed_updates JSON object")
        ids, chunks = self._queue.get(offset, limit, float(timeout))
        return RawUpdates(ids, chunks)

    # --- sending -------------------------------------------------------------------------------------

    @staticmethod
    def _message_text(params: dict) -> dict:
        """{text, entities?} of a message text as Telegram checks it: 1 to 4096 characters after parsing."""
        raw = get_str(params, "text")
        if not raw:
            raise bad_request("message text is empty")
        text, entities = format_text(raw, get_str(params, "parse_mode"))
        if not text:
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        return {"text": text, "entities": entities} if entities else {"text": text}

    def _sendMessage(self, bot: Bot, params: dict, uploads: dict) -> dict:
        chat = self._chat(params, sending=True)
        content = self._message_text(params)
        markup = self._markup(params)
        self._pace(chat)
        return self._send(bot, chat, content, markup, params)

    def _media_sender(self, kind: str) -> Callable[[Bot, dict, dict[str, Upload]], dict]:
        def send(bot: Bot, params: dict, uploads: dict[str, Upload]) -> dict:
            chat = self._chat(params, sending=True)
            caption = self._caption(params) if kind not in ("video_note", "sticker") else {}
            markup = self._markup(params)
            stored = media.resolve(self._files, kind, params.get(kind), uploads)
            self._pace(chat)
            return self._send(bot, chat, {**self._media_content(kind, stored, params), **caption}, markup, params)
        return send

    def _media_content(self, kind: str, stored, params: dict) -> dict:
        duration = get_int(params, "duration", 0) or 0
        if kind == "photo":
            width, height = media.image_size(stored.data or b"")
            scale = min(1.0, 90 / max(width, height, 1))
            thumb = self._files.add("photo", (stored.data or b"")[: max(1, stored.size // 16)],
                                    mime_type="image/jpeg")
            return {"photo": [shapes.photo_size(thumb, max(1, round(width * scale)), max(1, round(height * scale))),
                              shapes.photo_size(stored, width, height)]}
        if kind == "document":
            return {"document": shapes.document(stored)}
        if kind == "audio":
            return {"audio": shapes.audio(stored, duration, get_str(params, "performer"), get_str(params, "title"))}
        if kind == "voice":
            return {"voice": shapes.voice(stored, duration)}
        if kind == "video_note":
            return {"video_note": shapes.video_note(stored, get_int(params, "length", 240) or 240, duration)}
        if kind == "sticker":
            return {"sticker": shapes.sticker(stored, get_str(params, "emoji") or "🙂", False, False, None)}
        dims = (get_int(params, "width", 640) or 640, get_int(params, "height", 360) or 360, duration)
        content = {kind: shapes.video(stored, *dims)}
        if kind == "animation":
            content["document"] = shapes.document(stored)
        return content

    def _sendLocation(self, bot: Bot, params: dict, uploads: dict) -> dict:
        chat = self._chat(params, sending=True)
        location = self._location(params)
        markup = self._markup(params)
        self._pace(chat)
        return self._send(bot, chat, {"location": location}, markup, params)

    @staticmethod
    def _location(params: dict) -> dict:
        latitude, longitude = get_float(params, "latitude"), get_float(params, "longitude")
        if not -90 <= latitude <= 90 or not -180 <= longitude <= 180:
            raise bad_request("wrong latitude or longitude specified")
        return {"latitude": latitude, "longitude": longitude}

    def _sendVenue(self, bot: Bot, params: dict, uploads: dict) -> dict:
        chat = self._chat(params, sending=True)
        location = self._location(params)
        title, address = get_str(params, "title"), get_str(params, "address")
        if not title or not address:
            raise bad_request("venue title and address must be non-empty")
        markup = self._markup(params)
        self._pace(chat)
        venue = {"location": location, "title": title, "address": address}
        return self._send(bot, chat, {"venue": venue, "location": location}, markup, params)

    def _sendContact(self, bot: Bot, params: dict, uploads: dict) -> dict:
        chat = self._chat(params, sending=True)
        phone, first = get_str(params, "phone_number"), get_str(params, "first_name")
        if not phone or not first:
            raise bad_request("phone_number and first_name must be non-empty")
        markup = self._markup(params)
        self._pace(chat)
        contact = {"phone_number": phone, "first_name": first}
        if get_str(params, "last_name"):
            contact["last_name"] = get_str(params, "last_name")
        return self._send(bot, chat, {"contact": contact}, markup, params)

    def _sendChatAction(self, bot: Bot, params: dict, uploads: dict) -> bool:
        self._chat(params, sending=True)
        action = get_str(params, "action")
        if not action:
            raise bad_request("action is empty")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # --- callbacks, edits, deletes -------------------------------------------------------------------

    def _answerCallbackQuery(self, bot: Bot, params: dict, uploads: dict) -> bool:
        query_id = get_str(params, "callback_query_id")
        with self._world.lock:
            known = query_id in self._world.callback_queries
        if not known:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        if len(get_str(params, "text") or "") > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        return True

    def _editable(self, params: dict) -> dict:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(params, sending=False)
        message_id = get_int(params, "message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = self._world.bot_message(chat["id"], message_id)
        if message is None:
            raise bad_request("message to edit not found")
        return message

    @staticmethod
    def _inline_only(markup: dict | None) -> dict | None:
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        return {"inline_keyboard": markup["inline_keyboard"]} if markup else None

    def _editMessageText(self, bot: Bot, params: dict, uploads: dict) -> dict:
        message = self._editable(params)
        content = self._message_text(params)
        markup = self._inline_only(self._markup(params))
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        edited = {k: v for k, v in message.items() if k not in ("text", "entities", "reply_markup", "edit_date")}
        edited.update(content)
        if markup:
            edited["reply_markup"] = markup
        return self._apply_edit(message, edited)

    def _editMessageReplyMarkup(self, bot: Bot, params: dict, uploads: dict) -> dict:
        message = self._editable(params)
        markup = self._inline_only(self._markup(params))
        edited = {k: v for k, v in message.items() if k not in ("reply_markup", "edit_date")}
        if markup and markup["inline_keyboard"]:
            edited["reply_markup"] = markup
        return self._apply_edit(message, edited)

    def _apply_edit(self, message: dict, edited: dict) -> dict:
        def content(m: dict) -> dict:
            return {k: v for k, v in m.items() if k != "edit_date"}
        if content(message) == content(edited):
            raise bad_request("message is not modified: specified new message content and reply markup are "
                              "exactly the same as a current content and reply markup of the message")
        edited["edit_date"] = int(time.time())
        self._world.replace_bot_message(edited)
        return edited

    def _deleteMessage(self, bot: Bot, params: dict, uploads: dict) -> bool:
        chat = self._chat(params, sending=False)
        message_id = get_int(params, "message_id")
        if message_id is None or not self._world.delete_message(chat["id"], message_id):
            raise bad_request("message to delete not found")
        return True

    # --- files and commands --------------------------------------------------------------------------

    def _getFile(self, bot: Bot, params: dict, uploads: dict) -> dict:
        file_id = get_str(params, "file_id")
        if not file_id:
            raise bad_request("file_id is empty")
        stored = self._files.get(file_id.strip())
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": stored.size,
                "file_path": stored.file_path}

    @staticmethod
    def _scope_key(params: dict) -> str:
        scope = get_json(params, "scope") or {"type": "default"}
        return f"{scope!r}|{get_str(params, 'language_code') or ''}"

    def _setMyCommands(self, bot: Bot, params: dict, uploads: dict) -> bool:
        commands = get_json(params, "commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.match(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad_request("command description must be non-empty")
        with self._lock:
            bot.commands[self._scope_key(params)] = [
                {"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _getMyCommands(self, bot: Bot, params: dict, uploads: dict) -> list:
        with self._lock:
            return list(bot.commands.get(self._scope_key(params), []))

    def _deleteMyCommands(self, bot: Bot, params: dict, uploads: dict) -> bool:
        with self._lock:
            bot.commands.pop(self._scope_key(params), None)
        return True
