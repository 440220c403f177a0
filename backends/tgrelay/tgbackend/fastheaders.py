"""A cheaper HTTP response-header parser for the send pool's urllib3 connections.

http.client parses every response's headers with the email package (FeedParser): ~0.15-0.2 ms per
Telegram answer, ~8 % of the bot's CPU under send load (py-spy). Plain `Name: value` lines give the same
HTTPMessage here (same names, values, order and payload); anything else (folded or malformed lines, a
"From " line, a bare CR) goes to http.client's own parser unchanged. Only connections made by
`use_fast_headers(pool_manager)` are affected; nothing global is patched.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import types
from typing import Any

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_SIMPLE = re.compile(rb"([!-9;-~]+):[ \t]*([^\r\n]*?)\r?\n")
_END = (b"\r\n", b"\n", b"")


def parse_headers(fp: Any, _class: type = http.client.HTTPMessage) -> http.client.HTTPMessage:
    """http.client.parse_headers, without the email parser for plain header lines."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # limits: line length, count
    message = _class()
    for line in lines:
        if line in _END:
            break
        match = _SIMPLE.fullmatch(line)
        if match is None or line.startswith(b"From "):
            text = b"".join(lines).decode("iso-8859-1")
            return email.parser.Parser(_class=_class).parsestr(text)
        message.set_raw(match[1].decode("iso-8859-1"), match[2].decode("iso-8859-1"))
    message.set_payload("")
    return message


class FastHeadersResponse(http.client.HTTPResponse):
    """http.client.HTTPResponse whose begin() uses the parse_headers above."""

    begin = types.FunctionType(
        http.client.HTTPResponse.begin.__code__,
        {**vars(http.client), "parse_headers": parse_headers},
        "begin",
        http.client.HTTPResponse.begin.__defaults__,
        http.client.HTTPResponse.begin.__closure__,
    )


class _Connection(urllib3.connection.HTTPConnection):
    response_class = FastHeadersResponse


class _SecureConnection(urllib3.connection.HTTPSConnection):
    response_class = FastHeadersResponse


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _SecurePool(HTTPSConnectionPool):
    ConnectionCls = _SecureConnection


def use_fast_headers(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """Make the manager's (future) pools parse response headers with parse_headers above."""
    manager.pool_classes_by_scheme = {"http": _Pool, "https": _SecurePool}
    return manager
