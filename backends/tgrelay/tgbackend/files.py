"""Streaming a customer's file out of Telegram without ever exposing the tokenised download URL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
from telegram.error import BadRequest

from tgbackend.client import TelegramClient, translate
from tgbackend.errors import FileGoneError, FileTooBigError, TelegramError

log = logging.getLogger("errbot.backends.tgrelay.files")
FILE_SIZE_LIMIT = 20 * 1024 * 1024
CHUNK_SIZE = 64 * 1024


class FileStream:
    """An open download: size (bytes or None), iter_chunks(), close(). Use it as a context manager."""

    def __init__(self, response: httpx.Response, size: int | None) -> None:
        self._response = response
        self.size = size

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the file's bytes; a broken download raises TelegramError (no URL in the text)."""
        try:
            yield from self._response.iter_bytes(chunk_size)
        except httpx.HTTPError as exc:
            raise TelegramError(f"the download from Telegram broke off: {type(exc).__name__}") from None
        finally:
            self.close()

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> FileStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_file(
    client: TelegramClient, http: httpx.Client, file_id: str, limit: int = FILE_SIZE_LIMIT
) -> FileStream:
    """getFile, then GET the file with streaming. Raises FileTooBigError, FileGoneError or TelegramError."""
    try:
        telegram_file = client.call(lambda bot: bot.get_file(file_id), attempts=3)
    except TelegramError as exc:
        cause = str(exc).lower()
        if "too big" in cause:
            raise FileTooBigError(f"the file is over Telegram's {limit // 2**20} MB download limit") from None
        if exc.permanent:
            raise FileGoneError("Telegram no longer has this file (unknown or expired file_id)") from None
        raise
    except BadRequest as exc:  # defensive: call() already maps these
        raise translate(exc) from None
    size = telegram_file.file_size
    if size is not None and size > limit:
        raise FileTooBigError(
            f"the file has {size} bytes, over Telegram's {limit // 2**20} MB download limit"
        )
    if not telegram_file.file_path:
        raise FileGoneError("Telegram gave no download path for this file")
    request = http.build_request("GET", telegram_file.file_path)
    try:
        response = http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise TelegramError(f"could not download the file from Telegram: {type(exc).__name__}") from None
    if response.status_code == 404:
        response.close()
        raise FileGoneError("Telegram no longer has this file (404 on download)")
    if response.status_code >= 400:
        response.close()
        raise TelegramError(f"Telegram answered {response.status_code} to the file download")
    length = response.headers.get("content-length")
    if size is None and length and length.isdigit():
        size = int(length)
    return FileStream(response, size)
