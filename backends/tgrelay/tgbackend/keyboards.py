"""Keyboards for outgoing messages; callback payloads live server-side behind short random ids."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import MutableMapping

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from tgbackend.outgoing import OutgoingMessage

CALLBACK_PREFIX = "cb1:"
_KEY_PREFIX = "callback:"  # one button's payload: {"payload", "created"}
_GROUP_PREFIX = "callbacks:"  # the payloads of one message's buttons: {"payloads": [...], "created"}
_GROUP_SEP = "."  # callback_data "cb1:<group>.<index>"; token_urlsafe ids never contain "."
_CACHE_SIZE = 10_000

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


class CallbackStore:
    """Maps short callback ids (fits Telegram's 64 bytes) to payloads of any length, persisted in
    the backend's Errbot storage and cached in memory."""

    def __init__(self, storage: MutableMapping, lock: threading.Lock) -> None:
        self._storage = storage
        self._lock = lock
        self._cache: OrderedDict[str, str] = OrderedDict()

    def put(self, payload: str) -> str:
        """Store payload and return the callback_data to put on the button."""
        return self.put_many([payload])[0]

    def put_many(self, payloads: list[str]) -> list[str]:
        """Store the payloads of one message's buttons in ONE storage write; their callback_data in order.

        One committed write per message instead of one per button (each is a synced SQLite commit under
        the backend's storage lock). A single payload keeps the original one-key format."""
        if not payloads:
            return []
        group = secrets.token_urlsafe(12)
        if len(payloads) == 1:
            key, value, ids = _KEY_PREFIX + group, {"payload": payloads[0], "created": time.time()}, [group]
        else:
            key = _GROUP_PREFIX + group
            value = {"payloads": list(payloads), "created": time.time()}
            ids = [f"{group}{_GROUP_SEP}{index}" for index in range(len(payloads))]
        with self._lock:
            self._storage[key] = value
            for short_id, payload in zip(ids, payloads, strict=True):
                self._remember(short_id, payload)
        return [CALLBACK_PREFIX + short_id for short_id in ids]

    def resolve(self, callback_data: str | None) -> str | None:
        """The payload for callback_data, or None when we never issued it (forged or expired)."""
        if not callback_data or not callback_data.startswith(CALLBACK_PREFIX):
            return None
        short_id = callback_data[len(CALLBACK_PREFIX) :]
        with self._lock:
            cached = self._cache.get(short_id)
            if cached is not None:
                return cached
            group, sep, index = short_id.partition(_GROUP_SEP)
            try:
                stored = self._storage[(_GROUP_PREFIX + group) if sep else (_KEY_PREFIX + short_id)]
            except KeyError:
                return None
            payload = _payload(stored, index if sep else None)
            if payload is not None:
                self._remember(short_id, payload)
            return payload

    def _remember(self, short_id: str, payload: str) -> None:
        self._cache[short_id] = payload
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)


def _payload(stored: object, index: str | None) -> str | None:
    """A stored payload: the single one, or the index-th of a message's group (None if absent)."""
    if not isinstance(stored, dict):
        return None
    if index is None:
        return stored.get("payload")
    payloads = stored.get("payloads")
    if not index.isdigit() or not isinstance(payloads, list) or int(index) >= len(payloads):
        return None
    return payloads[int(index)]


def build_markup(message: OutgoingMessage, callbacks: CallbackStore) -> Markup | None:
    """The reply_markup for the message's keyboard, or None."""
    if message.inline_keyboard:
        payloads = [button.callback_payload or "" for row in message.inline_keyboard for button in row
                    if button.url is None]
        datas = iter(callbacks.put_many(payloads))
        rows = [
            [InlineKeyboardButton(button.text, url=button.url) if button.url is not None
             else InlineKeyboardButton(button.text, callback_data=next(datas)) for button in row]
            for row in message.inline_keyboard
        ]
        return InlineKeyboardMarkup(rows)
    if message.reply_keyboard:
        rows = [
            [KeyboardButton(button.text, request_location=button.request_location or None) for button in row]
            for row in message.reply_keyboard
        ]
        return ReplyKeyboardMarkup(rows, one_time_keyboard=True, resize_keyboard=True)
    if message.remove_reply_keyboard:
        return ReplyKeyboardRemove()
    return None
