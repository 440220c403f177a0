"""The Smooch / Sunshine Conversations v1.1 wire format: request validation and payload builders.

Pure functions only (no I/O, no Errbot, no Telegram library), so every rule here is testable alone and the
OpenAPI document (openapi.py) can reuse the same constants as the validators.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

API_VERSION = "v1.1"

MESSAGE_TYPES = ("text", "image", "file", "location", "carousel", "list")
ACTION_TYPES = ("link", "postback", "buy", "reply", "locationRequest", "webview", "share")
ITEM_ACTION_TYPES = ("link", "postback", "webview", "buy")
QUICK_REPLY_TYPES = ("reply", "locationRequest")
WEBVIEW_SIZES = ("compact", "tall", "full")
ITEM_SIZES = ("compact", "large")
IMAGE_ASPECT_RATIOS = ("horizontal", "square")
ACTIVITY_TYPES = ("typing:start", "typing:stop")

# The v1.1 WebhookTriggers enum, plus the two aliases Smooch accepts.
WEBHOOK_TRIGGERS = (
    "appUser:delete",
    "client:add",
    "client:remove",
    "conversation:read",
    "conversation:referral",
    "conversation:start",
    "link:failure",
    "link:match",
    "link:success",
    "merge:appUser",
    "message:appMaker",
    "message:appUser",
    "message:delivery:channel",
    "message:delivery:failure",
    "message:delivery:user",
    "payment:success",
    "postback",
    "typing:appUser",
)
WEBHOOK_TRIGGER_ALIASES = ("*", "message")
ALL_WEBHOOK_TRIGGERS = WEBHOOK_TRIGGERS + WEBHOOK_TRIGGER_ALIASES
DEFAULT_WEBHOOK_TRIGGERS = ("message",)
MAX_WEBHOOKS = 10

MAX_TEXT_LENGTH = 20_000  # Smooch sets no limit; Telegram's 4096 is handled by splitting, this bounds abuse.
MAX_ACTION_TEXT_LENGTH = 256
MAX_PAYLOAD_LENGTH = 1000
MAX_NAME_LENGTH = 256
MAX_URL_LENGTH = 2048
MAX_ACTIONS = 100  # Telegram's own ceiling for buttons on one keyboard.
MAX_ITEMS = 10
MIN_ITEM_ACTIONS = 1
MAX_ITEM_ACTIONS = 3
METADATA_MAX_BYTES = 4096  # of the compact JSON encoding, keys and values both counted.
MAX_AMOUNT = 99_999_999  # Stripe's ceiling, in the currency's minor unit.
MAX_TOKEN_LENGTH = 256
PAYMENTS_NOT_CONFIGURED = (
    "buy actions need payments, which are not configured on this relay: set STRIPE_API_KEY and "
    "STRIPE_WEBHOOK_SECRET, then restart the relay"
)

# Currencies Stripe can charge in (ISO 4217, lowercase, as Stripe and Smooch payloads spell them).
STRIPE_CURRENCIES = (
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt", "bgn",
    "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf", "chf", "clp", "cny",
    "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb", "eur", "fjd", "fkp", "gbp",
    "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "isk",
    "jmd", "jpy", "kes", "kgs", "khr", "kmf", "krw", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl",
    "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad",
    "ngn", "nio", "nok", "npr", "nzd", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron",
    "rsd", "rub", "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl",
    "thb", "tjs", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs", "vnd", "vuv",
    "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
)  # fmt: skip
# Currencies whose amount is given in whole units (no cents): "$[Pay](500)" in jpy is 500 yen.
ZERO_DECIMAL_CURRENCIES = (
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf",
    "xof", "xpf",
)  # fmt: skip

# Backend (tgbackend.errors) codes → the `error.code` of a message:delivery:failure webhook.
DELIVERY_ERROR_CODES = {
    "blocked": "user_blocked",
    "chat_not_found": "user_not_found",
    "bad_request": "bad_request",
    "unavailable": "channel_unavailable",
    "not_connected": "integration_not_connected",
}

MESSAGE_POST_FIELDS = (
    "role", "type", "name", "email", "avatarUrl", "metadata", "payload", "text", "mediaUrl", "mediaType",
    "altText", "items", "actions", "blockChatInput", "displaySettings", "fields", "destination", "override",
    "coordinates", "location",
)  # fmt: skip
WEBHOOK_FIELDS = ("target", "triggers", "includeClient", "includeFullAppUser")
ACTIVITY_FIELDS = ("role", "type", "name", "avatarUrl")
INTEGRATION_CREATE_FIELDS = ("type", "token", "displayName")
ACTION_FIELDS = {
    "link": ("type", "text", "uri", "default", "metadata", "extraChannelOptions"),
    "webview": ("type", "text", "uri", "fallback", "size", "openOnReceive", "default", "metadata",
                "extraChannelOptions"),
    "postback": ("type", "text", "payload", "metadata"),
    "reply": ("type", "text", "payload", "iconUrl", "metadata"),
    "locationRequest": ("type", "text", "metadata"),
    "buy": ("type", "text", "amount", "currency", "metadata"),
}
ITEM_FIELDS = ("title", "description", "mediaUrl", "mediaType", "altText", "size", "actions")

_TELEGRAM_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,200}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+-]+")
_SHORTHAND = re.compile(
    r"(?P<image>!\[[^\]\n]*\]\((?P<image_url>[^)\s]+)\))"
    r"|%\[(?P<label>[^\]\n]+)\]\((?P<target>[^)\n]+)\)"
    r"|\$\[(?P<buy_label>[^\]\n]+)\]\((?P<price>\$?\d+(?:\.\d+)?)\)"
)


class ValidationError(Exception):
    """A request the Smooch API refuses: the caller answers 400 {"error": {"code", "description"}}.

    `code` is "bad_request" unless a more precise one applies (e.g. "payments_not_configured").
    """

    def __init__(self, field: str, description: str, code: str = "bad_request") -> None:
        super().__init__(description)
        self.field = field
        self.description = description
        self.code = code


def new_id() -> str:
    """A fresh id in Smooch's format: 24 lowercase hex characters (a Mongo ObjectId's length)."""
    return secrets.token_hex(12)


def error_body(code: str, description: str) -> dict:
    """The JSON body of every Smooch API error."""
    return {"error": {"code": code, "description": description}}


# ---------------------------------------------------------------------------------------------------------
# Small field checkers: each raises ValidationError naming the field.


def _object(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(field, f"{field} must be a JSON object")
    return value


def _reject_unknown(body: Mapping, allowed: Iterable[str], prefix: str, what: str) -> None:
    allowed = tuple(allowed)
    for key in body:
        if key not in allowed:
            raise ValidationError(f"{prefix}{key}", f"{prefix}{key} is not a known field of {what}")


def _missing(value: object, field: str, *, required: bool, why: str = "") -> bool:
    """True when a field is absent; raises, saying why, when it was required."""
    if value is not None:
        return False
    if required:
        raise ValidationError(field, f"{field} is required{why}")
    return True


def _string(
    body: Mapping, key: str, field: str, *, required: bool = False, max_length: int = MAX_NAME_LENGTH,
    required_why: str = "",
) -> str | None:
    value = body.get(key)
    if _missing(value, field, required=required, why=required_why):
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"{field} must be a string")
    if required and not value.strip():
        raise ValidationError(field, f"{field} must not be empty{required_why}")
    if len(value) > max_length:
        raise ValidationError(field, f"{field} is longer than {max_length} characters")
    return value


def _bool(body: Mapping, key: str, field: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationError(field, f"{field} must be true or false")
    return value


def _choice(
    body: Mapping, key: str, field: str, choices: Iterable[str], *, required: bool = False
) -> str | None:
    choices = tuple(choices)
    value = body.get(key)
    if _missing(value, field, required=required, why=f" (one of {', '.join(choices)})"):
        return None
    if value not in choices:
        raise ValidationError(field, f"{field} must be one of {', '.join(choices)}")
    return value


def is_http_url(value: object) -> bool:
    """True for an absolute http(s) URL with a host and no whitespace, within MAX_URL_LENGTH."""
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _url(
    body: Mapping, key: str, field: str, *, required: bool = False, required_why: str = ""
) -> str | None:
    value = body.get(key)
    if _missing(value, field, required=required, why=required_why):
        return None
    if not is_http_url(value):
        raise ValidationError(field, f"{field} must be an absolute http or https URL")
    return value


def _media_type(body: Mapping, key: str, field: str) -> str | None:
    value = _string(body, key, field, max_length=255)
    if value is not None and not _MEDIA_TYPE.fullmatch(value):
        raise ValidationError(field, f"{field} must be a MIME type such as image/png")
    return value


def _metadata(value: object, field: str) -> dict:
    """A flat object of string, number and boolean values, at most METADATA_MAX_BYTES of JSON."""
    metadata = _object(value, field)
    for key, item in metadata.items():
        if isinstance(item, bool | str) or (isinstance(item, int | float) and math.isfinite(item)):
            continue
        raise ValidationError(
            f"{field}.{key}", f"{field}.{key} must be a string, number or boolean (metadata is a flat object)"
        )
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise ValidationError(
            field, f"{field} is {size} bytes of JSON; the limit is {METADATA_MAX_BYTES} bytes"
        )
    return dict(metadata)


def _payload(body: Mapping, key: str, field: str, *, required: bool, why: str = "") -> str | None:
    value = body.get(key)
    if _missing(None if value == "" else value, field, required=required, why=why):
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"{field} must be a string")
    if len(value) > MAX_PAYLOAD_LENGTH:
        raise ValidationError(field, f"{field} is longer than the limit of {MAX_PAYLOAD_LENGTH} characters")
    return value


def _put(target: dict, key: str, value: object) -> None:
    if value is not None:
        target[key] = value


# ---------------------------------------------------------------------------------------------------------
# Messages posted by the business (appMaker).


def currency_code(value: object, field: str) -> str:
    """A Stripe-supported ISO 4217 currency, lowercased; ValidationError naming the field otherwise."""
    if not isinstance(value, str) or value.lower() not in STRIPE_CURRENCIES:
        raise ValidationError(
            field, f"{field} must be an ISO 4217 currency code that Stripe supports, e.g. usd"
        )
    return value.lower()


def amount_from_price(price: str, currency: str) -> int:
    """A shorthand price ("9.99" or "$9.99") → minor units of `currency` (999 usd; "500" jpy → 500)."""
    try:
        value = Decimal(price.lstrip("$"))
    except InvalidOperation as error:
        raise ValidationError("text", f"text: {price!r} is not a price") from error
    scale = 1 if currency in ZERO_DECIMAL_CURRENCIES else 100
    minor = value * scale
    if minor != minor.to_integral_value():
        raise ValidationError("text", f"text: price {price} has more decimals than {currency} allows")
    return int(minor)


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t]{2,}", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def expand_shorthand(text: str, *, default_currency: str = "usd") -> tuple[str, list[dict], str | None]:
    """Smooch's text shorthand → (remaining text, raw actions, image URL of the first `![](url)` or None).

    `%[L](https://…)` link, `%[L](postback:P)` postback, `%[L](reply:P)` reply, `%[L](location)`
    locationRequest, `$[L](9.99)` / `$[L]($9.99)` buy in `default_currency`. Other targets stay in the text.
    """
    actions: list[dict] = []
    image_url: str | None = None

    def replace(match: re.Match) -> str:
        nonlocal image_url
        if match.group("image"):
            if image_url is None and is_http_url(match.group("image_url")):
                image_url = match.group("image_url")
                return ""
            return match.group(0)
        if match.group("buy_label"):
            amount = amount_from_price(match.group("price"), default_currency)
            actions.append(
                {"type": "buy", "text": match.group("buy_label").strip(), "amount": amount,
                 "currency": default_currency}
            )
            return ""
        label, target = match.group("label").strip(), match.group("target").strip()
        if is_http_url(target):
            actions.append({"type": "link", "text": label, "uri": target})
        elif target.startswith("postback:"):
            actions.append({"type": "postback", "text": label, "payload": target[len("postback:"):]})
        elif target.startswith("reply:"):
            actions.append({"type": "reply", "text": label, "payload": target[len("reply:"):]})
        elif target == "location":
            actions.append({"type": "locationRequest", "text": label})
        else:
            return match.group(0)
        return ""

    remaining = _SHORTHAND.sub(replace, text)
    if not actions and image_url is None:
        return text, [], None
    return _tidy(remaining), actions, image_url


def _action(
    raw: object, field: str, *, allowed: tuple[str, ...], payments_enabled: bool, default_currency: str
) -> dict:
    action = _object(raw, field)
    kind = action.get("type")
    if kind == "share":
        raise ValidationError(f"{field}.type", f"{field}.type: share actions are not supported on Telegram")
    if kind not in allowed:
        raise ValidationError(f"{field}.type", f"{field}.type must be one of {', '.join(allowed)}")
    _reject_unknown(action, (*ACTION_FIELDS[kind], "_id"), f"{field}.", f"a {kind} action")
    text = _string(action, "text", f"{field}.text", required=True, max_length=MAX_ACTION_TEXT_LENGTH)
    result: dict[str, Any] = {"_id": new_id(), "type": kind, "text": text}
    if kind in ("link", "webview"):
        why = f" for {kind} actions"
        result["uri"] = _url(action, "uri", f"{field}.uri", required=True, required_why=why)
        _put(result, "default", _bool(action, "default", f"{field}.default"))
    if kind == "webview":
        # Smooch requires `fallback`; Telegram opens the uri as a plain link: a missing fallback is the uri.
        result["fallback"] = _url(action, "fallback", f"{field}.fallback") or result["uri"]
        _put(result, "size", _choice(action, "size", f"{field}.size", WEBVIEW_SIZES))
        _put(result, "openOnReceive", _bool(action, "openOnReceive", f"{field}.openOnReceive"))
    if kind in ("postback", "reply"):
        result["payload"] = _payload(
            action, "payload", f"{field}.payload", required=True, why=f" for {kind} actions"
        )
    if kind == "reply":
        _put(result, "iconUrl", _url(action, "iconUrl", f"{field}.iconUrl"))
    if kind == "buy":
        if not payments_enabled:
            raise ValidationError(
                field, f"{field}: {PAYMENTS_NOT_CONFIGURED}",
                code="payments_not_configured",
            )
        amount = action.get("amount")
        if amount is None:
            raise ValidationError(f"{field}.amount", f"{field}.amount is required for buy actions")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_AMOUNT:
            raise ValidationError(
                f"{field}.amount",
                f"{field}.amount must be a whole number of the currency's minor unit (cents), "
                f"1 to {MAX_AMOUNT}",
            )
        currency = action.get("currency")
        result["amount"] = amount
        result["currency"] = currency_code(
            default_currency if currency is None else currency, f"{field}.currency"
        )
        result["state"] = "offered"
    if action.get("metadata") is not None:
        result["metadata"] = _metadata(action["metadata"], f"{field}.metadata")
    if action.get("extraChannelOptions") is not None:
        result["extraChannelOptions"] = _object(action["extraChannelOptions"], f"{field}.extraChannelOptions")
    return result


def _actions(
    raw: object, field: str, *, allowed: tuple[str, ...], payments_enabled: bool, default_currency: str,
    min_count: int = 0, max_count: int = MAX_ACTIONS,
) -> list[dict]:
    if not isinstance(raw, list):
        raise ValidationError(field, f"{field} must be an array")
    if not min_count <= len(raw) <= max_count:
        raise ValidationError(field, f"{field} must hold {min_count} to {max_count} actions")
    return [
        _action(item, f"{field}[{index}]", allowed=allowed, payments_enabled=payments_enabled,
                default_currency=default_currency)
        for index, item in enumerate(raw)
    ]


def _check_mixing(actions: list[dict], field: str) -> None:
    """reply and locationRequest actions go alone or together: never with another action type."""
    quick = [a for a in actions if a["type"] in QUICK_REPLY_TYPES]
    if quick and len(quick) != len(actions):
        other = next(i for i, a in enumerate(actions) if a["type"] not in QUICK_REPLY_TYPES)
        raise ValidationError(
            f"{field}[{other}]",
            f"{field}[{other}]: reply and locationRequest actions can only be sent alone or together, "
            f"not with {actions[other]['type']} actions",
        )


def _items(raw: object, *, payments_enabled: bool, default_currency: str) -> list[dict]:
    if not isinstance(raw, list):
        raise ValidationError("items", "items must be an array")
    if not 1 <= len(raw) <= MAX_ITEMS:
        raise ValidationError("items", f"items must hold 1 to {MAX_ITEMS} items")
    items = []
    for index, value in enumerate(raw):
        field = f"items[{index}]"
        item = _object(value, field)
        _reject_unknown(item, (*ITEM_FIELDS, "_id"), f"{field}.", "a message item")
        result: dict[str, Any] = {
            "_id": new_id(),
            "title": _string(item, "title", f"{field}.title", required=True, max_length=MAX_NAME_LENGTH),
        }
        _put(result, "description", _string(item, "description", f"{field}.description", max_length=2000))
        _put(result, "mediaUrl", _url(item, "mediaUrl", f"{field}.mediaUrl"))
        _put(result, "mediaType", _media_type(item, "mediaType", f"{field}.mediaType"))
        _put(result, "altText", _string(item, "altText", f"{field}.altText", max_length=MAX_NAME_LENGTH))
        _put(result, "size", _choice(item, "size", f"{field}.size", ITEM_SIZES))
        if item.get("actions") is None:
            raise ValidationError(
                f"{field}.actions", f"{field}.actions is required (1 to {MAX_ITEM_ACTIONS})"
            )
        result["actions"] = _actions(
            item["actions"], f"{field}.actions", allowed=ITEM_ACTION_TYPES, payments_enabled=payments_enabled,
            default_currency=default_currency, min_count=MIN_ITEM_ACTIONS, max_count=MAX_ITEM_ACTIONS,
        )
        items.append(result)
    return items


def _coordinates(value: object) -> dict:
    coordinates = _object(value, "coordinates")
    _reject_unknown(coordinates, ("lat", "long"), "coordinates.", "coordinates")
    result = {}
    for key, bound in (("lat", 90), ("long", 180)):
        number = coordinates.get(key)
        if number is None:
            raise ValidationError(
                f"coordinates.{key}", f"coordinates.{key} is required for location messages"
            )
        if isinstance(number, bool) or not isinstance(number, int | float) or not -bound <= number <= bound:
            raise ValidationError(
                f"coordinates.{key}", f"coordinates.{key} must be a number from -{bound} to {bound}"
            )
        result[key] = float(number)
    return result


def _destination(value: object, integration_id: str | None) -> None:
    destination = _object(value, "destination")
    _reject_unknown(destination, ("integrationId", "integrationType"), "destination.", "a destination")
    kind = destination.get("integrationType")
    if kind is not None and kind != "telegram":
        raise ValidationError(
            "destination.integrationType",
            "destination.integrationType must be telegram: it is the only channel",
        )
    target = destination.get("integrationId")
    if target is not None and integration_id is not None and target != integration_id:
        raise ValidationError(
            "destination.integrationId", "destination.integrationId is not an integration here"
        )


def validate_message_post(
    body: object, *, payments_enabled: bool, default_currency: str = "usd", integration_id: str | None = None
) -> dict:
    """Check a POST …/messages body by Smooch's rules and return the normalised appMaker message.

    The result has no _id/received/authorId (the caller adds them); actions and items get a new `_id`,
    buy actions `state: "offered"` and no `uri` (payments builds /checkout/{actionId}). Text shorthand is
    expanded. Accepted but not stored: `override` (other channels' raw payloads), `destination` (checked).
    Refused: role appUser, type form, share actions, unknown fields; limits are the MAX_* constants.
    """
    message = _object(body, "body")
    _reject_unknown(message, MESSAGE_POST_FIELDS, "", "a message")
    default_currency = currency_code(default_currency, "default_currency")
    role = message.get("role")
    if role is None:
        raise ValidationError("role", "role is required and must be appMaker")
    if role == "appUser":
        raise ValidationError(
            "role", "role appUser is not accepted: users' messages arrive from Telegram; post as appMaker"
        )
    if role != "appMaker":
        raise ValidationError("role", "role must be appMaker")
    kind = message.get("type")
    if kind == "form":
        raise ValidationError("type", "type form: form messages are not supported on Telegram")
    if kind is None:
        raise ValidationError("type", f"type is required (one of {', '.join(MESSAGE_TYPES)})")
    if kind not in MESSAGE_TYPES:
        raise ValidationError("type", f"type must be one of {', '.join(MESSAGE_TYPES)}")
    if message.get("fields") is not None:
        raise ValidationError("fields", "fields belong to form messages, which are not supported on Telegram")

    result: dict[str, Any] = {"role": "appMaker", "type": kind}
    text = _string(message, "text", "text", max_length=MAX_TEXT_LENGTH)
    media_url = _url(message, "mediaUrl", "mediaUrl")
    common = {"payments_enabled": payments_enabled, "default_currency": default_currency}
    actions = (
        _actions(message["actions"], "actions", allowed=ACTION_TYPES, **common)
        if message.get("actions") is not None else []
    )
    if text and kind in ("text", "image", "file"):
        text, shorthand, image_url = expand_shorthand(text, default_currency=default_currency)
        actions += [_action(raw, "text", allowed=ACTION_TYPES, **common) for raw in shorthand]
        if image_url is not None and media_url is None and kind in ("text", "image"):
            kind, media_url = "image", image_url
            result["type"] = kind
        if len(actions) > MAX_ACTIONS:
            raise ValidationError("actions", f"actions must hold at most {MAX_ACTIONS} actions")

    if kind == "text" and not text and not actions:
        raise ValidationError("text", "text is required for text messages unless actions are given")
    if kind in ("image", "file") and media_url is None:
        raise ValidationError("mediaUrl", f"mediaUrl is required for {kind} messages")
    if kind in ("carousel", "list"):
        if message.get("items") is None:
            raise ValidationError("items", f"items is required for {kind} messages (1 to {MAX_ITEMS})")
        result["items"] = _items(message["items"], **common)
    elif message.get("items") is not None:
        raise ValidationError("items", "items are only allowed on carousel and list messages")
    if kind == "location":
        if message.get("coordinates") is None:
            raise ValidationError("coordinates", "coordinates is required for location messages")
        result["coordinates"] = _coordinates(message["coordinates"])
        if message.get("location") is not None:
            place = _object(message["location"], "location")
            _reject_unknown(place, ("address", "name"), "location.", "a location")
            result["location"] = {
                key: value for key in ("name", "address")
                if (value := _string(place, key, f"location.{key}", max_length=MAX_NAME_LENGTH)) is not None
            }
    else:
        for key in ("coordinates", "location"):
            if message.get(key) is not None:
                raise ValidationError(key, f"{key} is only allowed on location messages")
    if media_url is not None and kind not in ("image", "file"):
        raise ValidationError("mediaUrl", "mediaUrl is only allowed on image and file messages")

    if actions:
        if kind in ("carousel", "location") and any(a["type"] not in QUICK_REPLY_TYPES for a in actions):
            raise ValidationError(
                "actions", f"{kind} messages take only reply and locationRequest actions at the top level"
            )
        _check_mixing(actions, "actions")
        result["actions"] = actions

    _put(result, "text", text or None)
    _put(result, "mediaUrl", media_url)
    _put(result, "mediaType", _media_type(message, "mediaType", "mediaType"))
    _put(result, "altText", _string(message, "altText", "altText", max_length=MAX_NAME_LENGTH))
    _put(result, "name", _string(message, "name", "name"))
    _put(result, "email", _string(message, "email", "email"))
    _put(result, "avatarUrl", _url(message, "avatarUrl", "avatarUrl"))
    _put(result, "payload", _payload(message, "payload", "payload", required=False))
    _put(result, "blockChatInput", _bool(message, "blockChatInput", "blockChatInput"))
    if message.get("metadata") is not None:
        result["metadata"] = _metadata(message["metadata"], "metadata")
    if message.get("displaySettings") is not None:
        settings = _object(message["displaySettings"], "displaySettings")
        _reject_unknown(settings, ("imageAspectRatio",), "displaySettings.", "displaySettings")
        ratio = _choice(settings, "imageAspectRatio", "displaySettings.imageAspectRatio", IMAGE_ASPECT_RATIOS)
        result["displaySettings"] = {"imageAspectRatio": ratio} if ratio else {}
    if message.get("destination") is not None:
        _destination(message["destination"], integration_id)
    if message.get("override") is not None:
        _object(message["override"], "override")
    return result


# ---------------------------------------------------------------------------------------------------------
# Webhooks, activity, integrations.


def _triggers(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValidationError("triggers", "triggers must be a non-empty array of trigger names")
    triggers: list[str] = []
    for index, trigger in enumerate(value):
        if not isinstance(trigger, str) or trigger not in ALL_WEBHOOK_TRIGGERS:
            shown = trigger if isinstance(trigger, str) and len(trigger) <= 64 else "value"
            raise ValidationError(f"triggers[{index}]", f"triggers[{index}]: unknown trigger {shown!r}")
        if trigger not in triggers:
            triggers.append(trigger)
    return triggers


def _webhook_fields(webhook: dict, *, create: bool) -> dict:
    result: dict[str, Any] = {}
    target = _url(webhook, "target", "target", required=create)
    _put(result, "target", target)
    if webhook.get("triggers") is not None:
        result["triggers"] = _triggers(webhook["triggers"])
    elif create:
        result["triggers"] = list(DEFAULT_WEBHOOK_TRIGGERS)
    for key in ("includeFullAppUser", "includeClient"):
        value = _bool(webhook, key, key)
        if value is not None or create:
            result[key] = bool(value)
    return result


def validate_webhook_create(body: object) -> dict:
    """POST /webhooks → {target, triggers (default ["message"]), includeFullAppUser, includeClient}.

    The MAX_WEBHOOKS limit needs the store, so the caller checks it.
    """
    webhook = _object(body, "body")
    _reject_unknown(webhook, WEBHOOK_FIELDS, "", "a webhook")
    return _webhook_fields(webhook, create=True)


def validate_webhook_update(body: object) -> dict:
    """PUT /webhooks/{id} → only the fields given (target, triggers, includeFullAppUser, includeClient)."""
    webhook = _object(body, "body")
    _reject_unknown(webhook, WEBHOOK_FIELDS, "", "a webhook")
    return _webhook_fields(webhook, create=False)


def validate_activity(body: object) -> dict:
    """POST …/conversation/activity → {role: appMaker, type: typing:start|typing:stop, name?, avatarUrl?}."""
    activity = _object(body, "body")
    _reject_unknown(activity, ACTIVITY_FIELDS, "", "a conversation activity")
    if activity.get("role") != "appMaker":
        raise ValidationError("role", "role must be appMaker")
    result = {
        "role": "appMaker",
        "type": _choice(activity, "type", "type", ACTIVITY_TYPES, required=True),
    }
    _put(result, "name", _string(activity, "name", "name"))
    _put(result, "avatarUrl", _url(activity, "avatarUrl", "avatarUrl"))
    return result


def validate_integration_create(body: object) -> dict:
    """POST /integrations → {type: "telegram", token, displayName?}. Errors never contain the token."""
    integration = _object(body, "body")
    kind = integration.get("type")
    if kind is None:
        raise ValidationError("type", "type is required and must be telegram")
    if kind != "telegram":
        raise ValidationError("type", "only telegram integrations exist here")
    for key in integration:
        if key not in INTEGRATION_CREATE_FIELDS:
            raise ValidationError(key, f"{key} is not a field of a telegram integration")
    token = integration.get("token")
    if token is None or token == "":
        raise ValidationError("token", "token is required: the bot token from BotFather")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _TELEGRAM_TOKEN.fullmatch(token):
        raise ValidationError("token", "token is not a Telegram bot token (digits, a colon, then the secret)")
    result = {"type": "telegram", "token": token}
    _put(result, "displayName", _string(integration, "displayName", "displayName"))
    return result


def webhook_matches(triggers: Iterable[str], trigger: str) -> bool:
    """Whether a webhook subscribed to `triggers` gets `trigger` ("*": all; "message": both message roles)."""
    triggers = tuple(triggers)
    if "*" in triggers or trigger in triggers:
        return True
    return "message" in triggers and trigger in ("message:appUser", "message:appMaker")


# ---------------------------------------------------------------------------------------------------------
# Objects in API responses and webhooks.


def iso_time(timestamp: float) -> str:
    """Unix seconds → ISO 8601 UTC with milliseconds and Z, as Smooch writes signedUpAt/lastSeen."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def display_name(user: Mapping) -> str:
    """"First Last", else "@username", else "Telegram user ID" for a store user dict (§4)."""
    full = " ".join(part for part in (user.get("given_name"), user.get("surname")) if part).strip()
    if full:
        return full
    if user.get("username"):
        return f"@{user['username']}"
    return f"Telegram user {user.get('telegram_user_id')}"


def client_id(app_user_id: str) -> str:
    """The stable id of an app user's one Telegram client (24 hex, derived from the app user id)."""
    return hashlib.sha256(f"telegram-client:{app_user_id}".encode()).hexdigest()[:24]


def _without_none(values: Mapping) -> dict:
    return {key: value for key, value in values.items() if value is not None}


def app_user_object(user: Mapping, *, full: bool, integration_id: str | None = None) -> dict:
    """A store user dict (§4) → Smooch appUser: truncated {_id, conversationStarted} or the full object.

    The Telegram client carries both `id` (what Smooch's docs and the official client read) and `_id`.
    """
    started = bool(user.get("conversation_started"))
    if not full:
        return {"_id": user["_id"], "conversationStarted": started}
    blocked = bool(user.get("blocked"))
    telegram_id = user.get("telegram_user_id")
    cid = client_id(user["_id"])
    client = _without_none({
        "id": cid,
        "_id": cid,
        "platform": "telegram",
        "integrationId": integration_id,
        "displayName": display_name(user),
        "externalId": str(telegram_id) if telegram_id is not None else None,
        "active": not blocked,
        "status": "blocked" if blocked else "active",
        "lastSeen": iso_time(user["last_seen"]) if user.get("last_seen") else None,
        "info": _without_none({"username": user.get("username")}),
        "raw": _without_none({
            "id": telegram_id,
            "first_name": user.get("given_name"),
            "last_name": user.get("surname"),
            "username": user.get("username"),
            "language_code": user.get("language_code"),
        }),
    })
    return _without_none({
        "_id": user["_id"],
        "givenName": user.get("given_name"),
        "surname": user.get("surname"),
        "signedUpAt": iso_time(user["signed_up_at"]) if user.get("signed_up_at") is not None else None,
        "conversationStarted": started,
        "properties": dict(user.get("properties") or {}),
        "clients": [client],
    })


MEDIA_KINDS_IMAGE = ("photo", "sticker")
MEDIA_KINDS_FILE = ("document", "audio", "voice", "video", "video_note", "animation")


def location_text(latitude: float, longitude: float) -> str:
    """The text Smooch gives a shared location."""
    return f"Location shared:\nhttps://maps.google.com/maps?q={latitude},{longitude}"


def _source(extras: Mapping) -> dict:
    source: dict[str, Any] = {"type": "telegram"}
    if extras.get("message_id") is not None:
        source["originalMessageId"] = str(extras["message_id"])
    if extras.get("date") is not None:
        source["originalMessageTimestamp"] = float(extras["date"])
    return source


def _user_message(message_id: str, app_user: Mapping, received: float, extras: Mapping) -> dict:
    return {
        "_id": message_id,
        "role": "appUser",
        "authorId": app_user["_id"],
        "name": display_name(app_user),
        "received": received,
        "source": _source(extras),
    }


def appuser_message(
    extras: Mapping, *, message_id: str, app_user: Mapping, media_url: str | None, received: float
) -> dict:
    """Telegram extras (§1) and the store user → a Smooch appUser message.

    text/start → text; photo, sticker → image; document, audio, voice, video, video_note, animation → file
    with mediaUrl, mediaType, mediaSize (bytes) and the file's name in `metadata.fileName` (Smooch's `name`
    is the author's name and `text` is the caption, so the file name has no other place); location →
    location with Smooch's "Location shared" text (a venue's "title, address" as the first line, and
    `location` {name, address}); contact → text with the name and phone (also in metadata). The caption is
    `text`. Fields without a value are left out (never null). A callback is a postback: ValueError.
    """
    kind = extras.get("kind")
    message = _user_message(message_id, app_user, received, extras)
    caption = extras.get("text") or None
    file = extras.get("file") or {}
    if kind in ("text", "start"):
        message.update(type="text", text=caption or "")
    elif kind in MEDIA_KINDS_IMAGE or kind in MEDIA_KINDS_FILE:
        message["type"] = "image" if kind in MEDIA_KINDS_IMAGE else "file"
        _put(message, "text", caption)
        _put(message, "mediaUrl", media_url)
        _put(message, "mediaType", file.get("mime_type"))
        if message["type"] == "file":
            _put(message, "mediaSize", file.get("size"))
            if file.get("name"):
                message["metadata"] = {"fileName": file["name"]}
        if kind == "sticker" and file.get("emoji"):
            message["altText"] = file["emoji"]
    elif kind in ("location", "venue"):
        place = extras.get("location") or {}
        latitude, longitude = place["latitude"], place["longitude"]
        text = location_text(latitude, longitude)
        venue = ", ".join(part for part in (place.get("title"), place.get("address")) if part)
        message.update(
            type="location", text=f"{venue}\n{text}" if venue else text,
            coordinates={"lat": float(latitude), "long": float(longitude)},
        )
        if venue:
            message["location"] = _without_none({"name": place.get("title"), "address": place.get("address")})
    elif kind == "contact":
        contact = extras.get("contact") or {}
        name = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p)
        phone = contact.get("phone_number") or ""
        message.update(type="text", text="\n".join(p for p in ("Contact shared:", name, phone) if p))
        message["metadata"] = _without_none({
            "contactName": name or None,
            "contactPhoneNumber": phone or None,
            "contactUserId": contact.get("user_id"),
        })
    elif kind == "callback":
        raise ValueError("a callback is a postback, not a message")
    else:
        message.update(type="text", text=caption or "")
    return message


