"""Signed, expiring file links: the business gets a URL of ours, never Telegram's tokenised one.

A link carries, signed with HMAC-SHA256 under a secret kept in the relay's database, the Telegram file id,
the app user it belongs to, the file's type, name and size, and an expiry. Changing any byte makes it a 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Response

from tgbackend.errors import FileGoneError, FileTooBigError, TelegramError

_NAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class LinkRefused(Exception):
    """The link was forged, altered or has expired: answer 403."""


@dataclass(frozen=True)
class FileRef:
    """What a verified link points at."""

    file_id: str
    app_user_id: str
    mime_type: str
    name: str
    size: int | None
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FileLinks:
    """Issues and verifies file links under `{public_url}/files/`."""

    def __init__(self, secret: str, public_url: str, ttl: int) -> None:
        self._key = hashlib.sha256(b"relay-file-links:" + secret.encode()).digest()
        self._base = public_url.rstrip("/") + "/files/"
        self._ttl = ttl

    def link(self, *, file_id: str, app_user_id: str, mime_type: str, name: str, size: int | None,
             now: float | None = None) -> str:
        """A URL that streams this user's file until the link expires (RELAY_FILE_LINK_TTL)."""
        expires = int((now if now is not None else time.time()) + self._ttl)
        claims = {"f": file_id, "u": app_user_id, "t": mime_type, "n": name, "s": size, "e": expires}
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signature = _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())
        display = _NAME_SAFE.sub("_", name).strip("._") or "file"
        return f"{self._base}{body}.{signature}/{quote(display)}"

    def verify(self, token: str, now: float | None = None) -> FileRef:
        """Check signature and expiry; raise LinkRefused for anything forged, altered or expired."""
        body, _, signature = token.partition(".")
        if not body or not signature:
            raise LinkRefused("malformed link")
        expected = _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise LinkRefused("bad signature")
        try:
            claims = json.loads(_unb64(body))
            ref = FileRef(
                file_id=str(claims["f"]), app_user_id=str(claims["u"]), mime_type=str(claims["t"]),
                name=str(claims["n"]), size=claims["s"], expires_at=int(claims["e"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LinkRefused("malformed link") from exc
        if ref.expires_at < (now if now is not None else time.time()):
            raise LinkRefused("expired link")
        return ref


def serve_file(links: FileLinks, open_file: Callable[[str], Any], token: str) -> Response:
    """Answer a file link: verify it, then stream the file from Telegram without buffering it whole."""
    try:
        ref = links.verify(token)
    except LinkRefused:
        return _error(403, "forbidden", "This file link is invalid or has expired. Ask for the message again.")
    try:
        stream = open_file(ref.file_id)
    except FileTooBigError:
        return _error(413, "file_too_large", "Telegram does not let bots download files over 20 MB.")
    except FileGoneError:
        return _error(404, "not_found", "Telegram no longer has this file.")
    except TelegramError:
        return _error(502, "channel_error", "Telegram could not be reached for this file; retry later.")

    def chunks() -> Iterator[bytes]:
        try:
            yield from stream.iter_chunks()
        finally:
            stream.close()

    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(ref.name)}",
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
    }
    size = getattr(stream, "size", None)
    if size is not None:
        headers["Content-Length"] = str(size)
    return Response(chunks(), status=200, mimetype=ref.mime_type, headers=headers, direct_passthrough=True)


def _error(status: int, code: str, description: str) -> Response:
    return Response(json.dumps({"error": {"code": code, "description": description}}), status=status,
                    mimetype="application/json")
