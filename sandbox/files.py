"""Files known to the sandbox (user-sent and bot-sent): ids, paths, bytes, and fetching media by HTTP URL."""

from __future__ import annotations

import itertools
import mimetypes
import secrets
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

from sandbox.apierror import bad_request

DOWNLOAD_LIMIT = 20 * 1024 * 1024
FETCH_TIMEOUT = 5.0
FOLDERS = {"photo": "photos", "document": "documents", "audio": "music", "voice": "voice", "video": "videos",
           "video_note": "video_notes", "animation": "animations", "sticker": "stickers", "thumbnail": "thumbnails"}
ID_PREFIX = {"photo": "AgAC", "document": "BQAC", "audio": "CQAC", "voice": "AwAC", "video": "BAAC",
             "video_note": "DQAC", "animation": "CgAC", "sticker": "CAAC", "thumbnail": "AAMC"}


@dataclass(frozen=True)
class StoredFile:
    """One file: its ids, kind, size, path for download, and bytes (None for simulated big files)."""

    file_id: str
    file_unique_id: str
    kind: str
    size: int
    file_path: str
    data: bytes | None
    mime_type: str | None
    file_name: str | None


class FileStore:
    """Thread-safe registry of files by file_id and by file_path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._numbers = itertools.count(1)

    def add(self, kind: str, data: bytes | None, *, size: int | None = None, mime_type: str | None = None,
            file_name: str | None = None) -> StoredFile:
        """Register bytes (or only a size, for big files) and return the new file."""
        number = next(self._numbers)
        ext = _extension(file_name, mime_type, kind)
        stored = StoredFile(
            file_id=ID_PREFIX.get(kind, "BQAC") + "AgIAAxkBAA" + secrets.token_urlsafe(30),
            file_unique_id="AgAD" + secrets.token_urlsafe(9),
            kind=kind,
            size=len(data) if data is not None else int(size or 0),
            file_path=f"{FOLDERS.get(kind, 'documents')}/file_{number}{ext}",
            data=data,
            mime_type=mime_type,
            file_name=file_name,
        )
        with self._lock:
            self._by_id[stored.file_id] = stored
            self._by_path[stored.file_path] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """The file with this file_id, if known."""
        with self._lock:
            return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        """The file served at this file_path, if known."""
        with self._lock:
            return self._by_path.get(file_path)


def _extension(file_name: str | None, mime_type: str | None, kind: str) -> str:
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[1][:10]
    if kind == "photo":
        return ".jpg"
    if kind == "voice":
        return ".oga"
    if kind == "sticker":
        return ".webp"
    if kind in ("video", "video_note", "animation"):
        return ".mp4"
    return (mimetypes.guess_extension(mime_type) if mime_type else None) or ""


def fetch_url(url: str, limit: int, timeout: float = FETCH_TIMEOUT) -> tuple[bytes, str]:
    """GET a media URL as Telegram does: (bytes, content type); any failure, non-2xx or over limit → 400."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "TelegramBot (like TwitterBot)"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise bad_request("failed to get HTTP URL content")
            data = response.read(limit + 1)
            content_type = response.headers.get_content_type()
    except (urllib.error.URLError, OSError, ValueError):
        raise bad_request("failed to get HTTP URL content") from None
    if len(data) > limit:
        raise bad_request("failed to get HTTP URL content")
    return data, content_type