def big_file_alert(
    extras: Mapping, *, message_id: str, app_user: Mapping, received: float, limit: int
) -> dict:
    """The message:appUser sent when a user's file is over Telegram's bot download limit (`limit` bytes).

    A text message (no mediaUrl: the file cannot be fetched) reading
    "[file too large to relay] NAME (SIZE MB): Telegram bots cannot download files over LIMIT MB", with
    metadata {"alert": "file_too_large", "fileName", "mediaType", "mediaSize" (bytes), "limit" (bytes),
    "reason"}; fileName/mediaType/mediaSize are left out when Telegram did not give them.
    """
    file = extras.get("file") or {}
    name = file.get("name") or f"{extras.get('kind') or 'file'} file"
    size = file.get("size")
    limit_mb = f"{limit / 2**20:g}"
    reason = f"Telegram bots cannot download files over {limit_mb} MB"
    shown_size = f" ({size / 2**20:.1f} MB)" if isinstance(size, int | float) else ""
    text = f"[file too large to relay] {name}{shown_size}: {reason}"
    if extras.get("text"):
        text += f"\n{extras['text']}"
    message = _user_message(message_id, app_user, received, extras)
    message.update(type="text", text=text)
    message["metadata"] = _without_none({
        "alert": "file_too_large",
        "fileName": file.get("name"),
        "mediaType": file.get("mime_type"),
        "mediaSize": size,
        "limit": limit,
        "reason": reason,
    })
    return message


