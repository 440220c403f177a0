"""The OpenAPI document: valid 3.0 structure, every §6 route, references that resolve, enums from smooch.py."""

import json
import re

import pytest

from smoochrelay import smooch
from smoochrelay.openapi import openapi_document

DOC = openapi_document("https://relay.example/")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
BASE = "/v1.1/apps/{appId}"

ROUTES = [
    ("post", f"{BASE}/webhooks"), ("get", f"{BASE}/webhooks"),
    ("get", f"{BASE}/webhooks/{{webhookId}}"), ("put", f"{BASE}/webhooks/{{webhookId}}"),
    ("delete", f"{BASE}/webhooks/{{webhookId}}"),
    ("post", f"{BASE}/integrations"), ("get", f"{BASE}/integrations"),
    ("get", f"{BASE}/integrations/{{integrationId}}"), ("delete", f"{BASE}/integrations/{{integrationId}}"),
    ("post", f"{BASE}/appusers/{{userId}}/messages"), ("get", f"{BASE}/appusers/{{userId}}/messages"),
    ("get", f"{BASE}/appusers/{{userId}}"), ("post", f"{BASE}/appusers/{{userId}}/conversation/activity"),
    ("get", "/v1.1/openapi.json"), ("get", "/files/{token}/{name}"), ("get", "/checkout/{actionId}"),
    ("post", "/stripe/webhook"),
]


def resolve(ref):
    assert ref.startswith("#/"), ref
    node = DOC
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def operations():
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, item, operation


def test_top_level():
    assert DOC["openapi"] == "3.0.3"
    assert DOC["servers"] == [{"url": "https://relay.example"}]
    assert {"title", "version"} <= set(DOC["info"])
    assert DOC["components"]["securitySchemes"]["basicAuth"] == {
        "type": "http", "scheme": "basic", "description": DOC["components"]["securitySchemes"]["basicAuth"][
            "description"]}
    assert DOC["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"] == "JWT"
    json.dumps(DOC)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_is_described(method, path):
    assert method in DOC["paths"][path]


def test_no_undocumented_extra_api_routes():
    described = {(method, path) for path, method, _, _ in operations()}
    assert {r for r in described if r[1].startswith(BASE)} == {r for r in ROUTES if r[1].startswith(BASE)}


def test_every_reference_resolves():
    refs = [value for _, key, value in walk(DOC) if key == "$ref"]
    assert len(refs) > 50
    for ref in refs:
        resolve(ref)


def test_operations_are_complete():
    ids = []
    for path, method, item, operation in operations():
        ids.append(operation["operationId"])
        assert operation["responses"], (method, path)
        for status in operation["responses"]:
            assert re.fullmatch(r"[1-5]\d\d|default", status)
        declared = {p["name"] for p in item.get("parameters", []) + operation.get("parameters", [])
                    if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), path
        if path.startswith(BASE):
            assert "security" not in operation
            assert {"401", "404"} <= set(operation["responses"])
            if "requestBody" in operation:
                assert {"400", "413"} <= set(operation["responses"])
        else:
            assert operation["security"] == []
    assert len(ids) == len(set(ids))


def test_error_schema():
    error = DOC["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "description"]


def schema(name):
    return DOC["components"]["schemas"][name]


def test_enums_come_from_the_validators():
    assert schema("WebhookCreate")["properties"]["triggers"]["items"]["enum"] == list(smooch.ALL_WEBHOOK_TRIGGERS)
    assert schema("MessagePost")["properties"]["type"]["enum"] == list(smooch.MESSAGE_TYPES)
    assert schema("BuyActionPost")["properties"]["currency"]["enum"] == list(smooch.STRIPE_CURRENCIES)
    assert schema("BuyActionPost")["properties"]["amount"]["maximum"] == smooch.MAX_AMOUNT
    assert schema("MessageItemPost")["properties"]["actions"]["maxItems"] == smooch.MAX_ITEM_ACTIONS
    assert schema("ConversationActivity")["properties"]["type"]["enum"] == list(smooch.ACTIVITY_TYPES)


def test_action_schemas_match_the_validator():
    mapping = schema("ActionPost")["discriminator"]["mapping"]
    assert set(mapping) == set(smooch.ACTION_TYPES) - {"share"}
    for kind, ref in mapping.items():
        assert set(resolve(ref)["properties"]) == set(smooch.ACTION_FIELDS[kind])
    assert set(schema("ItemActionPost")["discriminator"]["mapping"]) == set(smooch.ITEM_ACTION_TYPES)


def test_message_post_fields_match_the_validator():
    described = set(schema("MessagePost")["properties"])
    assert described == set(smooch.MESSAGE_POST_FIELDS) - {"fields"}
    assert set(schema("WebhookCreate")["properties"]) == set(smooch.WEBHOOK_FIELDS)
    assert set(schema("IntegrationCreate")["properties"]) == set(smooch.INTEGRATION_CREATE_FIELDS)


def test_token_pattern_agrees_with_the_validator():
    pattern = re.compile(schema("IntegrationCreate")["properties"]["token"]["pattern"])
    for token in ("123:ABC-def_9", "1:a", "nocolon", "123:abc/x"):
        accepted = True
        try:
            smooch.validate_integration_create({"type": "telegram", "token": token})
        except smooch.ValidationError:
            accepted = False
        assert bool(pattern.search(token)) is accepted, token
