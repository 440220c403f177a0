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
_KEY_PREFIX = "callback:"
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
        short_id = secrets.token_urlsafe(12)
        with self._lock:
            self._storage[_KEY_PREFIX + short_id] = {"payload": payload, "created": time.time()}
            self._remember(short_id, payload)
        return CALLBACK_PREFIX + short_id

    def resolve(self, callback_data: str | None) -> str | None:
        """The payload for callback_data, or None when we never issued it (forged or expired)."""
        if not callback_data or not callback_data.startswith(CALLBACK_PREFIX):
            return None
        short_id = callback_data[len(CALLBACK_PREFIX) :]
        with self._lock:
            cached = self._cache.get(short_id)
            if cached is not None:
                return cached
            try:
                stored = self._storage[_KEY_PREFIX + short_id]
            except KeyError:
                return None
            payload = stored.get("payload") if isinstance(stored, dict) else None
            if payload is not None:
                self._remember(short_id, payload)
            return payload

    def _remember(self, short_id: str, payload: str) -> None:
        self._cache[short_id] = payload
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)


def build_markup(message: OutgoingMessage, callbacks: CallbackStore) -> Markup | None:
    """The reply_markup for the message's keyboard, or None."""
    if message.inline_keyboard:
        rows = []
        for row in message.inline_keyboard:
            buttons = []
            for button in row:
                if button.url is not None:
                    buttons.append(InlineKeyboardButton(button.text, url=button.url))
                else:
                    data = callbacks.put(button.callback_payload or "")
                    buttons.append(InlineKeyboardButton(button.text, callback_data=data))
            rows.append(buttons)
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