def webhook_payload(
    trigger: str, *, app_id: str, app_user: Mapping, conversation_id: str, timestamp: float | None = None,
    **fields: Any,
) -> dict:
    """A v1.1 webhook body: trigger, app {_id}, appUser (as given), conversation {_id}, version, timestamp.

    Then `fields`, less those whose value is None.
    """
    payload = {
        "trigger": trigger,
        "app": {"_id": app_id},
        "appUser": dict(app_user),
        "conversation": {"_id": conversation_id},
        "version": API_VERSION,
        "timestamp": time.time() if timestamp is None else timestamp,
    }
    payload.update(_without_none(fields))
    return payload


def postback_entry(action: Mapping, message: Mapping | None = None) -> dict:
    """One element of a postback webhook's `postbacks`: {message (if known), action}."""
    entry: dict[str, Any] = {}
    if message is not None:
        entry["message"] = dict(message)
    entry["action"] = dict(action)
    return entry


def delivery_error_code(backend_code: str) -> str:
    """The Smooch-style code for a backend send error.

    | backend        | webhook error.code        | meaning                                      |
    |----------------|---------------------------|----------------------------------------------|
    | blocked        | user_blocked              | the user blocked the bot or was deactivated  |
    | chat_not_found | user_not_found            | Telegram has no chat with this user          |
    | bad_request    | bad_request               | Telegram refused the message (media, markup) |
    | unavailable    | channel_unavailable       | Telegram down or rate limiting; gave up      |
    | not_connected  | integration_not_connected | no bot token, or the token was revoked       |
    Any other code is passed through unchanged.
    """
    return DELIVERY_ERROR_CODES.get(backend_code, backend_code)


