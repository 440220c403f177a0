"""The Smooch v1.1-compatible HTTP API: one route table, authentication, body limits and Smooch error bodies.

Every answer is JSON. Bad input gets a 4xx with `{"error": {"code", "description"}}` naming what to fix;
an unexpected fault is logged and answered with a bare 500 body that reveals nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Request, Response
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule

from smoochrelay import smooch
from smoochrelay.auth import AuthError, authenticate
from smoochrelay.events import EventFanout
from smoochrelay.openapi import openapi_document
from smoochrelay.outbound import reply_actions
from smoochrelay.settings import RelaySettings
from smoochrelay.store import RelayStore, StoreUnavailableError
from tgbackend.errors import InvalidTokenError, TelegramError

log = logging.getLogger(__name__)

APP = "/v1.1/apps/<app_id>"
ROUTES = Map([
    Rule(f"{APP}/webhooks", endpoint="webhooks", methods=["GET", "POST"]),
    Rule(f"{APP}/webhooks/<webhook_id>", endpoint="webhook", methods=["GET", "PUT", "DELETE"]),
    Rule(f"{APP}/integrations", endpoint="integrations", methods=["GET", "POST"]),
    Rule(f"{APP}/integrations/<integration_id>", endpoint="integration", methods=["GET", "DELETE"]),
    Rule(f"{APP}/appusers/<user_id>", endpoint="app_user", methods=["GET"]),
    Rule(f"{APP}/appusers/<user_id>/messages", endpoint="messages", methods=["GET", "POST"]),
    Rule(f"{APP}/appusers/<user_id>/conversation/activity", endpoint="activity", methods=["POST"]),
], strict_slashes=False)
OPENAPI_PATH = "/v1.1/openapi.json"


class ApiError(Exception):
    """An answer other than success: status, Smooch error code and a description saying what to do."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


@dataclass
class Channel:
    """What the API needs from the Telegram side, so this module never touches the backend directly."""

    set_token: Callable[[str], Any]
    clear_token: Callable[[], None]
    status: Callable[[], dict]
    send_typing: Callable[[int], None]


def json_response(status: int, body: Any) -> Response:
    """A JSON answer with the given status."""
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def error_response(status: int, code: str, description: str) -> Response:
    """A Smooch error body."""
    return json_response(status, smooch.error_body(code, description))


