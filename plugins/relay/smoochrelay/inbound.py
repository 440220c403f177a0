"""Telegram → business: each incoming Errbot Message becomes stored Smooch events in one transaction.

Runs on the backend's dispatch thread, so it only writes to SQLite and returns; HTTP delivery happens on
the webhook workers. It raises only when the message could not be stored, so the backend retries the update.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from smoochrelay import smooch
from smoochrelay.events import EventFanout
from smoochrelay.files import FileLinks
from smoochrelay.store import RelayStore

log = logging.getLogger(__name__)

USER_CACHE_SIZE = 10_000
FILE_KINDS = frozenset({"photo", "sticker", "document", "audio", "voice", "video", "video_note", "animation"})


def callback_payload(message_id: str, action_id: str) -> str:
    """The payload a postback button carries (stored by the backend behind a short id)."""
    return json.dumps({"m": message_id, "a": action_id}, separators=(",", ":"))


def parse_callback_payload(payload: str | None) -> tuple[str, str] | None:
    """(message id, action id) from a postback button's payload, or None if it is not one of ours."""
    if not payload:
        return None
    try:
        data = json.loads(payload)
        return str(data["m"]), str(data["a"])
    except (ValueError, KeyError, TypeError):
        return None


class InboundRelay:
    """Maps Telegram messages (CONTRACTS §1 extras) to Smooch events and records them durably."""

    def __init__(self, store: RelayStore, fanout: EventFanout, links: FileLinks, *, file_size_limit: int,
                 bot_prefix: str,
                 notify_user: Callable[[int, str], None], big_file_notice: str) -> None:
        self._store = store
        self._fanout = fanout
        self._links = links
        self._file_size_limit = file_size_limit
        self._bot_prefix = bot_prefix
        self._notify_user = notify_user
        self._big_file_notice = big_file_notice
        self._users: OrderedDict[int, tuple[tuple, dict]] = OrderedDict()
        self._users_lock = threading.Lock()

    def handle(self, body: str, extras: dict[str, Any]) -> bool:
        """Record one incoming message; True if it was new (False: already seen, or not for relaying)."""
        if "update_id" not in extras or "user" not in extras:
            log.debug("Ignoring a message that did not come from the Telegram backend.")
            return False
        if extras.get("from_admin") and body.startswith(self._bot_prefix):
            return False
        app_user = self._app_user(extras)
        first_contact = not app_user.get("conversation_started")
        if first_contact:
            app_user = {**app_user, "conversation_started": True}
        kind = extras.get("kind")
        if kind == "start":
            recorded = self._record_start(extras, app_user)
        elif kind == "callback":
            recorded = self._record_postback(extras, app_user)
        else:
            recorded = self._record_message(extras, app_user)
        if recorded and first_contact:
            self._store.set_conversation_started(app_user["_id"])
            with self._users_lock:
                cached = self._users.get(extras["user"]["id"])
                if cached is not None:
                    self._users[extras["user"]["id"]] = (cached[0], app_user)
        return recorded

    def _app_user(self, extras: dict[str, Any]) -> dict:
        """The appUser for this Telegram user, written only when new or when the profile changed.

        A bounded LRU cache spares a database write per message for users who write often.
        """
        user = extras["user"]
        profile = (user.get("first_name"), user.get("last_name"), user.get("username"),
                   user.get("language_code"), extras.get("chat_id"))
        with self._users_lock:
            cached = self._users.get(user["id"])
            if cached and cached[0] == profile:
                self._users.move_to_end(user["id"])
                return cached[1]
        app_user = self._store.upsert_telegram_user(user, extras["chat_id"])
        if app_user.get("blocked"):
            self._store.set_user_blocked(app_user["_id"], False)
            app_user = {**app_user, "blocked": False}
        with self._users_lock:
            self._users[user["id"]] = (profile, app_user)
            if len(self._users) > USER_CACHE_SIZE:
                self._users.popitem(last=False)
        return app_user

    def _record_start(self, extras: dict[str, Any], app_user: dict) -> bool:
        """`/start [payload]` → conversation:start with the deep-link payload as referral code."""
        fields: dict[str, Any] = {"source": {"type": "telegram"}}
        payload = extras.get("start_payload")
        if payload:
            fields["referral"] = {"code": payload}
        jobs = self._fanout.jobs("conversation:start", app_user, **fields)
        return self._store.record_inbound(extras["update_id"], app_user["_id"], None, jobs)

    def _record_postback(self, extras: dict[str, Any], app_user: dict) -> bool:
        """A postback button press → `postback` carrying the message and the action pressed."""
        ref = parse_callback_payload(extras.get("callback_payload"))
        message = self._store.get_message(ref[0]) if ref else None
        action = None
        if message is not None and ref is not None:
            action = next((a for a in _all_actions(message) if a.get("_id") == ref[1]), None)
        if action is None:
            log.info("Ignoring a button press whose payload is unknown or forged (update %s).",
                     extras["update_id"])
            return self._store.record_inbound(extras["update_id"], app_user["_id"], None, [])
        jobs = self._fanout.jobs("postback", app_user, postbacks=[smooch.postback_entry(action, message)])
        return self._store.record_inbound(extras["update_id"], app_user["_id"], None, jobs)

    def _record_message(self, extras: dict[str, Any], app_user: dict) -> bool:
        """Text, media, location, contact → a `message:appUser` (or the big-file alert)."""
        message_id = smooch.new_id()
        received = time.time()
        file = extras.get("file")
        too_big = False
        if extras.get("kind") in FILE_KINDS and file:
            size = file.get("size")
            too_big = size is not None and size > self._file_size_limit
        if too_big:
            message = smooch.big_file_alert(extras, message_id=message_id, app_user=app_user,
                                            received=received, limit=self._file_size_limit)
        else:
            media_url = None
            if extras.get("kind") in FILE_KINDS and file:
                media_url = self._links.link(
                    file_id=file["file_id"], app_user_id=app_user["_id"],
                    mime_type=file.get("mime_type") or "application/octet-stream",
                    name=file.get("name") or f"{extras['kind']}-{extras.get('message_id')}",
                    size=file.get("size"),
                )
            message = smooch.appuser_message(extras, message_id=message_id, app_user=app_user,
                                              media_url=media_url, received=received)
            self._attach_quick_reply(app_user, message)
        jobs = self._fanout.jobs("message:appUser", app_user, messages=[message])
        recorded = self._store.record_inbound(extras["update_id"], app_user["_id"], message, jobs)
        if recorded and too_big and self._big_file_notice:
            self._notify_user(extras["chat_id"], self._big_file_notice)
        return recorded

    def _attach_quick_reply(self, app_user: dict, message: dict) -> None:
        """A tap on a quick reply arrives as its text: carry the reply's payload as Smooch does."""
        if message.get("type") != "text":
            return
        offered = self._store.get_quick_replies(app_user["_id"])
        if not offered:
            return
        action = smooch.action_for_reply_text(offered, message.get("text", ""))
        if action is not None:
            message["payload"] = action["payload"]
            self._store.set_quick_replies(app_user["_id"], None)

    def forget_user(self, telegram_user_id: int) -> None:
        """Drop a cached appUser whose stored fields changed elsewhere (e.g. blocked); safe from any thread."""
        with self._users_lock:
            self._users.pop(telegram_user_id, None)


def _all_actions(message: dict) -> list[dict]:
    """The actions of a message and of its carousel/list items."""
    actions = list(message.get("actions") or [])
    for item in message.get("items") or []:
        actions.extend(item.get("actions") or [])
    return actions
