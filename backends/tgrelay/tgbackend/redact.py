"""Keeps bot tokens out of logs and exception texts: a registry of secrets and a logging filter."""

from __future__ import annotations

import logging
import re
import threading

MASK = "<redacted-token>"
_LOCK = threading.Lock()
_SECRETS: tuple[str, ...] = ()
_installed_factory = False
# Anything shaped like a bot token (bot id, colon, 30+ url-safe chars), even one we were never told about,
# e.g. a mistyped token an admin sent: Telegram's own tokens have 35 characters after the colon.
TOKEN_SHAPE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")


def register_secret(secret: str | None) -> None:
    """Remember a token (current or previous) so every later log line and error text masks it."""
    global _SECRETS
    if not secret or len(secret) < 6:
        return
    with _LOCK:
        if secret not in _SECRETS:
            # Longest first so a token that contains another is masked whole.
            _SECRETS = tuple(sorted((*_SECRETS, secret), key=len, reverse=True))


def redact(text: object) -> str:
    """Return str(text) with every registered token, and anything shaped like a bot token, masked."""
    result = str(text)
    for secret in _SECRETS:
        if secret in result:
            result = result.replace(secret, MASK)
    if ":" in result:
        result = TOKEN_SHAPE.sub(MASK, result)
    return result


class RedactingFilter(logging.Filter):
    """A handler filter that masks tokens in the message, its args and the exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_record(record)
        return True


def _scrub_record(record: logging.LogRecord) -> None:
    if getattr(record, "_tgrelay_scrubbed", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep the raw parts, masked
        message = f"{record.msg} {record.args}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info:
        formatter = logging.Formatter()
        record.exc_text = redact(formatter.formatException(record.exc_info))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._tgrelay_scrubbed = True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Mask tokens in every log record: a record factory (all handlers, present and future) plus
    a filter on the root logger's handlers; also silence httpx/httpcore request logs that carry URLs."""
    global _installed_factory
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    with _LOCK:
        if _installed_factory:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed_factory = True
