"""Smooch objects and payloads built from Telegram extras and store rows; telegram_html and reply matching."""

import random
from collections import Counter
from html.parser import HTMLParser

import pytest

from smoochrelay import smooch

USER = {
    "_id": "5a2c1b9f0e4d3c2b1a098765", "telegram_user_id": 4242, "chat_id": 4242, "given_name": "Ada",
    "surname": "Lovelace", "username": "ada", "language_code": "en", "signed_up_at": 0.0,
    "conversation_started": True, "blocked": False, "properties": {}, "conversation_id": "c" * 24,
}


def extras(kind, **fields):
    return {"update_id": 1, "kind": kind, "chat_id": 4242, "message_id": 77, "date": 1700000000,
            "user": {"id": 4242}, "text": None, "file": None, "location": None, "contact": None, **fields}


def message(kind, media_url=None, **fields):
    return smooch.appuser_message(extras(kind, **fields), message_id="m" * 24, app_user=USER,
                                  media_url=media_url, received=12.5)


def test_text_message_envelope():
    assert message("text", text="hello") == {
        "_id": "m" * 24, "role": "appUser", "authorId": USER["_id"], "name": "Ada Lovelace", "received": 12.5,
        "source": {"type": "telegram", "originalMessageId": "77", "originalMessageTimestamp": 1700000000.0},
        "type": "text", "text": "hello",
    }


@pytest.mark.parametrize(("user", "name"), [
    ({"given_name": "Ada", "surname": None, "username": "ada"}, "Ada"),
    ({"given_name": None, "surname": None, "username": "ada"}, "@ada"),
    ({"given_name": None, "surname": None, "username": None, "telegram_user_id": 9}, "Telegram user 9"),
])
def test_display_name(user, name):
    assert smooch.display_name(user) == name


@pytest.mark.parametrize(("kind", "mime"), [("photo", "image/jpeg"), ("sticker", "image/webp")])
def test_photo_and_sticker_are_images(kind, mime):
    result = message(kind, media_url="https://r.example/f/1", text="look",
                     file={"file_id": "x", "mime_type": mime, "size": 10, "emoji": "😀"})
    assert result["type"] == "image" and result["mediaUrl"] == "https://r.example/f/1"
    assert result["mediaType"] == mime and result["text"] == "look"
    assert "mediaSize" not in result and "metadata" not in result
    assert ("altText" in result) is (kind == "sticker")


@pytest.mark.parametrize("kind", ["document", "audio", "voice", "video", "video_note", "animation"])
def test_files(kind):
    result = message(kind, media_url="https://r.example/f/2",
                     file={"file_id": "x", "mime_type": "application/pdf", "size": 2048, "name": "a.pdf"})
    assert result["type"] == "file" and result["mediaSize"] == 2048 and result["mediaType"] == "application/pdf"
    assert result["metadata"] == {"fileName": "a.pdf"}
    assert "text" not in result


def test_file_without_name_or_size_leaves_them_out():
    result = message("voice", media_url="https://r.example/f/3", text="listen",
                     file={"file_id": "x", "mime_type": "audio/ogg", "size": None, "name": None})
    assert result["text"] == "listen" and "mediaSize" not in result and "metadata" not in result
    assert None not in result.values()


def test_location_and_venue():
    plain = message("location", location={"latitude": 45.5261583, "longitude": -73.595346})
    assert plain["type"] == "location"
    assert plain["text"] == "Location shared:\nhttps://maps.google.com/maps?q=45.5261583,-73.595346"
    assert plain["coordinates"] == {"lat": 45.5261583, "long": -73.595346}
    venue = message("venue", location={"latitude": 1, "longitude": 2, "title": "Cafe", "address": "Main St"})
    assert venue["text"].split("\n")[0] == "Cafe, Main St"
    assert venue["text"].endswith("q=1,2") and venue["location"] == {"name": "Cafe", "address": "Main St"}


