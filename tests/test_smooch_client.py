"""The official smooch Python client (5.34.0) against our wire format: its requests pass our validation, and our
responses and objects deserialize in it (it refuses null in required fields)."""

import json
import time

import pytest
import smooch as client

from smoochrelay import smooch

API = client.ApiClient()


def serialize(model):
    return json.loads(json.dumps(API.sanitize_for_serialization(model)))


class Response:
    """The client's RESTResponse as far as deserialize() looks at it."""

    def __init__(self, body):
        self.data = json.dumps(body)


def deserialize(body, kind):
    return API.deserialize(Response(body), kind)


USER = {
    "_id": "5a2c1b9f0e4d3c2b1a098765", "telegram_user_id": 4242, "chat_id": 4242, "given_name": "Ada",
    "surname": "Lovelace", "username": "ada", "language_code": "en", "signed_up_at": 1700000000.5,
    "conversation_started": True, "blocked": False, "properties": {"plan": "pro"}, "conversation_id": "c" * 24,
}


def stored(message, **extra):
    """What the API handler stores: the validated message plus the ids the caller adds."""
    return {**message, "_id": smooch.new_id(), "received": time.time(), "authorId": "a" * 24,
            "source": {"type": "api"}, **extra}


class TestRequestsFromTheClient:
    def test_text_message_with_every_action_kind(self):
        body = serialize(client.MessagePost(
            role="appMaker", type="text", text="Choose", name="Shop", avatar_url="https://a.example/a.png",
            metadata={"order": 7},
            actions=[
                client.Action(type="link", text="Site", uri="https://x.example"),
                client.Action(type="postback", text="More", payload="MORE"),
                client.Action(type="buy", text="Pay", amount=1500, currency="eur"),
                client.Action(type="webview", text="Open", uri="https://w.example", fallback="https://f.example",
                              size="tall"),
            ],
        ))
        result = smooch.validate_message_post(body, payments_enabled=True)
        assert [a["type"] for a in result["actions"]] == ["link", "postback", "buy", "webview"]
        assert result["actions"][2]["currency"] == "eur" and result["metadata"] == {"order": 7}

    def test_quick_replies(self):
        body = serialize(client.MessagePost(role="appMaker", type="text", text="?", actions=[
            client.Action(type="reply", text="Yes", payload="Y", icon_url="https://i.example/y.png"),
            client.Action(type="locationRequest", text="Where?"),
        ]))
        assert len(smooch.validate_message_post(body, payments_enabled=False)["actions"]) == 2

    def test_image_and_file(self):
        for kind in ("image", "file"):
            body = serialize(client.MessagePost(role="appMaker", type=kind, media_url="https://x.example/a.bin",
                                                media_type="application/octet-stream", alt_text="alt"))
            assert smooch.validate_message_post(body, payments_enabled=False)["type"] == kind

    def test_carousel_and_list(self):
        items = [client.MessageItem(title=f"Item {n}", description="d", media_url="https://x.example/i.png",
                                    media_type="image/png", size="compact",
                                    actions=[client.Action(type="postback", text="Pick", payload=str(n))])
                 for n in range(3)]
        for kind in ("carousel", "list"):
            body = serialize(client.MessagePost(
                role="appMaker", type=kind, items=items,
                display_settings=client.DisplaySettings(image_aspect_ratio="square"),
            ))
            assert len(smooch.validate_message_post(body, payments_enabled=False)["items"]) == 3

    def test_location_with_destination(self):
        body = serialize(client.MessagePost(
            role="appMaker", type="location", coordinates=client.Coordinates(lat=48.85, long=2.35),
            location=client.Location(address="Paris", name="Here"),
            destination=client.Destination(integration_type="telegram"),
        ))
        result = smooch.validate_message_post(body, payments_enabled=False)
        assert result["coordinates"] == {"lat": 48.85, "long": 2.35}

    def test_share_from_the_client_is_refused(self):
        body = serialize(client.MessagePost(role="appMaker", type="text", text="x",
                                            actions=[client.Action(type="share", text="Share")]))
        with pytest.raises(smooch.ValidationError, match="share"):
            smooch.validate_message_post(body, payments_enabled=False)

    def test_webhook_create_and_update(self):
        body = serialize(client.WebhookCreate(target="https://h.example/hook", triggers=["message:appUser"],
                                              include_client=True, include_full_app_user=True))
        assert smooch.validate_webhook_create(body) == {
            "target": "https://h.example/hook", "triggers": ["message:appUser"], "includeClient": True,
            "includeFullAppUser": True}
        assert smooch.validate_webhook_create(serialize(client.WebhookCreate(target="https://h.example")))[
            "triggers"] == ["message"]
        update = serialize(client.WebhookUpdate(triggers=["*"]))
        assert smooch.validate_webhook_update(update) == {"triggers": ["*"]}

    def test_integration_create(self):
        body = serialize(client.IntegrationCreate(type="telegram", token="123:ABC-def_9"))
        assert smooch.validate_integration_create(body) == {"type": "telegram", "token": "123:ABC-def_9"}

    def test_activity(self):
        body = serialize(client.ConversationActivity(role="appMaker", type="typing:start"))
        assert smooch.validate_activity(body)["type"] == "typing:start"


