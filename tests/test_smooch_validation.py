"""Smooch v1.1 request validation: every rule accepts what Smooch accepts and refuses the rest, naming the field."""

import re

import pytest

from smoochrelay import smooch
from smoochrelay.smooch import ValidationError


def post(body, payments=True, **kwargs):
    return smooch.validate_message_post(body, payments_enabled=payments, **kwargs)


def refused(body, field, pattern=None, payments=True, **kwargs):
    with pytest.raises(ValidationError) as caught:
        post(body, payments=payments, **kwargs)
    assert caught.value.field == field
    assert field in caught.value.description or field == "body"
    if pattern:
        assert re.search(pattern, caught.value.description), caught.value.description
    return caught.value


def text(**fields):
    return {"role": "appMaker", "type": "text", "text": "hi", **fields}


ID = re.compile(r"[0-9a-f]{24}")


def test_new_id_is_24_hex_and_unique():
    ids = {smooch.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(ID.fullmatch(i) for i in ids)


def test_error_body_shape():
    assert smooch.error_body("bad_request", "x is required") == {
        "error": {"code": "bad_request", "description": "x is required"}
    }


def test_plain_text_message_is_normalised():
    assert post(text(name="Agent", avatarUrl="https://a.example/x.png", metadata={"k": 1})) == {
        "role": "appMaker", "type": "text", "text": "hi", "name": "Agent", "avatarUrl": "https://a.example/x.png",
        "metadata": {"k": 1},
    }


@pytest.mark.parametrize("body", [None, [], "text", 3])
def test_body_must_be_an_object(body):
    refused(body, "body", "JSON object")


def test_unknown_top_level_field_is_named():
    refused(text(colour="red"), "colour", "not a known field")


def test_role_app_user_is_refused_with_a_reason():
    refused(text(role="appUser"), "role", "appUser is not accepted.*appMaker")


@pytest.mark.parametrize("role", [None, "whisper", "admin"])
def test_role_must_be_app_maker(role):
    refused(text(role=role), "role", "appMaker")


def test_type_form_is_refused_clearly():
    refused(text(type="form"), "type", "form messages are not supported")


@pytest.mark.parametrize("kind", [None, "video", "TEXT"])
def test_type_must_be_known(kind):
    refused(text(type=kind), "type", "text, image, file, location, carousel, list")


def test_fields_belong_to_forms():
    refused(text(fields=[{"type": "text", "name": "a", "label": "A"}]), "fields", "form")


def test_text_required_without_actions():
    refused({"role": "appMaker", "type": "text"}, "text", "required")
    refused(text(text=""), "text", "required")


def test_text_may_be_omitted_when_actions_are_given():
    result = post({"role": "appMaker", "type": "text", "actions": [{"type": "postback", "text": "A", "payload": "a"}]})
    assert "text" not in result
    assert result["actions"][0]["payload"] == "a"


def test_text_length_limit():
    assert post(text(text="x" * smooch.MAX_TEXT_LENGTH))["text"] == "x" * smooch.MAX_TEXT_LENGTH
    refused(text(text="x" * (smooch.MAX_TEXT_LENGTH + 1)), "text", str(smooch.MAX_TEXT_LENGTH))


def test_text_must_be_a_string():
    refused(text(text=5), "text", "string")


@pytest.mark.parametrize("kind", ["image", "file"])
def test_media_messages_need_an_http_media_url(kind):
    refused({"role": "appMaker", "type": kind}, "mediaUrl", f"required for {kind}")
    refused({"role": "appMaker", "type": kind, "mediaUrl": "ftp://x.example/a"}, "mediaUrl", "http")
    refused({"role": "appMaker", "type": kind, "mediaUrl": "/relative.png"}, "mediaUrl", "http")
    result = post({"role": "appMaker", "type": kind, "mediaUrl": "https://x.example/a.pdf",
                   "mediaType": "application/pdf", "text": "caption"})
    assert result == {"role": "appMaker", "type": kind, "mediaUrl": "https://x.example/a.pdf",
                      "mediaType": "application/pdf", "text": "caption"}


def test_media_type_must_look_like_a_mime_type():
    refused({"role": "appMaker", "type": "file", "mediaUrl": "https://x.example/a", "mediaType": "pdf"},
            "mediaType", "MIME")


def test_media_url_only_on_media_messages():
    refused(text(mediaUrl="https://x.example/a.png"), "mediaUrl", "only allowed on image and file")


def location(**coordinates):
    return {"role": "appMaker", "type": "location", "coordinates": coordinates}


def test_location_message():
    assert post(location(lat=45.5, long=-73))["coordinates"] == {"lat": 45.5, "long": -73.0}
    named = post({**location(lat=1, long=2), "location": {"name": "Shop", "address": "1 Main St"}})
    assert named["location"] == {"name": "Shop", "address": "1 Main St"}


@pytest.mark.parametrize(("coordinates", "field"), [
    ({"long": 1}, "coordinates.lat"),
    ({"lat": 1}, "coordinates.long"),
    ({"lat": 91, "long": 0}, "coordinates.lat"),
    ({"lat": 0, "long": -180.5}, "coordinates.long"),
    ({"lat": "1", "long": 0}, "coordinates.lat"),
    ({"lat": True, "long": 0}, "coordinates.lat"),
    ({"lat": 0, "long": 0, "alt": 3}, "coordinates.alt"),
])
def test_location_coordinates_are_checked(coordinates, field):
    refused(location(**coordinates), field)


def test_location_needs_coordinates_and_coordinates_need_location():
    refused({"role": "appMaker", "type": "location"}, "coordinates", "required")
    refused(text(coordinates={"lat": 1, "long": 1}), "coordinates", "only allowed on location")


def item(**fields):
    return {"title": "Taco", "actions": [{"type": "postback", "text": "Buy", "payload": "TACO"}], **fields}


def test_carousel_items_are_normalised_with_ids():
    result = post({"role": "appMaker", "type": "carousel", "items": [
        item(description="Yum", mediaUrl="https://x.example/t.png", mediaType="image/png", size="large"),
        item(title="Burrito", actions=[{"type": "link", "text": "More", "uri": "https://x.example"}]),
    ]})
    first, second = result["items"]
    assert ID.fullmatch(first["_id"]) and ID.fullmatch(first["actions"][0]["_id"])
    assert first["description"] == "Yum" and first["size"] == "large" and first["mediaType"] == "image/png"
    assert second["actions"][0]["uri"] == "https://x.example"
    assert first["_id"] != second["_id"]


@pytest.mark.parametrize("kind", ["carousel", "list"])
def test_items_count_limits(kind):
    refused({"role": "appMaker", "type": kind}, "items", "required")
    refused({"role": "appMaker", "type": kind, "items": []}, "items", "1 to 10")
    refused({"role": "appMaker", "type": kind, "items": [item()] * 11}, "items", "1 to 10")
    assert len(post({"role": "appMaker", "type": kind, "items": [item()] * 10})["items"]) == 10


def test_items_only_on_carousel_and_list():
    refused(text(items=[item()]), "items", "only allowed on carousel and list")


def test_item_rules():
    def carousel(*items):
        return {"role": "appMaker", "type": "carousel", "items": list(items)}
    refused(carousel({"actions": item()["actions"]}), "items[0].title", "required")
    refused(carousel(item(title="")), "items[0].title", "empty")
    refused(carousel({"title": "T"}), "items[0].actions", "required")
    refused(carousel(item(actions=[])), "items[0].actions", "1 to 3")
    refused(carousel(item(actions=item()["actions"] * 4)), "items[0].actions", "1 to 3")
    refused(carousel(item(), item(size="huge")), "items[1].size", "compact, large")
    refused(carousel(item(mediaUrl="javascript:alert(1)")), "items[0].mediaUrl", "http")
    refused(carousel(item(colour=1)), "items[0].colour", "not a known field")
    refused(carousel(item(actions=[{"type": "reply", "text": "R", "payload": "r"}])),
            "items[0].actions[0].type", "link, postback, webview, buy")
    refused(carousel(item(actions=[{"type": "share"}])), "items[0].actions[0].type",
            "share actions are not supported on Telegram")


def test_list_takes_top_level_actions():
    result = post({"role": "appMaker", "type": "list", "items": [item()],
                   "actions": [{"type": "link", "text": "All", "uri": "https://x.example"}]})
    assert result["actions"][0]["type"] == "link"


def test_carousel_top_level_actions_must_be_quick_replies():
    refused({"role": "appMaker", "type": "carousel", "items": [item()],
             "actions": [{"type": "link", "text": "All", "uri": "https://x.example"}]}, "actions", "reply")
    ok = post({"role": "appMaker", "type": "carousel", "items": [item()],
               "actions": [{"type": "reply", "text": "More", "payload": "more"}]})
    assert ok["actions"][0]["type"] == "reply"


def actions(*acts, **extra):
    return text(actions=list(acts), **extra)


def test_every_action_gets_its_own_id():
    result = post(actions({"type": "postback", "text": "A", "payload": "a"},
                          {"type": "link", "text": "B", "uri": "https://b.example"}))
    first, second = result["actions"]
    assert ID.fullmatch(first["_id"]) and ID.fullmatch(second["_id"]) and first["_id"] != second["_id"]


def test_client_supplied_action_id_is_replaced():
    result = post(actions({"_id": "mine", "type": "postback", "text": "A", "payload": "a"}))
    assert result["actions"][0]["_id"] != "mine"


def test_share_actions_are_refused():
    refused(actions({"type": "share"}), "actions[0].type", "share actions are not supported on Telegram$")


@pytest.mark.parametrize("kind", ["call", None, "LINK"])
def test_unknown_action_type(kind):
    refused(actions({"type": kind, "text": "x"}), "actions[0].type", "must be one of")


def test_action_text_required():
    refused(actions({"type": "postback", "payload": "a"}), "actions[0].text", "required")
    refused(actions({"type": "postback", "text": "x" * 257, "payload": "a"}), "actions[0].text", "256")


@pytest.mark.parametrize("kind", ["link", "webview"])
def test_link_and_webview_need_http_uri(kind):
    refused(actions({"type": kind, "text": "Go"}), "actions[0].uri", f"required for {kind}")
    refused(actions({"type": kind, "text": "Go", "uri": "tel:+1555"}), "actions[0].uri", "http")


def test_webview_fallback_defaults_to_uri_and_is_checked():
    result = post(actions({"type": "webview", "text": "Go", "uri": "https://w.example", "size": "tall"}))
    assert result["actions"][0]["fallback"] == "https://w.example"
    explicit = post(actions({"type": "webview", "text": "Go", "uri": "https://w.example",
                             "fallback": "https://f.example"}))
    assert explicit["actions"][0]["fallback"] == "https://f.example"
    refused(actions({"type": "webview", "text": "Go", "uri": "https://w.example", "fallback": "nope"}),
            "actions[0].fallback", "http")
    refused(actions({"type": "webview", "text": "Go", "uri": "https://w.example", "size": "big"}),
            "actions[0].size", "compact, tall, full")


@pytest.mark.parametrize("kind", ["postback", "reply"])
def test_postback_and_reply_need_a_payload_within_the_limit(kind):
    refused(actions({"type": kind, "text": "A"}), "actions[0].payload", f"required for {kind}")
    refused(actions({"type": kind, "text": "A", "payload": 7}), "actions[0].payload", "string")
    refused(actions({"type": kind, "text": "A", "payload": "p" * 1001}), "actions[0].payload", "1000 characters")
    assert post(actions({"type": kind, "text": "A", "payload": "p" * 1000}))["actions"][0]["payload"] == "p" * 1000


def test_fields_of_another_action_type_are_refused():
    refused(actions({"type": "postback", "text": "A", "payload": "a", "uri": "https://x.example"}),
            "actions[0].uri", "not a known field of a postback action")


def test_reply_and_location_request_go_together():
    result = post(actions({"type": "reply", "text": "Yes", "payload": "Y", "iconUrl": "https://i.example/y.png"},
                          {"type": "locationRequest", "text": "Where?"}))
    assert [a["type"] for a in result["actions"]] == ["reply", "locationRequest"]


@pytest.mark.parametrize("other", [
    {"type": "postback", "text": "P", "payload": "p"},
    {"type": "link", "text": "L", "uri": "https://l.example"},
])
def test_reply_mixed_with_anything_else_is_refused(other):
    refused(actions({"type": "reply", "text": "Yes", "payload": "Y"}, other), "actions[1]", "alone or together")
    refused(actions(other, {"type": "locationRequest", "text": "Where?"}), "actions[0]", "alone or together")


def buy(**fields):
    return {"type": "buy", "text": "Pay", "amount": 999, **fields}


def test_buy_action_is_offered_without_uri_in_default_currency():
    action = post(actions(buy()))["actions"][0]
    assert action["state"] == "offered" and action["currency"] == "usd" and action["amount"] == 999
    assert "uri" not in action
    assert post(actions(buy()), default_currency="eur")["actions"][0]["currency"] == "eur"
    assert post(actions(buy(currency="JPY")))["actions"][0]["currency"] == "jpy"


@pytest.mark.parametrize("amount", [0, -5, 1.5, "999", True, smooch.MAX_AMOUNT + 1])
def test_buy_amount_must_be_a_positive_integer_within_stripe_limits(amount):
    refused(actions(buy(amount=amount)), "actions[0].amount", "99999999")


def test_buy_amount_bounds_accepted():
    assert post(actions(buy(amount=1)))["actions"][0]["amount"] == 1
    assert post(actions(buy(amount=smooch.MAX_AMOUNT)))["actions"][0]["amount"] == smooch.MAX_AMOUNT
    refused(actions({"type": "buy", "text": "Pay"}), "actions[0].amount", "required")


@pytest.mark.parametrize("currency", ["xyz", "dollars", 840, ""])
def test_buy_currency_must_be_stripe_supported(currency):
    refused(actions(buy(currency=currency)), "actions[0].currency", "ISO 4217")


def test_buy_without_payments_has_its_own_code():
    error = refused(actions(buy()), "actions[0]", "payments", payments=False)
    assert error.code == "payments_not_configured"
    shorthand = refused(text(text="$[Pay](9.99)"), "text", "payments", payments=False)
    assert shorthand.code == "payments_not_configured"


def test_default_error_code_is_bad_request():
    assert refused(text(colour=1), "colour").code == "bad_request"


def test_metadata_must_be_flat_scalars():
    assert post(text(metadata={"a": "x", "b": 1, "c": 1.5, "d": False}))["metadata"] == {
        "a": "x", "b": 1, "c": 1.5, "d": False}
    refused(text(metadata={"a": {"b": 1}}), "metadata.a", "flat")
    refused(text(metadata={"a": [1]}), "metadata.a", "flat")
    refused(text(metadata={"a": None}), "metadata.a", "flat")
    refused(text(metadata=[1]), "metadata", "object")
    refused(actions({"type": "postback", "text": "A", "payload": "a", "metadata": {"x": {}}}),
            "actions[0].metadata.x")


def test_metadata_size_limit_is_4kb():
    just = {"k": "v" * (smooch.METADATA_MAX_BYTES - len('{"k":""}'))}
    assert post(text(metadata=just))["metadata"] == just
    refused(text(metadata={"k": "v" * smooch.METADATA_MAX_BYTES}), "metadata", "4096 bytes")


def test_optional_fields_from_the_official_client_are_accepted():
    result = post(text(
        email="agent@example.com", altText="alt", payload="P", blockChatInput=True,
        displaySettings={"imageAspectRatio": "square"}, destination={"integrationType": "telegram"},
        override={"whatsapp": {"payload": {}}},
    ))
    assert result["displaySettings"] == {"imageAspectRatio": "square"}
    assert result["blockChatInput"] is True and result["payload"] == "P" and result["email"] == "agent@example.com"
    assert "override" not in result and "destination" not in result


def test_destination_must_be_telegram():
    refused(text(destination={"integrationType": "messenger"}), "destination.integrationType", "telegram")
    refused(text(destination={"integrationId": "other"}), "destination.integrationId", integration_id="mine")
    assert post(text(destination={"integrationId": "mine"}), integration_id="mine")["text"] == "hi"


def test_display_settings_and_avatar_checked():
    refused(text(displaySettings={"imageAspectRatio": "round"}), "displaySettings.imageAspectRatio")
    refused(text(avatarUrl="not a url"), "avatarUrl", "http")
    refused(text(blockChatInput="yes"), "blockChatInput", "true or false")


class TestShorthand:
    def test_each_kind_of_shorthand_becomes_an_action(self):
        result = post(text(text=(
            "Pick one %[Site](https://x.example/p) %[More](postback:MORE) $[Buy]($9.99) "
            "$[Tip](5)"
        )))
        assert result["text"] == "Pick one"
        kinds = [(a["type"], a["text"]) for a in result["actions"]]
        assert kinds == [("link", "Site"), ("postback", "More"), ("buy", "Buy"), ("buy", "Tip")]
        assert result["actions"][0]["uri"] == "https://x.example/p"
        assert result["actions"][1]["payload"] == "MORE"
        assert result["actions"][2]["amount"] == 999 and result["actions"][2]["state"] == "offered"
        assert result["actions"][3]["amount"] == 500

    def test_quick_replies_and_location_request(self):
        result = post(text(text="Where are you?\n%[Yes](reply:Y) %[Send location](location)"))
        assert result["text"] == "Where are you?"
        assert [a["type"] for a in result["actions"]] == ["reply", "locationRequest"]
        assert result["actions"][0]["payload"] == "Y"

    def test_mixing_rules_apply_after_expansion(self):
        refused(text(text="%[Yes](reply:Y) %[Site](https://x.example)"), "actions[1]", "alone or together")

    def test_shorthand_is_appended_after_explicit_actions(self):
        result = post(text(text="x %[B](postback:b)", actions=[{"type": "postback", "text": "A", "payload": "a"}]))
        assert [a["text"] for a in result["actions"]] == ["A", "B"]

    def test_zero_decimal_currency(self):
        assert post(text(text="$[Pay](500)"), default_currency="jpy")["actions"][0]["amount"] == 500
        refused(text(text="$[Pay](5.5)"), "text", "decimals", default_currency="jpy")

    def test_image_shorthand_makes_an_image_message(self):
        result = post(text(text="Look ![](https://x.example/a.png) here"))
        assert result["type"] == "image" and result["mediaUrl"] == "https://x.example/a.png"
        assert result["text"] == "Look here"

    def test_image_shorthand_does_not_override_media_url(self):
        result = post({"role": "appMaker", "type": "image", "mediaUrl": "https://x.example/b.png",
                       "text": "see ![](https://x.example/a.png)"})
        assert result["mediaUrl"] == "https://x.example/b.png"

    def test_unrecognised_targets_and_other_types_are_left_alone(self):
        assert post(text(text="%[X](mailto:a@b)"))["text"] == "%[X](mailto:a@b)"
        carousel = post({"role": "appMaker", "type": "carousel", "text": "%[A](postback:a)", "items": [item()]})
        assert carousel["text"] == "%[A](postback:a)" and "actions" not in carousel

    def test_only_shorthand_leaves_no_text(self):
        result = post(text(text="  %[A](postback:a)  "))
        assert "text" not in result and result["actions"][0]["payload"] == "a"

    def test_shorthand_on_file_messages(self):
        result = post({"role": "appMaker", "type": "file", "mediaUrl": "https://x.example/a.pdf",
                       "text": "Invoice %[Pay online](https://pay.example)"})
        assert result["text"] == "Invoice" and result["actions"][0]["type"] == "link"

    def test_expand_shorthand_directly(self):
        assert smooch.expand_shorthand("plain *text*") == ("plain *text*", [], None)


class TestWebhooks:
    def test_create_defaults(self):
        assert smooch.validate_webhook_create({"target": "https://h.example/hook"}) == {
            "target": "https://h.example/hook", "triggers": ["message"],
            "includeFullAppUser": False, "includeClient": False,
        }

    def test_create_with_every_field(self):
        result = smooch.validate_webhook_create({
            "target": "http://h.example/hook", "triggers": ["*", "postback", "postback", "message:delivery:failure"],
            "includeFullAppUser": True, "includeClient": True,
        })
        assert result["triggers"] == ["*", "postback", "message:delivery:failure"]
        assert result["includeFullAppUser"] is True and result["includeClient"] is True

    @pytest.mark.parametrize("trigger", sorted(smooch.ALL_WEBHOOK_TRIGGERS))
    def test_every_known_trigger_is_accepted(self, trigger):
        assert smooch.validate_webhook_create({"target": "https://h.example", "triggers": [trigger]})["triggers"] == [
            trigger]

    def test_unknown_trigger_is_named(self):
        with pytest.raises(ValidationError) as caught:
            smooch.validate_webhook_create({"target": "https://h.example", "triggers": ["message", "delivery:success"]})
        assert caught.value.field == "triggers[1]" and "'delivery:success'" in caught.value.description

    @pytest.mark.parametrize(("body", "field"), [
        ({}, "target"),
        ({"target": "ftp://h.example"}, "target"),
        ({"target": "h.example/hook"}, "target"),
        ({"target": "https://h.example", "triggers": []}, "triggers"),
        ({"target": "https://h.example", "triggers": "message"}, "triggers"),
        ({"target": "https://h.example", "triggers": [1]}, "triggers[0]"),
        ({"target": "https://h.example", "includeClient": "yes"}, "includeClient"),
        ({"target": "https://h.example", "secret": "mine"}, "secret"),
        ([], "body"),
    ])
    def test_create_refusals(self, body, field):
        with pytest.raises(ValidationError) as caught:
            smooch.validate_webhook_create(body)
        assert caught.value.field == field

    def test_update_returns_only_given_fields(self):
        assert smooch.validate_webhook_update({}) == {}
        assert smooch.validate_webhook_update({"triggers": ["postback"]}) == {"triggers": ["postback"]}
        assert smooch.validate_webhook_update({"includeClient": True}) == {"includeClient": True}
        with pytest.raises(ValidationError):
            smooch.validate_webhook_update({"target": "nope"})

    def test_max_webhooks(self):
        assert smooch.MAX_WEBHOOKS == 10

    @pytest.mark.parametrize(("triggers", "trigger", "expected"), [
        (["*"], "payment:success", True),
        (["message"], "message:appUser", True),
        (["message"], "message:appMaker", True),
        (["message"], "postback", False),
        (["message"], "message:delivery:failure", False),
        (["postback"], "postback", True),
        (["message:appUser"], "message:appMaker", False),
        ([], "message:appUser", False),
    ])
    def test_webhook_matches(self, triggers, trigger, expected):
        assert smooch.webhook_matches(triggers, trigger) is expected


class TestActivity:
    @pytest.mark.parametrize("kind", ["typing:start", "typing:stop"])
    def test_typing(self, kind):
        assert smooch.validate_activity({"role": "appMaker", "type": kind, "name": "Ann"}) == {
            "role": "appMaker", "type": kind, "name": "Ann"}

    @pytest.mark.parametrize(("body", "field"), [
        ({"role": "appUser", "type": "typing:start"}, "role"),
        ({"role": "appMaker", "type": "conversation:read"}, "type"),
        ({"role": "appMaker"}, "type"),
        ({"role": "appMaker", "type": "typing:start", "x": 1}, "x"),
    ])
    def test_refusals(self, body, field):
        with pytest.raises(ValidationError) as caught:
            smooch.validate_activity(body)
        assert caught.value.field == field


class TestIntegration:
    TOKEN = "123456789:AAEuee2FS2JYKWfDlTulfygjaIGJi4s-_x"

    def test_telegram_integration(self):
        assert smooch.validate_integration_create({"type": "telegram", "token": self.TOKEN}) == {
            "type": "telegram", "token": self.TOKEN}

    def test_other_types_do_not_exist(self):
        with pytest.raises(ValidationError, match="only telegram integrations exist here"):
            smooch.validate_integration_create({"type": "messenger", "pageAccessToken": "x"})

    @pytest.mark.parametrize("body", [
        {"type": "telegram"},
        {"type": "telegram", "token": ""},
        {"type": "telegram", "token": 12345},
        {"type": "telegram", "token": "no-colon-secret-value"},
        {"type": "telegram", "token": "123:abc/../../getMe"},
        {"type": "telegram", "token": "123:" + "a" * 300},
    ])
    def test_bad_tokens_are_refused_without_echo(self, body):
        with pytest.raises(ValidationError) as caught:
            smooch.validate_integration_create(body)
        assert caught.value.field == "token"
        token = str(body.get("token", ""))
        if token:
            assert token not in caught.value.description

    def test_unknown_field_is_named_but_value_not_echoed(self):
        with pytest.raises(ValidationError) as caught:
            smooch.validate_integration_create({"type": "telegram", "token": self.TOKEN, "secret": "s3cr3t-value"})
        assert caught.value.field == "secret" and "s3cr3t-value" not in caught.value.description
        assert self.TOKEN not in caught.value.description
