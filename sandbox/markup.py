"""Validation of reply_markup objects (inline keyboards, reply keyboards, remove/force reply) as Telegram does."""

from __future__ import annotations

from urllib.parse import urlsplit

from sandbox.apierror import bad_request

INLINE_KINDS = ("url", "callback_data", "web_app", "login_url", "switch_inline_query",
                "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
                "callback_game", "pay")
REPLY_OPTIONS = ("request_location", "request_contact", "request_poll", "request_users", "request_chat",
                 "web_app")
MAX_BUTTONS = 100


def validate_reply_markup(markup: object) -> dict:
    """Check a decoded reply_markup; return it unchanged or raise 400 with Telegram's description."""
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _inline(markup["inline_keyboard"])
    elif "keyboard" in markup:
        _keyboard(markup)
    elif "remove_keyboard" in markup:
        if markup["remove_keyboard"] is not True:
            raise bad_request("field \"remove_keyboard\" must be true")
    elif "force_reply" in markup:
        if markup["force_reply"] is not True:
            raise bad_request("field \"force_reply\" must be true")
    else:
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def _rows(rows: object, field: str, owner: str) -> list[list]:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request(f"field \"{field}\" of the {owner} must be an Array of Arrays")
    if sum(len(r) for r in rows) > MAX_BUTTONS:
        raise bad_request("too many buttons in the keyboard")
    return rows


def _inline(rows: object) -> None:
    for row in _rows(rows, "inline_keyboard", "InlineKeyboardMarkup"):
        for button in row:
            if not isinstance(button, dict):
                raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            text = button.get("text")
            if not isinstance(text, str) or not text.strip():
                raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the "
                                  "inline keyboard" if text is None else "BUTTON_TEXT_INVALID")
            kinds = [k for k in INLINE_KINDS if k in button]
            if not kinds:
                raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the "
                                  "inline keyboard")
            if len(kinds) > 1:
                raise bad_request("can't parse inline keyboard button: exactly one of the optional fields "
                                  "must be used")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
            if "url" in button:
                _check_url(button["url"])


def _check_url(url: object) -> None:
    if not isinstance(url, str):
        raise bad_request("can't parse inline keyboard button: Field \"url\" must be of type String")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https", "tg"):
        raise bad_request(f"inline keyboard button URL '{url}' is invalid: Unsupported URL protocol")
    if parts.scheme.lower() != "tg" and not parts.hostname:
        raise bad_request(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _keyboard(markup: dict) -> None:
    for row in _rows(markup["keyboard"], "keyboard", "ReplyKeyboardMarkup"):
        for button in row:
            if isinstance(button, str):
                text = button
            elif isinstance(button, dict):
                text = button.get("text")
                if sum(1 for k in REPLY_OPTIONS if button.get(k)) > 1:
                    raise bad_request("can't parse keyboard button: only one of the optional fields can be used")
            else:
                raise bad_request("can't parse keyboard button: KeyboardButton must be a String or an Object")
            if not isinstance(text, str) or not text:
                raise bad_request("can't parse keyboard button: Field \"text\" must be of type String")
    for flag in ("resize_keyboard", "one_time_keyboard", "is_persistent", "selective"):
        if flag in markup and not isinstance(markup[flag], bool):
            raise bad_request(f"can't parse keyboard: Field \"{flag}\" must be of type Boolean")
    placeholder = markup.get("input_field_placeholder")
    if placeholder is not None and (not isinstance(placeholder, str) or len(placeholder) > 64):
        raise bad_request("can't parse keyboard: input_field_placeholder must be 0-64 characters")


def reply_buttons(markup: dict) -> list[dict]:
    """The reply keyboard's buttons as objects ({text, request_location?...}), in order."""
    return [b if isinstance(b, dict) else {"text": b} for row in markup.get("keyboard", []) for b in row]


def inline_buttons(markup: dict | None) -> list[dict]:
    """The inline keyboard's buttons, in order (empty without an inline keyboard)."""
    if not markup or "inline_keyboard" not in markup:
        return []
    return [b for row in markup["inline_keyboard"] for b in row]
