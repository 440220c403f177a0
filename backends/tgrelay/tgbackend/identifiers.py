"""Errbot identifiers for Telegram private chats: hashable, comparable, aclattr = str(user id)."""

from __future__ import annotations

from errbot.backends.base import Person


class TelegramPerson(Person):
    """A Telegram user (and their private chat, whose id equals the user id)."""

    __slots__ = ("_first_name", "_id", "_last_name", "_username")

    def __init__(
        self,
        user_id: int,
        username: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> None:
        self._id = int(user_id)
        self._username = username
        self._first_name = first_name
        self._last_name = last_name

    @property
    def id(self) -> int:
        return self._id

    @property
    def username(self) -> str | None:
        return self._username

    @property
    def first_name(self) -> str | None:
        return self._first_name

    @property
    def last_name(self) -> str | None:
        return self._last_name

    @property
    def person(self) -> str:
        return str(self._id)

    @property
    def client(self) -> str:
        return str(self._id)

    @property
    def nick(self) -> str | None:
        return self._username

    @property
    def aclattr(self) -> str:
        return str(self._id)

    @property
    def fullname(self) -> str:
        return " ".join(part for part in (self._first_name, self._last_name) if part) or (
            self._username or str(self._id)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TelegramPerson) and other._id == self._id

    def __hash__(self) -> int:
        return hash(("telegram", self._id))

    def __str__(self) -> str:
        return str(self._id)

    def __repr__(self) -> str:
        return f"TelegramPerson({self._id}, username={self._username!r})"


def parse_identifier(text: str) -> TelegramPerson:
    """Parse "123456" (a user id) into a TelegramPerson; usernames cannot be resolved by the Bot API."""
    cleaned = str(text).strip()
    try:
        user_id = int(cleaned)
    except ValueError:
        raise ValueError(
            f"{cleaned!r} is not a Telegram user id: use the numeric id (the Bot API cannot look up "
            "a private user by @username)"
        ) from None
    if user_id <= 0:
        raise ValueError(f"{cleaned!r} is a group or channel id; TGRelay talks to private chats only")
    return TelegramPerson(user_id)