class RelayApi:
    """Dispatches API requests to handlers; each handler returns (status, body) or raises ApiError."""

    def __init__(self, store: RelayStore, settings: RelaySettings, app_id: str, fanout: EventFanout,
                 channel: Channel, prepare_buy: Callable[[dict, dict], None] | None = None) -> None:
        self._store = store
        self._settings = settings
        self._app_id = app_id
        self._fanout = fanout
        self._channel = channel
        self._prepare_buy = prepare_buy

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises."""
        try:
            if request.path == OPENAPI_PATH and request.method == "GET":
                return json_response(200, openapi_document(self._settings.public_url))
            endpoint, args = ROUTES.bind("").match(request.path, method=request.method)
            self._check_size(request)
            key_id = authenticate(request.headers.get("Authorization"), self._store.api_key_secret)
            request.environ["relay.key_id"] = key_id
            if args.pop("app_id") != self._app_id:
                raise ApiError(404, "not_found", "No app with this id here. Use the app id shown by !relay status.")
            body = self._body(request) if request.method in ("POST", "PUT") else None
            status, answer = getattr(self, f"_{endpoint}")(request, body, **args)
            return json_response(status, answer)
        except (NotFound, RequestRedirect):  # a redirect: "//" in the path (werkzeug merges slashes)
            return error_response(404, "not_found", "No such route. The API lives under /v1.1/apps/{appId}/.")
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or []))
            return error_response(405, "method_not_allowed", f"Method not allowed here; use {allowed}.")
        except AuthError as exc:
            return error_response(401, "unauthorized", str(exc) or "Authorization is required")
        except smooch.ValidationError as exc:
            return error_response(400, getattr(exc, "code", "bad_request"), exc.description)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.description)
        except StoreUnavailableError:
            log.exception("The relay's database is unavailable.")
            return error_response(503, "service_unavailable",
                                  "The relay cannot store data right now; retry later.")
        except Exception:
            log.exception("Unexpected error answering %s %s", request.method, request.path)
            return error_response(500, "internal_error", "Something went wrong on our side; retry later.")

    def _check_size(self, request: Request) -> None:
        """Refuse bodies over the documented limit before reading them."""
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "request_entity_too_large", f"The body is larger than {limit} bytes.")

    def _body(self, request: Request) -> Any:
        """The JSON body, read with a hard cap even when no Content-Length was sent."""
        limit = self._settings.max_body_bytes
        raw = request.stream.read(limit + 1)
        if len(raw) > limit:
            raise ApiError(413, "request_entity_too_large", f"The body is larger than {limit} bytes.")
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_request", "The body is not valid JSON.") from exc

    # Webhooks

    def _webhooks(self, request: Request, body: Any) -> tuple[int, dict]:
        if request.method == "GET":
            return 200, {"webhooks": [smooch.webhook_object(h) for h in self._store.list_webhooks()]}
        fields = smooch.validate_webhook_create(body)
        if len(self._store.list_webhooks()) >= smooch.MAX_WEBHOOKS:
            raise ApiError(400, "bad_request",
                           f"An app is limited to {smooch.MAX_WEBHOOKS} webhooks; delete one first.")
        hook = self._store.create_webhook(
            fields["target"], fields["triggers"], include_full_app_user=fields.get("includeFullAppUser", False),
            include_client=fields.get("includeClient", False),
        )
        return 201, {"webhook": smooch.webhook_object(hook)}

    def _webhook(self, request: Request, body: Any, webhook_id: str) -> tuple[int, dict]:
        if request.method == "DELETE":
            if not self._store.delete_webhook(webhook_id):
                raise ApiError(404, "not_found", "No webhook with this id.")
            return 200, {}
        if request.method == "PUT":
            hook = self._store.update_webhook(webhook_id, **smooch.validate_webhook_update(body))
        else:
            hook = self._store.get_webhook(webhook_id)
        if hook is None:
            raise ApiError(404, "not_found", "No webhook with this id.")
        return 200, {"webhook": smooch.webhook_object(hook)}

    # Integrations (the Telegram bot token)

    def _integration_id(self) -> str:
        return self._store.setting("integration_id", create=smooch.new_id)

    def _integrations(self, request: Request, body: Any) -> tuple[int, dict]:
        if request.method == "GET":
            current = self._current_integration()
            return 200, {"integrations": [current] if current else []}
        fields = smooch.validate_integration_create(body)
        try:
            info = self._channel.set_token(fields["token"])
        except InvalidTokenError:
            raise ApiError(400, "invalid_token",
                           "Telegram refused this bot token. Copy the token BotFather gave you and retry.") from None
        except TelegramError:
            raise ApiError(502, "channel_error",
                           "Telegram could not be reached to check the token; retry in a moment.") from None
        integration = smooch.integration_object(self._integration_id(), status="active", username=info.username)
        return 201, {"integration": integration}

    def _integration(self, request: Request, body: Any, integration_id: str) -> tuple[int, dict]:
        current = self._current_integration()
        if current is None or integration_id != current["_id"]:
            raise ApiError(404, "not_found", "No integration with this id.")
        if request.method == "DELETE":
            self._channel.clear_token()
            return 200, {}
        return 200, {"integration": current}

    def _current_integration(self) -> dict | None:
        """The Telegram integration, present once a bot token is configured."""
        status = self._channel.status()
        if not status.get("token_configured"):
            return None
        state = "active" if status.get("connected") else "error"
        return smooch.integration_object(self._integration_id(), status=state, username=status.get("username"))

    # App users and messages

    def _user(self, user_id: str) -> dict:
        app_user = self._store.get_app_user(user_id)
        if app_user is None:
            raise ApiError(404, "not_found", "No appUser with this id.")
        return app_user

    def _app_user(self, request: Request, body: Any, user_id: str) -> tuple[int, dict]:
        return 200, {"appUser": smooch.app_user_object(self._user(user_id), full=True)}

    def _messages(self, request: Request, body: Any, user_id: str) -> tuple[int, dict]:
        app_user = self._user(user_id)
        if request.method == "GET":
            return 200, self._history(request, app_user)
        message = smooch.validate_message_post(body, payments_enabled=self._settings.payments_enabled,
                                               default_currency=self._settings.default_currency)
        message.update({
            "_id": smooch.new_id(),
            "received": time.time(),
            "authorId": hashlib.sha256(f"appMaker:{request.environ['relay.key_id']}".encode()).hexdigest()[:24],
            "source": {"type": "api"},
        })
        if self._prepare_buy is not None:
            self._prepare_buy(message, app_user)
        jobs = self._fanout.jobs("message:appMaker", app_user, messages=[message])
        self._store.record_outbound(app_user["_id"], message, jobs)
        replies = reply_actions(message)
        if replies:
            self._store.set_quick_replies(app_user["_id"], replies)
        return 201, smooch.message_response(message, app_user["conversation_id"])

    def _history(self, request: Request, app_user: dict) -> dict:
        bounds = {}
        for name in ("before", "after"):
            raw = request.args.get(name)
            if raw is None:
                continue
            try:
                bounds[name] = float(raw)
            except ValueError:
                raise ApiError(400, "bad_request", f"{name} must be a unix timestamp in seconds.") from None
        if len(bounds) == 2:
            raise ApiError(400, "bad_request", "Give either before or after, not both.")
        messages, has_more = self._store.list_messages(app_user["_id"], **bounds)
        base = f"{self._settings.public_url}/v1.1/apps/{self._app_id}/appusers/{app_user['_id']}/messages"
        older = newer = None
        if has_more and messages:
            if "after" in bounds:
                newer = f"{base}?after={messages[-1]['received']}"
            else:
                older = f"{base}?before={messages[0]['received']}"
        return smooch.messages_page(messages, app_user["conversation_id"], next_url=newer, previous_url=older)

    def _activity(self, request: Request, body: Any, user_id: str) -> tuple[int, dict]:
        app_user = self._user(user_id)
        activity = smooch.validate_activity(body)
        if activity["type"] == "typing:start":
            try:
                self._channel.send_typing(app_user["chat_id"])
            except TelegramError as exc:
                raise ApiError(502, "channel_error",
                               f"Telegram did not accept the typing indicator ({exc.code}).") from None
        return 200, {"conversation": {"_id": app_user["conversation_id"], "unreadCount": 0}}
