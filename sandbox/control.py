"""The JSON control API under /control/: lets people and other processes play users and inject faults."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING

from sandbox.server import Reply

if TYPE_CHECKING:
    from sandbox.core import Sandbox

USER_KEYS = ("first_name", "last_name", "username", "language_code")
MEDIA_KINDS = ("photo", "document", "audio", "voice", "video", "video_note", "animation", "sticker")


class ControlError(Exception):
    """A bad control request (→ 400 with the message)."""


def _ok(result: object) -> Reply:
    return Reply.json(200, {"ok": True, "result": result})


def _user(body: dict) -> dict:
    return {k: body[k] for k in USER_KEYS if body.get(k) is not None}


def _data(body: dict) -> bytes | None:
    if body.get("data_base64") is None:
        return None
    try:
        return base64.b64decode(body["data_base64"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ControlError("data_base64 is not valid base64") from None


class ControlApi:
    """Routes /control/<name> to the Sandbox's Python API."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sb = sandbox

    def handle(self, http_method: str, path: str, query: dict, body: bytes) -> Reply:
        """Answer one control request: {"ok": true, "result": ...} or 400/404 {"ok": false, "description"}."""
        name = path[len("/control/"):].strip("/") if path.startswith("/control/") else ""
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise ControlError("body must be a JSON object")
            if http_method == "GET" and name == "sent":
                return self._sent(query)
            if http_method == "GET" and name == "requests":
                return self._requests(query)
            if http_method == "GET" and name.startswith("file/"):
                return self._file(name[len("file/"):])
            if http_method == "GET" and name == "state":
                return _ok({"pending_updates": self._sb.pending_updates(),
                            "offset_acknowledged": self._sb.offset_acknowledged,
                            "enforce_limits": self._sb.enforce_limits})
            handler = {"push": self._push, "fail": self._fail, "drop": self._drop, "block": self._block,
                       "limits": self._limits}.get(name)
            if http_method != "POST" or handler is None:
                return Reply.json(404, {"ok": False, "description": f"no control route {http_method} {path}"})
            return handler(payload)
        except (ControlError, ValueError, TypeError, KeyError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            return Reply.json(400, {"ok": False, "description": detail})

    def _sent(self, query: dict) -> Reply:
        chat_id = int(query["chat_id"]) if query.get("chat_id") else None
        keyboard = None
        if chat_id is not None:
            with self._sb._world.lock:
                keyboard = self._sb._world.reply_keyboards.get(chat_id)
        return Reply.json(200, {"ok": True, "result": self._sb.sent(chat_id), "reply_keyboard": keyboard})

    def _requests(self, query: dict) -> Reply:
        chat_id = int(query["chat_id"]) if query.get("chat_id") else None
        out = []
        for entry in self._sb.requests(query.get("method") or None, chat_id):
            shown = {k: v for k, v in entry.items() if k not in ("token", "files")}
            shown["files"] = {name: len(data) for name, data in entry["files"].items()}
            out.append(shown)
        return Reply(200, json.dumps({"ok": True, "result": out}, default=str).encode())

    def _file(self, file_id: str) -> Reply:
        stored = self._sb._files.get(file_id)
        if stored is None or stored.data is None:
            return Reply.json(404, {"ok": False, "description": "no such file"})
        headers = {}
        if stored.file_name:
            headers["Content-Disposition"] = f'inline; filename="{stored.file_name}"'
        return Reply(200, stored.data, stored.mime_type or "application/octet-stream", headers=headers)

    def _push(self, body: dict) -> Reply:
        sb, kind, user = self._sb, body.get("kind", "text"), _user(body)
        if kind == "raw":
            return _ok(sb.push_raw(body["update"]))
        user_id = int(body["user_id"])
        if kind == "text":
            return _ok(sb.push_text(user_id, str(body["text"]), **user))
        if kind in MEDIA_KINDS:
            extra = {k: body[k] for k in ("caption", "file_name", "mime_type") if body.get(k) is not None}
            if kind in ("video_note", "sticker", "photo"):
                extra.pop("file_name", None)
                extra.pop("mime_type", None)
            if kind in ("video_note", "sticker"):
                extra.pop("caption", None)
            return _ok(getattr(sb, f"push_{kind}")(user_id, _data(body), **extra, **user))
        if kind == "big_document":
            return _ok(sb.push_big_document(user_id, int(body.get("size", 25 * 2**20)),
                                            body.get("file_name", "big.zip"), **user))
        if kind == "location":
            return _ok(sb.push_location(user_id, float(body["latitude"]), float(body["longitude"]), **user))
        if kind == "venue":
            return _ok(sb.push_venue(user_id, float(body["latitude"]), float(body["longitude"]),
                                     str(body["title"]), str(body["address"]), **user))
        if kind == "contact":
            return _ok(sb.push_contact(user_id, str(body["phone_number"]), str(body["contact_first_name"]),
                                       body.get("contact_last_name"), sender=user))
        if kind == "callback":
            return _ok(sb.push_callback(user_id, int(body["message_id"]), str(body["data"]),
                                        forged=bool(body.get("forged")), **user))
        if kind == "press_button":
            return _ok(sb.press_button(user_id, int(body["message_id"]), str(body["text"]), **user))
        if kind == "tap_reply":
            return _ok(sb.tap_reply(user_id, str(body["text"]), **user))
        raise ControlError(f"unknown kind {kind!r}")

    def _fail(self, body: dict) -> Reply:
        retry_after = body.get("retry_after")
        self._sb.fail_next(str(body.get("method", "*")), int(body["status"]), str(body["description"]),
                           int(retry_after) if retry_after is not None else None, int(body.get("count", 1)))
        return _ok(True)

    def _drop(self, body: dict) -> Reply:
        self._sb.drop_next(str(body.get("method", "*")), int(body.get("count", 1)))
        return _ok(True)

    def _block(self, body: dict) -> Reply:
        if body.get("blocked", True):
            self._sb.block_user(int(body["user_id"]))
        else:
            self._sb.unblock_user(int(body["user_id"]))
        return _ok(True)

    def _limits(self, body: dict) -> Reply:
        self._sb.enforce_limits = bool(body["enforce"])
        return _ok(True)