DELIVERY_ERROR_MESSAGES = {
    "user_blocked": "The user blocked the bot, or the account was deactivated.",
    "user_not_found": "Telegram has no chat with this user.",
    "bad_request": "Telegram refused the message.",
    "channel_unavailable": "Telegram could not be reached; the relay gave up retrying.",
    "integration_not_connected": "The Telegram bot has no valid token.",
}


def delivery_channel_event(message: Mapping) -> dict:
    """Webhook fields of message:delivery:channel (Telegram took it). Final: bots get no read receipts."""
    return {"message": {"_id": message["_id"]}, "destination": {"type": "telegram"}, "isFinalEvent": True}


def delivery_failure_event(
    message: Mapping, error_code: str, underlying: Mapping | str | None = None, *, is_final_event: bool = True
) -> dict:
    """Webhook fields of message:delivery:failure: error {code (see delivery_error_code), message,
    underlyingError? (Telegram's own description)}, with the truncated message and destination telegram.
    """
    code = delivery_error_code(error_code)
    error: dict[str, Any] = {"code": code, "message": DELIVERY_ERROR_MESSAGES.get(code, "Delivery failed.")}
    if isinstance(underlying, str):
        if underlying:
            error["underlyingError"] = {"message": underlying}
    elif underlying is not None:
        error["underlyingError"] = dict(underlying)
    return {
        "message": {"_id": message["_id"]},
        "destination": {"type": "telegram"},
        "isFinalEvent": is_final_event,
        "error": error,
    }