def test_contact():
    result = message("contact", contact={"phone_number": "+15551234", "first_name": "Bob", "last_name": None,
                                         "user_id": 55})
    assert result["type"] == "text" and result["text"] == "Contact shared:\nBob\n+15551234"
    assert result["metadata"] == {"contactName": "Bob", "contactPhoneNumber": "+15551234", "contactUserId": 55}


def test_callback_is_not_a_message():
    with pytest.raises(ValueError, match="postback"):
        message("callback", callback_payload="P")


def test_big_file_alert():
    alert = smooch.big_file_alert(
        extras("document", text="contract", file={"file_id": "x", "name": "big.zip", "size": 25 * 2**20,
                                                   "mime_type": "application/zip"}),
        message_id="m" * 24, app_user=USER, received=1.0, limit=20 * 2**20)
    assert alert["type"] == "text" and alert["role"] == "appUser" and "mediaUrl" not in alert
    assert alert["text"] == ("[file too large to relay] big.zip (25.0 MB): Telegram bots cannot download files "
                             "over 20 MB\ncontract")
    assert alert["metadata"] == {
        "alert": "file_too_large", "fileName": "big.zip", "mediaType": "application/zip",
        "mediaSize": 25 * 2**20, "limit": 20 * 2**20, "reason": "Telegram bots cannot download files over 20 MB",
    }


def test_big_file_alert_without_file_details():
    alert = smooch.big_file_alert(extras("video", file={"file_id": "x"}), message_id="m" * 24, app_user=USER,
                                  received=1.0, limit=20 * 2**20)
    assert alert["text"].startswith("[file too large to relay] video file: ")
    assert set(alert["metadata"]) == {"alert", "limit", "reason"}


def test_webhook_payload():
    payload = smooch.webhook_payload(
        "message:appUser", app_id="a" * 24, app_user=smooch.app_user_object(USER, full=False),
        conversation_id="c" * 24, timestamp=5.0, messages=[{"_id": "m"}], referral=None,
    )
    assert payload == {
        "trigger": "message:appUser", "app": {"_id": "a" * 24},
        "appUser": {"_id": USER["_id"], "conversationStarted": True}, "conversation": {"_id": "c" * 24},
        "version": "v1.1", "timestamp": 5.0, "messages": [{"_id": "m"}],
    }
    assert isinstance(smooch.webhook_payload("postback", app_id="a", app_user={}, conversation_id="c")[
        "timestamp"], float)


def test_postback_entry():
    assert smooch.postback_entry({"type": "postback", "payload": "P"}) == {"action": {"type": "postback",
                                                                                      "payload": "P"}}
    assert smooch.postback_entry({"type": "postback"}, {"_id": "m"})["message"] == {"_id": "m"}


def test_delivery_events():
    assert smooch.delivery_channel_event({"_id": "m" * 24, "text": "x"}) == {
        "message": {"_id": "m" * 24}, "destination": {"type": "telegram"}, "isFinalEvent": True}
    failure = smooch.delivery_failure_event({"_id": "m" * 24}, "blocked", "Forbidden: bot was blocked by the user")
    assert failure["error"] == {
        "code": "user_blocked", "message": smooch.DELIVERY_ERROR_MESSAGES["user_blocked"],
        "underlyingError": {"message": "Forbidden: bot was blocked by the user"}}
    assert failure["isFinalEvent"] is True and failure["destination"] == {"type": "telegram"}
    assert "underlyingError" not in smooch.delivery_failure_event({"_id": "m"}, "unavailable")["error"]


@pytest.mark.parametrize(("backend", "code"), [
    ("blocked", "user_blocked"), ("chat_not_found", "user_not_found"), ("bad_request", "bad_request"),
    ("unavailable", "channel_unavailable"), ("not_connected", "integration_not_connected"), ("odd", "odd"),
])
def test_delivery_error_codes(backend, code):
    assert smooch.delivery_error_code(backend) == code


