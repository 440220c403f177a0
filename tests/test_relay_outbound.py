"""appMaker messages → OutgoingMessages: every Smooch type and action maps to the Telegram shape users expect."""

import json

from smoochrelay.inbound import parse_callback_payload
from smoochrelay.outbound import KEYBOARD_PROMPT, render, reply_actions


def _message(**fields):
    return {"_id": "m" * 24, "role": "appMaker", **fields}


def test_text_with_markup_and_url_and_postback_buttons():
    [out] = render(_message(type="text", text="Hi *there* & _you_", actions=[
        {"_id": "a1", "type": "link", "text": "Docs", "uri": "https://example.com/docs"},
        {"_id": "a2", "type": "postback", "text": "More", "payload": "MORE" * 40},
        {"_id": "a3", "type": "webview", "text": "Open", "uri": "https://example.com/w", "fallback": "https://e.com"},
        {"_id": "a4", "type": "buy", "text": "Pay", "amount": 999, "currency": "usd", "uri": "https://r/checkout/a4"},
    ]))
    assert out.text_format == "html"
    assert out.text == "Hi <b>there</b> &amp; <i>you</i>"
    buttons = [row[0] for row in out.inline_keyboard]
    assert [len(row) for row in out.inline_keyboard] == [1, 1, 1, 1]
    assert [(b.text, b.url) for b in buttons] == [
        ("Docs", "https://example.com/docs"), ("More", None), ("Open", "https://example.com/w"),
        ("Pay", "https://r/checkout/a4")]
    assert parse_callback_payload(buttons[1].callback_payload) == ("m" * 24, "a2")
    assert out.reply_keyboard is None


def test_quick_replies_and_location_request_make_a_reply_keyboard():
    message = _message(type="text", text="Pick one", actions=[
        {"_id": "r1", "type": "reply", "text": "Tacos", "payload": "TACOS"},
        {"_id": "r2", "type": "locationRequest", "text": "Send location"},
    ])
    [out] = render(message)
    assert out.inline_keyboard is None
    assert [(row[0].text, row[0].request_location) for row in out.reply_keyboard] == [
        ("Tacos", False), ("Send location", True)]
    assert [a["_id"] for a in reply_actions(message)] == ["r1", "r2"]


def test_actions_without_text_get_a_prompt():
    [out] = render(_message(type="text", actions=[{"_id": "r", "type": "reply", "text": "Yes", "payload": "Y"}]))
    assert out.text == KEYBOARD_PROMPT


def test_image_file_and_location():
    [image] = render(_message(type="image", mediaUrl="https://e.com/a.png", text="caption"))
    assert (image.media_kind, image.media_url, image.text) == ("photo", "https://e.com/a.png", "caption")
    [doc] = render(_message(type="file", mediaUrl="https://e.com/a.pdf"))
    assert (doc.media_kind, doc.text) == ("document", None)
    parts = render(_message(type="location", text="We are here", coordinates={"lat": 45.5, "long": -73.6}))
    assert [p.text for p in parts] == ["We are here", None]
    assert parts[1].location == (45.5, -73.6)


def test_carousel_is_one_message_per_item_with_its_buttons():
    parts = render(_message(type="carousel", items=[
        {"_id": "i1", "title": "Tacos <3", "description": "Crunchy", "mediaUrl": "https://e.com/t.jpg",
         "actions": [{"_id": "b1", "type": "postback", "text": "Order", "payload": "T"}]},
        {"_id": "i2", "title": "Ramen", "actions": [{"_id": "b2", "type": "link", "text": "Menu",
                                                     "uri": "https://e.com/m"}]},
    ]))
    assert len(parts) == 2
    assert parts[0].media_kind == "photo" and parts[0].text == "<b>Tacos &lt;3</b>\nCrunchy"
    assert json.loads(parts[0].inline_keyboard[0][0].callback_payload) == {"m": "m" * 24, "a": "b1"}
    assert parts[1].media_kind is None and parts[1].inline_keyboard[0][0].url == "https://e.com/m"


def test_every_rendered_message_is_valid_for_the_backend():
    messages = [
        _message(type="text", text="x"),
        _message(type="list", text="Lead", items=[{"_id": "i", "title": "T", "actions": [
            {"_id": "b", "type": "link", "text": "L", "uri": "https://e.com"}]}],
            actions=[{"_id": "c", "type": "postback", "text": "More", "payload": "P"}]),
    ]
    for message in messages:
        for part in render(message):
            part.validate()