def _conversation(conversation_id: str, unread_count: int) -> dict:
    return {"_id": conversation_id, "unreadCount": unread_count}


def clean_message(message: Mapping) -> dict:
    """A stored message as the API shows it: None values dropped (the official client refuses null)."""
    return _without_none(message)


def message_response(
    message: Mapping, conversation_id: str, unread_count: int = 0, extra_messages: list[Mapping] | None = None
) -> dict:
    """The POST …/messages answer (MessageResponse): {message, extraMessages?, conversation}."""
    response: dict[str, Any] = {"message": clean_message(message)}
    if extra_messages:
        response["extraMessages"] = [clean_message(m) for m in extra_messages]
    response["conversation"] = _conversation(conversation_id, unread_count)
    return response


def messages_page(
    messages: Iterable[Mapping], conversation: str | Mapping, *, next_url: str | None = None,
    previous_url: str | None = None, unread_count: int = 0,
) -> dict:
    """The GET …/messages answer (GetMessagesResponse): {conversation, messages, next?, previous?}.

    `conversation` is the conversation id, or a store user dict (its conversation_id is used).
    """
    conversation_id = conversation if isinstance(conversation, str) else conversation["conversation_id"]
    page: dict[str, Any] = {
        "conversation": _conversation(conversation_id, unread_count),
        "messages": [clean_message(m) for m in messages],
    }
    _put(page, "next", next_url)
    _put(page, "previous", previous_url)
    return page