class TestResponsesInTheClient:
    def test_message_response(self):
        message = stored(smooch.validate_message_post({
            "role": "appMaker", "type": "carousel", "items": [
                {"title": "T", "actions": [{"type": "buy", "text": "Pay", "amount": 100}]}]},
            payments_enabled=True))
        message["items"][0]["actions"][0]["uri"] = "https://relay.example/checkout/x"
        response = deserialize(smooch.message_response(message, "c" * 24), "MessageResponse")
        assert response.message.id == message["_id"] and response.message.type == "carousel"
        assert response.message.items[0].actions[0].amount == 100
        assert response.conversation.id == "c" * 24 and response.conversation.unread_count == 0

    def test_message_response_drops_none_values(self):
        message = stored({"role": "appMaker", "type": "text", "text": None, "name": None, "avatarUrl": None,
                          "actions": [{"_id": "b" * 24, "type": "postback", "text": "A", "payload": "a"}]})
        response = deserialize(smooch.message_response(message, "c" * 24), "MessageResponse")
        assert response.message.text is None and response.message.actions[0].payload == "a"

    def test_messages_page_with_user_messages(self):
        extras = {"kind": "document", "message_id": 9, "date": 1700000000, "text": "invoice",
                  "file": {"file_id": "f", "mime_type": "application/pdf", "size": 1234, "name": "inv.pdf"}}
        user_message = smooch.appuser_message(extras, message_id="d" * 24, app_user=USER,
                                              media_url="https://relay.example/files/t", received=1.5)
        location = smooch.appuser_message(
            {"kind": "venue", "message_id": 10, "date": 1700000001,
             "location": {"latitude": 1.5, "longitude": 2.5, "title": "Cafe", "address": "Main St"}},
            message_id="e" * 24, app_user=USER, media_url=None, received=2.5)
        alert = smooch.big_file_alert({"kind": "video", "message_id": 11, "date": 1700000002,
                                       "file": {"name": "big.mp4", "size": 30 * 2**20, "mime_type": "video/mp4"}},
                                      message_id="f" * 24, app_user=USER, received=3.5, limit=20 * 2**20)
        page = smooch.messages_page([user_message, location, alert], USER, next_url="https://relay.example/next")
        response = deserialize(page, "GetMessagesResponse")
        assert [m.type for m in response.messages] == ["file", "location", "text"]
        assert response.messages[0].source.original_message_id == "9"
        assert response.messages[1].coordinates.lat == 1.5
        assert response.messages[1].location.name == "Cafe"
        assert response.next == "https://relay.example/next"
        assert response.conversation.id == USER["conversation_id"]

    def test_app_user_full_and_truncated(self):
        response = deserialize({"appUser": smooch.app_user_object(USER, full=True, integration_id="i" * 24)},
                               "AppUserResponse")
        user = response.app_user
        assert user.id == USER["_id"] and user.given_name == "Ada" and user.conversation_started is True
        assert user.signed_up_at == "2023-11-14T22:13:20.500Z"
        client_object = user.clients[0]
        assert client_object.platform == "telegram" and client_object.external_id == "4242"
        assert client_object.display_name == "Ada Lovelace" and client_object.status == "active"
        assert client_object.raw["username"] == "ada"
        truncated = deserialize({"appUser": smooch.app_user_object(USER, full=False)}, "AppUserResponse")
        assert truncated.app_user.id == USER["_id"]

    def test_app_user_without_optional_names(self):
        bare = {"_id": "b" * 24, "telegram_user_id": 7, "chat_id": 7, "given_name": None, "surname": None,
                "username": None, "language_code": None, "signed_up_at": 0.0, "conversation_started": False,
                "blocked": True, "properties": None}
        user = deserialize({"appUser": smooch.app_user_object(bare, full=True)}, "AppUserResponse").app_user
        assert user.clients[0].display_name == "Telegram user 7" and user.clients[0].status == "blocked"
        assert user.clients[0].active is False and user.properties == {}

    def test_webhook_objects(self):
        hook = {"id": "w" * 24, "target": "https://h.example", "triggers": ["message"], "secret": "s" * 40,
                "include_full_app_user": True, "include_client": False}
        webhook = deserialize({"webhook": smooch.webhook_object(hook)}, "WebhookResponse").webhook
        assert webhook.id == "w" * 24 and webhook.secret == "s" * 40 and webhook.version == "v1.1"
        assert webhook.include_full_app_user is True
        listed = deserialize({"webhooks": [smooch.webhook_object(hook, include_secret=False)]},
                             "ListWebhooksResponse")
        assert listed.webhooks[0].secret is None

    def test_integration_object(self):
        body = {"integration": smooch.integration_object("i" * 24, status="active", username="relay_bot")}
        integration = deserialize(body, "IntegrationResponse").integration
        assert integration.id == "i" * 24 and integration.type == "telegram" and integration.username == "relay_bot"
        listed = deserialize({"integrations": [smooch.integration_object("i" * 24, status="error",
                                                                         error="token revoked")]},
                             "ListIntegrationsResponse")
        assert listed.integrations[0].status == "error" and listed.integrations[0].error == "token revoked"
