"""Fuzz the HTTP API from its own OpenAPI document (GET /v1.1/openapi.json) with hypothesis: bodies generated
from each operation's schema, arbitrary JSON, and raw bytes; path and query parameters as arbitrary text.
No 5xx, no traceback, every rejection a 4xx with Smooch's error body. Bodies over the limit get 413 before
they are parsed, also chunked without Content-Length.

RELAY_SOAK=1 raises the number of examples per operation (see README, "Reliability and security").
"""

from __future__ import annotations

import copy
import os
import socket
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from tests.helpers.relay_stack import APP_ID

pytest_plugins = ["tests.helpers.relay_stack"]
pytestmark = pytest.mark.timeout(600)
EXAMPLES = 400 if os.environ.get("RELAY_SOAK") == "1" else 40
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def resolve(node: Any, components: dict) -> Any:
    """The schema with every local $ref inlined (OpenAPI 3.0 nullable → a JSON Schema type list)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return resolve(components[node["$ref"].rsplit("/", 1)[1]], components)
        out = {k: resolve(v, components) for k, v in node.items() if k not in ("nullable", "example", "discriminator")}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [resolve(v, components) for v in node]
    return node


def check(response: requests.Response, where: str) -> None:
    """No server error, no traceback; a 4xx carries {"error": {"code", "description"}}."""
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    assert "Traceback" not in response.text and 'File "' not in response.text, where
    if 400 <= response.status_code < 500:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["description"], str), where


def operations(document: dict) -> list[tuple[str, str, dict | None]]:
    """(method, path template, resolved body schema or None) for every app API operation."""
    components = document.get("components", {}).get("schemas", {})
    out = []
    for path, ops in document["paths"].items():
        if not path.startswith("/v1.1/apps/"):
            continue
        for method, op in ops.items():
            if not isinstance(op, dict):
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            out.append((method.upper(), path, resolve(copy.deepcopy(body), components) if body else None))
    return out


def fill(path: str, values: dict[str, str]) -> str:
    """The path template with appId set and the other parameters from values (URL-quoted)."""
    result = path.replace("{appId}", APP_ID)
    for name, value in values.items():
        result = result.replace("{" + name + "}", quote(value, safe=""))
    return result


def test_fuzz_every_operation_from_the_openapi_document(relay_stack):
    stack = relay_stack
    relay_stack.sandbox.push_text(9400, "a user to talk to")
    app_user = stack.app_user_id(9400)
    document = requests.get(f"{stack.http_url}/v1.1/openapi.json", timeout=10).json()
    ops = operations(document)
    assert len(ops) >= 13
    session = requests.Session()
    session.auth = stack.auth
    counted = {"requests": 0}
    for method, template, schema in ops:
        real = {"userId": app_user, "webhookId": "x" * 24, "integrationId": "telegram"}

        def call(body: Any = None, raw: bytes | None = None, params: dict | None = None,
                 values: dict | None = None, method: str = method, template: str = template) -> None:
            url = stack.http_url + fill(template, values or real)
            kwargs: dict[str, Any] = {"timeout": 15, "params": params}
            if raw is not None:
                kwargs["data"] = raw
                kwargs["headers"] = {"Content-Type": "application/json"}
            elif body is not None:
                kwargs["json"] = body
            counted["requests"] += 1
            check(session.request(method, url, **kwargs), f"{method} {template}")

        if schema is not None:
            @SETTINGS
            @given(from_schema(schema))
            def valid_shaped(body: Any) -> None:
                if isinstance(body, dict) and "target" in body:
                    body["target"] = "http://127.0.0.1:9/hook"  # never make the relay call out anywhere real
                if isinstance(body, dict) and "token" in body:
                    body["token"] = "1:x"
                call(body)

            valid_shaped()

        json_values = st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
            lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=6),
            max_leaves=30)

        @SETTINGS
        @given(json_values, st.binary(max_size=200), st.dictionaries(st.text(max_size=10), st.text(max_size=20),
                                                                      max_size=3),
               # No control characters: Flask's own router answers those with its HTML 404 before the API.
               st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40))
        def anything(body: Any, raw: bytes, params: dict, segment: str) -> None:
            if method in ("POST", "PUT"):
                call(body=body)
                call(raw=raw)
            call(params=params)
            call(values={"userId": segment, "webhookId": segment, "integrationId": segment})

        anything()
    print(f"\n[fuzz] operations={len(ops)} requests={counted['requests']} examples_per_strategy={EXAMPLES}")


def _raw_request(port: int, head: bytes, chunks: list[bytes]) -> tuple[int, bytes]:
    """Send a raw HTTP/1.1 request, streaming chunks; return (status, response bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server may answer and close before reading it all: that is the point
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        try:
            sock.settimeout(2)
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
        except OSError:
            pass
    return int(data.split(b" ", 2)[1]), data


def test_oversized_bodies_get_413_before_parsing_with_and_without_content_length(relay_stack):
    stack = relay_stack
    limit = stack.service.settings.max_body_bytes
    port = int(stack.http_url.rsplit(":", 1)[1])
    path = f"/v1.1/apps/{APP_ID}/webhooks"
    auth = requests.auth._basic_auth_str(*stack.auth)
    # Declared far too big (over the server's cap, twice the relay's limit): refused from the header alone,
    # without sending the body at all; the web server answers that one itself, in plain text.
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {limit * 50}\r\n\r\n").encode()
    status, data = _raw_request(port, head, [])
    assert status == 413 and b"Request Entity Too Large" in data
    # Chunked, no Content-Length, 4x the limit of valid-looking JSON: 413 once past the cap, not a parse
    # error or a 5xx.
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    piece = b'{"target": "http://127.0.0.1:9/' + b"a" * 65000 + b'"}'
    chunks = [f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for _ in range(4 * limit // len(piece) + 1)]
    status, data = _raw_request(port, head, [*chunks, b"0\r\n\r\n"])
    assert status == 413 and b"Request Entity Too Large" in data
    # Over the relay's limit but under the server's cap, declared or chunked: the relay's own Smooch error.
    over = b'{"target": "http://127.0.0.1:9/' + b"a" * (limit + limit // 2) + b'"}'
    response = requests.post(stack.http_url + path, data=over, auth=stack.auth, timeout=15,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_entity_too_large"
    response = requests.post(stack.http_url + path, data=iter([over[:limit], over[limit:]]), auth=stack.auth,
                             timeout=15, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_entity_too_large"
    assert stack.service.store.list_webhooks() == []
    # Just under the limit is parsed (and rejected as a bad body, not as too large).
    body = b'{"target": "' + b"a" * (limit - 100) + b'"}'
    response = requests.post(stack.http_url + path, data=body, auth=stack.auth, timeout=15,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    # A chunked body under the limit goes through.
    response = requests.post(stack.http_url + path, auth=stack.auth, timeout=15,
                             data=iter([b'{"target": ', b'"http://127.0.0.1:9/ok"}']),
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
