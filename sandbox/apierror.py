"""The Bot API's error answer, raised by method handlers and turned into Telegram's exact JSON shape."""

from __future__ import annotations


class ApiError(Exception):
    """A failed Bot API call: HTTP status, Telegram's description, and optional retry_after."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict:
        """Telegram's error object: {"ok": false, "error_code", "description", "parameters"?}."""
        out: dict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


def bad_request(detail: str) -> ApiError:
    """A 400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {detail}")


def unauthorized() -> ApiError:
    """Unknown or revoked token."""
    return ApiError(401, "Unauthorized")


def method_not_found() -> ApiError:
    """A method the Bot API does not have."""
    return ApiError(404, "Not Found: method not found")


def blocked() -> ApiError:
    """The user blocked the bot."""
    return ApiError(403, "Forbidden: bot was blocked by the user")


def chat_not_found() -> ApiError:
    """A chat_id the bot has never seen."""
    return bad_request("chat not found")