def _attribute(source: object, *names: str) -> Any:
    for name in names:
        if isinstance(source, Mapping):
            if name in source:
                return source[name]
        elif hasattr(source, name):
            return getattr(source, name)
    return None


def webhook_object(webhook: object, include_secret: bool = True) -> dict:
    """A store Webhook (dataclass or dict) → Smooch's Webhook {_id, target, triggers, secret?, version, …}."""
    result = {
        "_id": _attribute(webhook, "id", "_id"),
        "target": _attribute(webhook, "target"),
        "triggers": list(_attribute(webhook, "triggers") or []),
        "version": API_VERSION,
        "includeClient": bool(_attribute(webhook, "include_client", "includeClient")),
        "includeFullAppUser": bool(_attribute(webhook, "include_full_app_user", "includeFullAppUser")),
    }
    if include_secret:
        result["secret"] = _attribute(webhook, "secret")
    return result


def integration_object(
    integration_id: str, *, status: str, username: str | None = None, error: str | None = None,
    display_name: str | None = None,
) -> dict:
    """Smooch's Integration for the bot: {_id, type, status (active|inactive|error), username?, error?}."""
    if status not in ("active", "inactive", "error"):
        raise ValueError(f"integration status {status!r} is not active, inactive or error")
    return _without_none({
        "_id": integration_id,
        "type": "telegram",
        "status": status,
        "username": username,
        "displayName": display_name,
        "error": error,
    })


