"""The OpenAPI 3.0.3 document of the relay's HTTP API (CONTRACTS §6), served at GET /v1.1/openapi.json.

Enums and limits come from smooch.py, so the document and the validators cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from smoochrelay import smooch

OPENAPI_VERSION = "3.0.3"

ACTION_REQUIRED = {
    "link": ["type", "text", "uri"],
    "webview": ["type", "text", "uri"],
    "postback": ["type", "text", "payload"],
    "reply": ["type", "text", "payload"],
    "locationRequest": ["type", "text"],
    "buy": ["type", "text", "amount"],
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _url() -> dict:
    return {"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": smooch.MAX_URL_LENGTH}


def _string(max_length: int = smooch.MAX_NAME_LENGTH) -> dict:
    return {"type": "string", "maxLength": max_length}


METADATA = {
    "type": "object",
    "description": f"Flat object of string, number and boolean values; at most {smooch.METADATA_MAX_BYTES} "
                   "bytes of JSON.",
    "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
}


def _action_field(name: str) -> dict:
    fields: dict[str, dict] = {
        "text": {"type": "string", "minLength": 1, "maxLength": smooch.MAX_ACTION_TEXT_LENGTH},
        "uri": _url(),
        "fallback": _url(),
        "iconUrl": _url(),
        "payload": {"type": "string", "minLength": 1, "maxLength": smooch.MAX_PAYLOAD_LENGTH},
        "amount": {"type": "integer", "minimum": 1, "maximum": smooch.MAX_AMOUNT,
                   "description": "In the currency's minor unit (cents); whole units for zero-decimal currencies."},
        "currency": {"type": "string", "enum": list(smooch.STRIPE_CURRENCIES),
                     "description": "ISO 4217, lowercase; defaults to RELAY_DEFAULT_CURRENCY."},
        "size": {"type": "string", "enum": list(smooch.WEBVIEW_SIZES)},
        "default": {"type": "boolean"},
        "openOnReceive": {"type": "boolean"},
        "metadata": METADATA,
        "extraChannelOptions": {"type": "object"},
    }
    return fields[name]


def _action_post_schemas() -> dict[str, dict]:
    schemas = {}
    for kind, fields in smooch.ACTION_FIELDS.items():
        properties = {"type": {"type": "string", "enum": [kind]}}
        properties.update({name: _action_field(name) for name in fields if name != "type"})
        schemas[f"{kind[0].upper()}{kind[1:]}ActionPost"] = {
            "type": "object", "required": ACTION_REQUIRED[kind], "properties": properties,
            "additionalProperties": False,
        }
    return schemas


def _one_of_actions(kinds: tuple[str, ...]) -> dict:
    names = {kind: f"{kind[0].upper()}{kind[1:]}ActionPost" for kind in kinds}
    return {
        "oneOf": [_ref(name) for name in names.values()],
        "discriminator": {"propertyName": "type",
                          "mapping": {kind: f"#/components/schemas/{name}" for kind, name in names.items()}},
    }


def _schemas() -> dict[str, dict]:
    postable_actions = tuple(kind for kind in smooch.ACTION_TYPES if kind != "share")
    schemas: dict[str, dict] = {
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "description"], "properties": {
                "code": {"type": "string"}, "description": {"type": "string"}}}},
        },
        "Empty": {"type": "object", "additionalProperties": False},
        **_action_post_schemas(),
        "ActionPost": _one_of_actions(postable_actions),
        "ItemActionPost": _one_of_actions(smooch.ITEM_ACTION_TYPES),
        "MessageItemPost": {
            "type": "object", "required": ["title", "actions"], "additionalProperties": False,
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": smooch.MAX_NAME_LENGTH},
                "description": _string(2000), "mediaUrl": _url(), "mediaType": _string(255),
                "altText": _string(), "size": {"type": "string", "enum": list(smooch.ITEM_SIZES)},
                "actions": {"type": "array", "minItems": smooch.MIN_ITEM_ACTIONS,
                            "maxItems": smooch.MAX_ITEM_ACTIONS, "items": _ref("ItemActionPost")},
            },
        },
        "Coordinates": {
            "type": "object", "required": ["lat", "long"], "additionalProperties": False,
            "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                           "long": {"type": "number", "minimum": -180, "maximum": 180}},
        },
        "MessagePost": {
            "type": "object", "required": ["role", "type"], "additionalProperties": False,
            "description": "text needs text or actions; image/file need mediaUrl; carousel/list need items; "
                           "location needs coordinates. Smooch's text shorthand (%[..](..), $[..](..), ![](..)) "
                           "is expanded into actions. reply/locationRequest actions go alone or together.",
            "properties": {
                "role": {"type": "string", "enum": ["appMaker"]},
                "type": {"type": "string", "enum": list(smooch.MESSAGE_TYPES)},
                "text": _string(smooch.MAX_TEXT_LENGTH),
                "name": _string(), "email": _string(), "avatarUrl": _url(),
                "metadata": METADATA,
                "payload": {"type": "string", "maxLength": smooch.MAX_PAYLOAD_LENGTH},
                "mediaUrl": _url(), "mediaType": _string(255), "altText": _string(),
                "actions": {"type": "array", "maxItems": smooch.MAX_ACTIONS, "items": _ref("ActionPost")},
                "items": {"type": "array", "minItems": 1, "maxItems": smooch.MAX_ITEMS,
                          "items": _ref("MessageItemPost")},
                "coordinates": _ref("Coordinates"),
                "location": {"type": "object", "additionalProperties": False,
                             "properties": {"name": _string(), "address": _string()}},
                "blockChatInput": {"type": "boolean"},
                "displaySettings": {"type": "object", "additionalProperties": False, "properties": {
                    "imageAspectRatio": {"type": "string", "enum": list(smooch.IMAGE_ASPECT_RATIOS)}}},
                "destination": {"type": "object", "additionalProperties": False, "properties": {
                    "integrationId": {"type": "string"},
                    "integrationType": {"type": "string", "enum": ["telegram"]}}},
                "override": {"type": "object", "description": "Other channels' raw payloads; ignored."},
            },
        },
        "Action": {
            "type": "object", "required": ["_id", "type"],
            "properties": {
                "_id": {"type": "string"}, "type": {"type": "string", "enum": list(smooch.ACTION_TYPES)},
                "text": {"type": "string"}, "uri": {"type": "string"}, "fallback": {"type": "string"},
                "payload": {"type": "string"}, "amount": {"type": "integer"}, "currency": {"type": "string"},
                "state": {"type": "string", "enum": ["offered", "paid"]}, "iconUrl": {"type": "string"},
                "size": {"type": "string"}, "default": {"type": "boolean"}, "metadata": {"type": "object"},
            },
        },
        "MessageItem": {
            "type": "object", "required": ["_id", "title", "actions"],
            "properties": {
                "_id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
                "mediaUrl": {"type": "string"}, "mediaType": {"type": "string"}, "size": {"type": "string"},
                "actions": {"type": "array", "items": _ref("Action")},
            },
        },
        "Source": {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string"}, "originalMessageId": {"type": "string"},
            "originalMessageTimestamp": {"type": "number"}}},
        "Message": {
            "type": "object", "required": ["_id", "role", "type", "received", "authorId"],
            "properties": {
                "_id": {"type": "string"}, "role": {"type": "string", "enum": ["appUser", "appMaker"]},
                "type": {"type": "string", "enum": list(smooch.MESSAGE_TYPES)}, "authorId": {"type": "string"},
                "name": {"type": "string"}, "text": {"type": "string"}, "avatarUrl": {"type": "string"},
                "received": {"type": "number"}, "source": _ref("Source"), "mediaUrl": {"type": "string"},
                "mediaType": {"type": "string"},
                "mediaSize": {"type": "integer", "description": "Bytes (appUser files)."},
                "altText": {"type": "string"}, "payload": {"type": "string"}, "metadata": {"type": "object"},
                "actions": {"type": "array", "items": _ref("Action")},
                "items": {"type": "array", "items": _ref("MessageItem")},
                "coordinates": _ref("Coordinates"),
                "location": {"type": "object", "properties": {"name": {"type": "string"},
                                                              "address": {"type": "string"}}},
            },
        },
        "Conversation": {"type": "object", "required": ["_id", "unreadCount"], "properties": {
            "_id": {"type": "string"}, "unreadCount": {"type": "integer"}}},
        "MessageResponse": {"type": "object", "required": ["message", "conversation"], "properties": {
            "message": _ref("Message"), "extraMessages": {"type": "array", "items": _ref("Message")},
            "conversation": _ref("Conversation")}},
        "GetMessagesResponse": {"type": "object", "required": ["conversation", "messages"], "properties": {
            "conversation": _ref("Conversation"), "messages": {"type": "array", "items": _ref("Message")},
            "next": {"type": "string", "description": "URL of the next page, when there is one."},
            "previous": {"type": "string"}}},
        "Client": {
            "type": "object", "required": ["id", "platform"],
            "properties": {
                "id": {"type": "string"}, "_id": {"type": "string"},
                "platform": {"type": "string", "enum": ["telegram"]}, "integrationId": {"type": "string"},
                "displayName": {"type": "string"}, "externalId": {"type": "string"}, "active": {"type": "boolean"},
                "status": {"type": "string", "enum": ["active", "blocked"]}, "lastSeen": {"type": "string"},
                "info": {"type": "object"}, "raw": {"type": "object"},
            },
        },
        "AppUser": {
            "type": "object", "required": ["_id", "conversationStarted"],
            "properties": {
                "_id": {"type": "string"}, "givenName": {"type": "string"}, "surname": {"type": "string"},
                "signedUpAt": {"type": "string", "format": "date-time"}, "conversationStarted": {"type": "boolean"},
                "properties": {"type": "object"}, "clients": {"type": "array", "items": _ref("Client")},
            },
        },
        "AppUserResponse": {"type": "object", "required": ["appUser"], "properties": {"appUser": _ref("AppUser")}},
        "WebhookCreate": {
            "type": "object", "required": ["target"], "additionalProperties": False,
            "properties": {
                "target": _url(),
                "triggers": {"type": "array", "minItems": 1, "default": list(smooch.DEFAULT_WEBHOOK_TRIGGERS),
                             "items": {"type": "string", "enum": list(smooch.ALL_WEBHOOK_TRIGGERS)}},
                "includeClient": {"type": "boolean", "default": False},
                "includeFullAppUser": {"type": "boolean", "default": False},
            },
        },
        "WebhookUpdate": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "target": _url(),
                "triggers": {"type": "array", "minItems": 1,
                             "items": {"type": "string", "enum": list(smooch.ALL_WEBHOOK_TRIGGERS)}},
                "includeClient": {"type": "boolean"}, "includeFullAppUser": {"type": "boolean"},
            },
        },
        "Webhook": {
            "type": "object", "required": ["_id", "target", "triggers"],
            "properties": {
                "_id": {"type": "string"}, "target": {"type": "string"},
                "triggers": {"type": "array", "items": {"type": "string"}},
                "secret": {"type": "string", "description": "Sent as X-API-Key with every call."},
                "version": {"type": "string", "enum": [smooch.API_VERSION]},
                "includeClient": {"type": "boolean"}, "includeFullAppUser": {"type": "boolean"},
            },
        },
        "WebhookResponse": {"type": "object", "required": ["webhook"], "properties": {"webhook": _ref("Webhook")}},
        "ListWebhooksResponse": {"type": "object", "required": ["webhooks"], "properties": {
            "webhooks": {"type": "array", "maxItems": smooch.MAX_WEBHOOKS, "items": _ref("Webhook")}}},
        "IntegrationCreate": {
            "type": "object", "required": ["type", "token"], "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": ["telegram"]},
                "token": {"type": "string", "pattern": r"^\d{1,20}:[A-Za-z0-9_-]{1,200}$",
                          "maxLength": smooch.MAX_TOKEN_LENGTH, "description": "The bot token from BotFather."},
                "displayName": _string(),
            },
        },
        "Integration": {
            "type": "object", "required": ["_id", "type", "status"],
            "properties": {
                "_id": {"type": "string"}, "type": {"type": "string", "enum": ["telegram"]},
                "status": {"type": "string", "enum": ["active", "inactive", "error"]},
                "username": {"type": "string"}, "displayName": {"type": "string"}, "error": {"type": "string"},
            },
        },
        "IntegrationResponse": {"type": "object", "required": ["integration"], "properties": {
            "integration": _ref("Integration")}},
        "ListIntegrationsResponse": {"type": "object", "required": ["integrations"], "properties": {
            "integrations": {"type": "array", "items": _ref("Integration")}}},
        "ConversationActivity": {
            "type": "object", "required": ["role", "type"], "additionalProperties": False,
            "properties": {"role": {"type": "string", "enum": ["appMaker"]},
                           "type": {"type": "string", "enum": list(smooch.ACTIVITY_TYPES)},
                           "name": _string(), "avatarUrl": _url()},
        },
        "ActivityResponse": {"type": "object", "required": ["conversation"], "properties": {
            "conversation": _ref("Conversation")}},
    }
    return schemas


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _operation(operation_id: str, summary: str, responses: dict, body: str | None = None,
               parameters: list | None = None, *, errors: tuple[str, ...] = ("401", "404")) -> dict:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "responses": dict(responses)}
    if body is not None:
        operation["requestBody"] = _body(body)
        errors = ("400", *errors, "413")
    if parameters:
        operation["parameters"] = parameters
    for status in errors:
        operation["responses"][status] = {"$ref": f"#/components/responses/{status}"}
    return operation


def _path_parameter(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def _api_paths() -> dict[str, dict]:
    app = _path_parameter("appId", "The relay's app id (RELAY_APP_ID, shown by !relay status).")
    user = _path_parameter("userId", "The appUser's _id.")
    webhook = _path_parameter("webhookId", "The webhook's _id.")
    integration = _path_parameter("integrationId", "The integration's _id.")
    empty = _json("Done.", "Empty")
    history = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "number"},
         "description": f"Unix seconds (decimals allowed): messages received {name} this time. Not with {other}."}
        for name, other in (("before", "after"), ("after", "before"))
    ]
    base = "/v1.1/apps/{appId}"
    return {
        f"{base}/webhooks": {
            "parameters": [app],
            "post": _operation("createWebhook", f"Create a webhook (at most {smooch.MAX_WEBHOOKS}).",
                               {"201": _json("Created; the answer holds the secret.", "WebhookResponse")},
                               "WebhookCreate"),
            "get": _operation("listWebhooks", "List webhooks.", {"200": _json("The webhooks.",
                                                                             "ListWebhooksResponse")}),
        },
        f"{base}/webhooks/{{webhookId}}": {
            "parameters": [app, webhook],
            "get": _operation("getWebhook", "Get a webhook.", {"200": _json("The webhook.", "WebhookResponse")}),
            "put": _operation("updateWebhook", "Update a webhook.", {"200": _json("Updated.", "WebhookResponse")},
                              "WebhookUpdate"),
            "delete": _operation("deleteWebhook", "Delete a webhook and its pending calls.", {"200": empty}),
        },
        f"{base}/integrations": {
            "parameters": [app],
            "post": _operation("createIntegration", "Connect the Telegram bot with a BotFather token.",
                               {"201": _json("Connected.", "IntegrationResponse")}, "IntegrationCreate"),
            "get": _operation("listIntegrations", "The Telegram integration, if a token is set.",
                              {"200": _json("The integrations.", "ListIntegrationsResponse")}),
        },
        f"{base}/integrations/{{integrationId}}": {
            "parameters": [app, integration],
            "get": _operation("getIntegration", "Get the integration.",
                              {"200": _json("The integration.", "IntegrationResponse")}),
            "delete": _operation("deleteIntegration", "Disconnect the integration.", {"200": empty},
                                 errors=("400", "401", "404")),
        },
        f"{base}/appusers/{{userId}}": {
            "parameters": [app, user],
            "get": _operation("getAppUser", "Get an appUser.", {"200": _json("The appUser.", "AppUserResponse")}),
        },
        f"{base}/appusers/{{userId}}/messages": {
            "parameters": [app, user],
            "post": _operation(
                "postMessage", "Send an appMaker message to the user on Telegram.",
                {"201": _json("Stored and queued for Telegram.", "MessageResponse")}, "MessagePost"),
            "get": _operation("getMessages", "Message history, 100 per page.",
                              {"200": _json("A page of messages, oldest first.", "GetMessagesResponse")},
                              parameters=history, errors=("400", "401", "404")),
        },
        f"{base}/appusers/{{userId}}/conversation/activity": {
            "parameters": [app, user],
            "post": _operation(
                "conversationActivity", "Show or stop the typing indicator.",
                {"200": _json("Sent.", "ActivityResponse"),
                 "502": _error("Telegram did not accept the indicator.")}, "ConversationActivity"),
        },
    }


def _other_paths() -> dict[str, dict]:
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/v1.1/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document.", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.0 document.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/files/{token}/{name}": {
            "parameters": [_path_parameter("token", "Signed, expiring file token from a message's mediaUrl."),
                           _path_parameter("name", "File name (informative).")],
            "get": {"operationId": "getFile", "summary": "Stream a file a user sent.", "security": [],
                    "responses": {"200": {"description": "The file.",
                                          "content": {"application/octet-stream": {"schema": {
                                              "type": "string", "format": "binary"}}}},
                                  "403": _error("The link is invalid or expired."),
                                  "404": _error("Telegram no longer has the file.")}},
        },
        "/checkout/{actionId}": {
            "parameters": [_path_parameter("actionId", "The buy action's _id.")],
            "get": {"operationId": "checkout", "summary": "Pay for a buy action (redirects to Stripe Checkout).",
                    "security": [],
                    "responses": {"303": {"description": "Redirect to Stripe Checkout."},
                                  "200": {"description": "Already paid.", "content": html},
                                  "404": {"description": "No such offer.", "content": html}}},
        },
        "/checkout/{actionId}/{outcome}": {
            "parameters": [_path_parameter("actionId", "The buy action's _id."),
                           _path_parameter("outcome", "success or cancel.")],
            "get": {"operationId": "checkoutResult", "summary": "The page shown after Stripe Checkout.",
                    "security": [],
                    "responses": {"200": {"description": "Result page.", "content": html},
                                  "404": {"description": "No such offer.", "content": html}}},
        },
        "/stripe/webhook": {"post": {
            "operationId": "stripeWebhook", "summary": "Stripe events (signed with STRIPE_WEBHOOK_SECRET).",
            "security": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "Accepted."}, "400": _error("Bad signature or payload.")}}},
    }


def openapi_document(server_url: str) -> dict:
    """The complete OpenAPI 3.0.3 document, with `server_url` (RELAY_PUBLIC_URL) as the only server."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Smooch relay for Telegram",
            "version": smooch.API_VERSION,
            "description": "A self-hosted subset of the Smooch / Sunshine Conversations v1.1 API for one "
                           "Telegram bot. Errors are {\"error\": {\"code\", \"description\"}}.",
        },
        "servers": [{"url": server_url.rstrip("/")}],
        "security": [{"basicAuth": []}, {"bearerAuth": []}],
        "paths": {**_api_paths(), **_other_paths()},
        "components": {
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic",
                              "description": "Username: API key id; password: API key secret."},
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": 'HS256 JWT signed with the key secret, header kid = key id, '
                                              'claim scope "app".'},
            },
            "schemas": _schemas(),
            "responses": {
                "400": _error("The request is invalid; the description names the field."),
                "401": _error("Authorization is missing or invalid."),
                "404": _error("No such app, user, webhook or integration."),
                "413": _error("The body is too large."),
            },
        },
    }
