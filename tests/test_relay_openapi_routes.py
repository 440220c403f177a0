"""The served OpenAPI document stays true to the routes the plugin really has, both ways."""

import inspect
import re

import relay

from smoochrelay.api import OPENAPI_PATH, ROUTES
from smoochrelay.openapi import openapi_document

HTTP_METHODS = {"get", "post", "put", "delete", "patch"}


def _shape(path: str) -> str:
    """A path with every parameter blanked, so <app_id> and {appId} compare equal."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def _documented() -> set[tuple[str, str]]:
    document = openapi_document("https://relay.example.com")
    return {(_shape(path), method.upper())
            for path, operations in document["paths"].items()
            for method in operations if method in HTTP_METHODS}


def _served() -> set[tuple[str, str]]:
    served = {(_shape(rule.rule), method) for rule in ROUTES.iter_rules()
              for method in rule.methods if method not in ("HEAD", "OPTIONS")}
    served.add((OPENAPI_PATH, "GET"))
    for _, method in inspect.getmembers(relay.Relay, inspect.isfunction):
        uri = getattr(method, "_err_webhook_uri_rule", None)
        if uri and not uri.startswith("/v1.1/<path"):
            served |= {(_shape(uri), verb) for verb in method._err_webhook_methods}
    return served


def test_every_served_route_is_documented():
    assert _served() - _documented() == set()


def test_every_documented_route_is_served():
    assert _documented() - _served() == set()