# ---------------------------------------------------------------------------------------------------------
# Outgoing text and quick replies.

_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|\[(?P<label>[^\]\n]+)\]\((?P<href>https?://[^\s()<>\"]+)\)"
    r"|(?P<url>https?://[^\s<>\"]+)"
    r"|(?<![\w*])\*(?=\S)(?P<bold>[^*\n]*?\S)\*(?![\w*])"
    r"|(?<![\w_])_(?=\S)(?P<italic>[^_\n]*?\S)_(?![\w_])"
    r"|(?<![\w~])~(?=\S)(?P<strike>[^~\n]*?\S)~(?![\w~])"
)
_TRAILING_URL_PUNCTUATION = ".,;:!?)'"


def _link(href: str, label: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(label, quote=False)}</a>'


def telegram_html(text: str) -> str:
    """Smooch markup → Telegram HTML: *bold* <b>, _italic_ <i>, ~strike~ <s>, `code` <code>, [label](url) and
    bare http(s) links <a>; everything else escaped. Tags are emitted in pairs: the output is always balanced.
    """
    parts: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        parts.append(html.escape(text[position:match.start()], quote=False))
        position = match.end()
        if match.group("code"):
            parts.append(f"<code>{html.escape(match.group('code')[1:-1], quote=False)}</code>")
        elif match.group("href"):
            parts.append(_link(match.group("href"), match.group("label")))
        elif match.group("url"):
            url = match.group("url")
            trimmed = url.rstrip(_TRAILING_URL_PUNCTUATION)
            if not is_http_url(trimmed):
                parts.append(html.escape(url, quote=False))
                continue
            parts.append(_link(trimmed, trimmed) + html.escape(url[len(trimmed):], quote=False))
        else:
            for group, tag in (("bold", "b"), ("italic", "i"), ("strike", "s")):
                if match.group(group) is not None:
                    parts.append(f"<{tag}>{telegram_html(match.group(group))}</{tag}>")
    parts.append(html.escape(text[position:], quote=False))
    return "".join(parts)


def action_for_reply_text(actions: Iterable[Mapping] | None, text: str) -> dict | None:
    """The reply action whose label is the user's text (a tapped quick reply): exact, then casefolded."""
    replies = [a for a in actions or () if a.get("type") == "reply" and isinstance(a.get("text"), str)]
    wanted = (text or "").strip()
    for action in replies:
        if action["text"].strip() == wanted:
            return dict(action)
    for action in replies:
        if action["text"].strip().casefold() == wanted.casefold():
            return dict(action)
    return None
