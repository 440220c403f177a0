"""The send pool's response-header parser gives what http.client's email-based one gives."""

from __future__ import annotations

import http.client
import io

import pytest

from tgbackend.fastheaders import FastHeadersResponse, parse_headers, use_fast_headers

CASES = [
    b"Server: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\nSet-Cookie: a=1\r\n"
    b"Set-Cookie: b=2\r\nX-Empty:\r\nX-Spaces:   v  \r\n\r\nbody",
    b"A: 1\r\n folded\r\n\r\n",
    b"bad line\r\nA: b\r\n\r\n",
    b"A : b\r\n\r\n",
    b"From someone\r\n\r\n",
    b"A: b\n\n",
    b"A: b\rC: d\r\n\r\n",
    b"A: caf\xe9\r\n\r\n",
    b"A: b\r\n",
    b"",
]


def _state(message: http.client.HTTPMessage) -> dict:
    state = {key: value for key, value in vars(message).items() if key not in ("policy", "defects")}
    state["defects"] = [type(defect) for defect in message.defects]
    return state


@pytest.mark.parametrize("raw", CASES)
def test_same_message_as_http_client(raw):
    ours = parse_headers(io.BytesIO(raw))
    theirs = http.client.parse_headers(io.BytesIO(raw))
    assert type(ours) is type(theirs)
    assert _state(ours) == _state(theirs)
    assert ours.items() == theirs.items()


def test_limits_are_http_clients():
    with pytest.raises(http.client.LineTooLong):
        parse_headers(io.BytesIO(b"A: " + b"x" * 70000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException):
        parse_headers(io.BytesIO(b"A: b\r\n" * 101 + b"\r\n"))


def test_pools_use_it():
    import urllib3

    manager = use_fast_headers(urllib3.PoolManager())
    pool = manager.connection_from_url("http://127.0.0.1:1/")
    assert pool.ConnectionCls.response_class is FastHeadersResponse
