"""The chats the bot can see: users, per-chat message ids, the bot's messages, keyboards, callbacks, blocks."""

from __future__ import annotations

import secrets
import threading
import time

from sandbox.shapes import USER_FIELDS, private_chat, user_object


class World:
    """Thread-safe state of users and messages; every method is O(1) apart from listings."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[int, dict] = {}
        self._last_message_id: dict[int, int] = {}
        self._bot_messages: dict[tuple[int, int], dict] = {}
        self._user_messages: set[tuple[int, int]] = set()
        self._sent: list[dict] = []
        self.reply_keyboards: dict[int, dict] = {}
        self.callback_queries: dict[str, int] = {}
        self._chat_instances: dict[int, str] = {}
        self.blocked: set[int] = set()

    def user(self, user_id: int, fields: dict) -> dict:
        """Create or update a user (so the private chat exists); returns the User object."""
        unknown = set(fields) - set(USER_FIELDS)
        if unknown:
            raise TypeError(f"unknown user fields: {sorted(unknown)}")
        with self.lock:
            known = self.users.get(user_id, {})
            merged = {**{k: v for k, v in known.items() if k != "id" and k != "is_bot"},
                      **{k: v for k, v in fields.items() if v is not None}}
            user = user_object(user_id, merged)
            self.users[user_id] = user
            return user

    def chat(self, chat_id: int) -> dict | None:
        """The private Chat object for chat_id, or None if no such user wrote to the bot."""
        with self.lock:
            user = self.users.get(chat_id)
        return private_chat(user) if user else None

    def next_message_id(self, chat_id: int, from_user: bool) -> int:
        """Allocate the chat's next message id (user and bot messages share the sequence)."""
        with self.lock:
            message_id = self._last_message_id.get(chat_id, 0) + 1
            self._last_message_id[chat_id] = message_id
            if from_user:
                self._user_messages.add((chat_id, message_id))
            return message_id

    def user_message(self, user_id: int, message_fields: dict, fields: dict) -> dict:
        """A new Message from the user (date now, next message id) with the given content fields."""
        user = self.user(user_id, fields)
        message_id = self.next_message_id(user_id, from_user=True)
        return {"message_id": message_id, "from": user, "chat": private_chat(user), "date": int(time.time()),
                **message_fields}

    def store_bot_message(self, message: dict, reply_markup: dict | None) -> None:
        """Remember a message the bot sent (for sent(), edits, deletes, callbacks) and its reply keyboard."""
        chat_id = message["chat"]["id"]
        with self.lock:
            self._bot_messages[(chat_id, message["message_id"])] = message
            self._sent.append(message)
            if reply_markup and "keyboard" in reply_markup:
                self.reply_keyboards[chat_id] = reply_markup
            elif reply_markup and "remove_keyboard" in reply_markup:
                self.reply_keyboards.pop(chat_id, None)

    def bot_message(self, chat_id: int, message_id: int) -> dict | None:
        """A message the bot sent and has not deleted."""
        with self.lock:
            return self._bot_messages.get((chat_id, message_id))

    def replace_bot_message(self, message: dict) -> None:
        """Swap in an edited version of a bot message (copy on write: readers keep consistent dicts)."""
        key = (message["chat"]["id"], message["message_id"])
        with self.lock:
            old = self._bot_messages[key]
            self._bot_messages[key] = message
            self._sent[self._sent.index(old)] = message

    def delete_message(self, chat_id: int, message_id: int) -> bool:
        """Delete a bot or user message; False if there is none."""
        with self.lock:
            message = self._bot_messages.pop((chat_id, message_id), None)
            if message is not None:
                self._sent.remove(message)
                return True
            if (chat_id, message_id) in self._user_messages:
                self._user_messages.discard((chat_id, message_id))
                return True
            return False

    def sent(self, chat_id: int | None) -> list[dict]:
        """The bot's messages still present, in sending order."""
        with self.lock:
            messages = list(self._sent)
        if chat_id is None:
            return messages
        return [m for m in messages if m["chat"]["id"] == chat_id]

    def new_callback_query(self, user_id: int) -> tuple[str, str]:
        """(query id, chat_instance) for a new callback query from user_id."""
        query_id = str(secrets.randbelow(9 * 10**18) + 10**18)
        with self.lock:
            self.callback_queries[query_id] = user_id
            instance = self._chat_instances.setdefault(user_id, str(-secrets.randbelow(9 * 10**18) - 10**18))
        return query_id, instance
