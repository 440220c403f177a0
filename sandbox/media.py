"""Resolving the media of send* calls: an upload, a known file_id, or an http(s) URL the sandbox fetches."""

from __future__ import annotations

import struct

from sandbox.apierror import ApiError, bad_request
from sandbox.files import DOWNLOAD_LIMIT, FileStore, StoredFile, fetch_url
from sandbox.params import Upload

PHOTO_UPLOAD_LIMIT = 10 * 1024 * 1024
PHOTO_URL_LIMIT = 5 * 1024 * 1024
UPLOAD_LIMIT = 50 * 1024 * 1024
KIND_NAMES = {"photo": "Photo", "document": "Document", "audio": "Audio", "voice": "Voice", "video": "Video",
              "video_note": "VideoNote", "animation": "Animation", "sticker": "Sticker"}
DEFAULT_MIME = {"photo": "image/jpeg", "voice": "audio/ogg", "video": "video/mp4", "animation": "video/mp4",
                "video_note": "video/mp4", "audio": "audio/mpeg", "sticker": "image/webp"}


def resolve(files: FileStore, kind: str, value: object, uploads: dict[str, Upload]) -> StoredFile:
    """The file a send call refers to; 400 (or 413) exactly where Telegram refuses it."""
    upload = uploads.get(kind)
    if upload is None and isinstance(value, str) and value.startswith("attach://"):
        upload = uploads.get(value[len("attach://"):])
        if upload is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
    if upload is not None:
        return _store_upload(files, kind, upload.data, upload.content_type, upload.filename)
    if value is None or value == "":
        raise bad_request(f"there is no {kind} in the request")
    if not isinstance(value, str):
        raise bad_request("wrong file identifier/HTTP URL specified")
    if value.lower().startswith(("http://", "https://")):
        data, content_type = fetch_url(value, PHOTO_URL_LIMIT if kind == "photo" else DOWNLOAD_LIMIT)
        if kind == "photo" and not content_type.startswith("image/"):
            raise bad_request("wrong type of the web page content")
        name = value.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or None
        return _store_upload(files, kind, data, content_type, name)
    stored = files.get(value.strip())
    if stored is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    if stored.kind != kind and not (kind == "document" and stored.kind == "animation"):
        raise bad_request(f"can't use file of type {KIND_NAMES.get(stored.kind, 'Document')} "
                          f"as {KIND_NAMES[kind]}")
    return stored


def _store_upload(files: FileStore, kind: str, data: bytes, content_type: str | None,
                  filename: str | None) -> StoredFile:
    if not data:
        raise bad_request("file must be non-empty")
    if len(data) > UPLOAD_LIMIT:
        raise ApiError(413, "Request Entity Too Large")
    if kind == "photo" and len(data) > PHOTO_UPLOAD_LIMIT:
        raise bad_request("PHOTO_SAVE_FILE_INVALID")
    mime = content_type if content_type and content_type != "application/octet-stream" else None
    return files.add(kind, data, mime_type=mime or DEFAULT_MIME.get(kind, content_type),
                     file_name=filename if kind in ("document", "audio", "video", "animation") else None)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, GIF or JPEG (800x600 when it cannot tell)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                break
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            i += 2 + length
    return 800, 600