def test_integration_status_is_checked():
    with pytest.raises(ValueError):
        smooch.integration_object("i", status="connected")


def test_iso_time():
    assert smooch.iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert smooch.iso_time(1700000000.123) == "2023-11-14T22:13:20.123Z"


def test_client_id_is_stable_and_distinct():
    assert smooch.client_id("a") == smooch.client_id("a") != smooch.client_id("b")


class TestReplyMatching:
    ACTIONS = [{"type": "reply", "text": "Yes please", "payload": "Y"},
               {"type": "locationRequest", "text": "Send location"},
               {"type": "reply", "text": "yes PLEASE", "payload": "exact"}]

    def test_exact_match_wins(self):
        assert smooch.action_for_reply_text(self.ACTIONS, "yes PLEASE")["payload"] == "exact"

    def test_casefolded_and_trimmed(self):
        assert smooch.action_for_reply_text(self.ACTIONS, "  YES please ")["payload"] == "Y"

    def test_no_match(self):
        assert smooch.action_for_reply_text(self.ACTIONS, "Send location") is None
        assert smooch.action_for_reply_text(None, "Yes please") is None
        assert smooch.action_for_reply_text(self.ACTIONS, "") is None


class TagChecker(HTMLParser):
    """Fails on any tag Telegram's HTML mode does not know here, on unbalanced tags, and on stray '<'."""

    ALLOWED = {"b", "i", "s", "a", "code"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        assert tag in self.ALLOWED, tag
        if tag == "a":
            assert [name for name, _ in attrs] == ["href"] and attrs[0][1].startswith(("http://", "https://"))
        else:
            assert attrs == []
        self.stack.append(tag)
        self.text.extend(value for _, value in attrs)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(source):
    output = smooch.telegram_html(source)
    checker = TagChecker()
    checker.feed(output)
    checker.close()
    assert checker.stack == []
    assert "<" not in output.replace("<b>", "").replace("</b>", "").replace("<i>", "").replace("</i>", "") \
        .replace("<s>", "").replace("</s>", "").replace("<code>", "").replace("</code>", "") \
        .replace("</a>", "").replace("<a href=", "")
    return output, "".join(checker.text)


@pytest.mark.parametrize(("source", "expected"), [
    ("*bold* and _it_ and ~gone~", "<b>bold</b> and <i>it</i> and <s>gone</s>"),
    ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
    ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
    ("`x*y*z`", "<code>x*y*z</code>"),
    ("[Site](https://x.example/?a=1&b=2)", '<a href="https://x.example/?a=1&amp;b=2">Site</a>'),
    ("go to https://x.example/a_b_c.", 'go to <a href="https://x.example/a_b_c">https://x.example/a_b_c</a>.'),
    ("*bold _and italic_*", "<b>bold <i>and italic</i></b>"),
    ("* not bold *", "* not bold *"),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
])
def test_telegram_html_examples(source, expected):
    assert smooch.telegram_html(source) == expected


def test_telegram_html_property_random_strings():
    alphabet = "ab _*~`[]()<>&\"'\n:/.hpst" + "é😀"
    pieces = ["https://x.example/a_b", "http://", "[l](https://y.example)", "*", "_", "~", "`", "&amp;", "<b>"]
    generator = random.Random(20240601)
    for _ in range(3000):
        parts = []
        for _ in range(generator.randint(0, 12)):
            if generator.random() < 0.3:
                parts.append(generator.choice(pieces))
            else:
                parts.append("".join(generator.choice(alphabet) for _ in range(generator.randint(1, 6))))
        source = "".join(parts)
        _, visible = check_html(source)
        # Nothing is lost or invented but markup: the letters of the source are all in the text or a link.
        shown = Counter(c for c in visible if c.isalnum())
        given = Counter(c for c in source if c.isalnum())
        assert shown >= given and set(shown) <= set(given), source
