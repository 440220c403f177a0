"""Decoding Bot API request bodies (form, JSON, multipart) into typed parameters, as Telegram reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from sandbox.apierror import bad_request

INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "duration", "width", "height", "length",
              "cache_time", "max_connections", "reply_to_message_id", "message_thread_id", "from_chat_id",
              "live_period", "heading", "proximity_alert_radius", "user_id"}
FLOAT_FIELDS = {"latitude", "longitude", "horizontal_accuracy"}
BOOL_FIELDS = {"disable_notification", "protect_content", "show_alert", "drop_pending_updates",
               "disable_web_page_preview", "allow_sending_without_reply", "supports_streaming",
               "has_spoiler", "disable_content_type_detection", "allow_paid_broadcast", "show_caption_above_media"}
JSON_FIELDS = {"reply_markup", "allowed_updates", "commands", "entities", "caption_entities", "scope",
               "reply_parameters", "link_preview_options", "media"}


@dataclass
class Upload:
    """A file part of a multipart request."""

    field: str
    filename: str
    content_type: str
    data: bytes


def read_body(content_type: str, body: bytes) -> tuple[dict, dict[str, Upload]]:
    """Split a request body into raw fields and uploaded files according to its Content-Type."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}, {}
    if kind == "application/json":
        try:
            value = json.loads(body)
        except ValueError:
            raise bad_request("can't parse JSON encoded request parameters") from None
        if not isinstance(value, dict):
            raise bad_request("can't parse JSON encoded request parameters")
        return value, {}
    if kind == "multipart/form-data":
        return _multipart(content_type, body)
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)), {}
    except UnicodeDecodeError:
        raise bad_request("request parameters must be encoded in UTF-8") from None


def _multipart(content_type: str, body: bytes) -> tuple[dict, dict[str, Upload]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise bad_request("can't parse multipart/form-data request")
    fields: dict = {}
    files: dict[str, Upload] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = Upload(name, filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode(part.get_content_charset() or "utf-8", errors="replace")
    return fields, files


def decode_params(raw: dict) -> dict:
    """Convert known fields to their types (form values of non-strings are JSON-encoded); keep the rest."""
    out = {}
    for key, value in raw.items():
        out[key] = _decode(key, value) if isinstance(value, str) else value
    return out


def _decode(key: str, value: str) -> object:
    try:
        if key in INT_FIELDS:
            return int(value.strip())
        if key in FLOAT_FIELDS:
            return float(value)
        if key in BOOL_FIELDS:
            return {"true": True, "false": False, "1": True, "0": False}.get(value.strip().lower(), value)
        if key in JSON_FIELDS:
            return json.loads(value)
    except ValueError:
        return value
    return value


def get_int(params: dict, name: str, default: int | None = None) -> int | None:
    """An integer parameter, or default when absent; 400 when it is not an integer."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad_request(f"invalid {name} specified")
    return value


def get_float(params: dict, name: str) -> float:
    """A required float parameter."""
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"invalid {name} specified" if value is not None else f"{name} is empty")
    return float(value)


def get_bool(params: dict, name: str) -> bool:
    """A boolean parameter; absent is False."""
    return params.get(name) is True


def get_str(params: dict, name: str) -> str | None:
    """A string parameter (numbers are accepted as their text, as Telegram does)."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise bad_request(f"field \"{name}\" must be of type String")
    return value


def get_json(params: dict, name: str) -> object:
    """A JSON-typed parameter (reply_markup etc.); 400 if it came as text that is not JSON."""
    value = params.get(name)
    if isinstance(value, str):
        if name == "reply_markup":
            raise bad_request("can't parse reply keyboard markup JSON object")
        raise bad_request(f"can't parse {name} JSON object")
    return value
