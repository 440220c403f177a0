"""Every Telegram → Smooch and Smooch → Telegram mapping, through the running relay."""

import pytest
import requests

from tests.helpers.backend_bot import wait_until
from tests.helpers.media import MediaServer

pytest_plugins = ["tests.helpers.relay_stack"]

CUSTOMER = 6001


def _user(stack, telegram_id=CUSTOMER):
    stack.sandbox.push_text(telegram_id, "hi", first_name="Grace", last_name="H", username="grace")
    return stack.app_user_id(telegram_id)


def _last_message(stack, count):
    wait_until(lambda: len(stack.events("message:appUser")) >= count, 15, "message not relayed")
    return stack.events("message:appUser")[count - 1]["messages"][0]


def test_each_inbound_kind_maps_to_its_smooch_type(relay_stack):
    stack = relay_stack
    stack.add_webhook(["message:appUser"])
    sb = stack.sandbox
    sb.push_photo(CUSTOMER, b"\xff\xd8photo-bytes" * 50, caption="my cat")
    sb.push_document(CUSTOMER, b"%PDF-1.4 doc", file_name="invoice.pdf", mime_type="application/pdf")
    sb.push_voice(CUSTOMER, b"OggS voice")
    sb.push_sticker(CUSTOMER, b"RIFF webp")
    sb.push_location(CUSTOMER, 45.5, -73.6)
    sb.push_venue(CUSTOMER, 48.85, 2.29, "Eiffel Tower", "Champ de Mars")
    sb.push_contact(CUSTOMER, "+15551234", "Alan", "Turing")
    sb.push_video(CUSTOMER, b"mp4 video")
    sb.push_video_note(CUSTOMER, b"mp4 note")
    sb.push_animation(CUSTOMER, b"mp4 gif")
    sb.push_audio(CUSTOMER, b"ID3 audio")
    messages = [_last_message(stack, n) for n in range(1, 12)]
    photo, doc, voice, sticker, location, venue, contact, video, note, animation, audio = messages
    assert photo["type"] == "image" and photo["text"] == "my cat" and photo["mediaType"] == "image/jpeg"
    assert doc["type"] == "file" and doc["mediaType"] == "application/pdf" and doc["mediaSize"] == 12
    assert sticker["type"] == "image"
    for message in (voice, video, note, animation, audio):
        assert message["type"] == "file", message
        assert message["mediaUrl"].startswith(stack.http_url + "/files/")
    assert location["type"] == "location" and location["coordinates"] == {"lat": 45.5, "long": -73.6}
    assert venue["type"] == "location" and "Eiffel Tower" in venue["text"]
    assert contact["type"] == "text" and "+15551234" in contact["text"]

    download = requests.get(doc["mediaUrl"], timeout=10)
    assert download.status_code == 200 and download.content == b"%PDF-1.4 doc"
    assert download.headers["Content-Type"].startswith("application/pdf")
    assert "/bot" not in doc["mediaUrl"]
    tampered = doc["mediaUrl"].replace("/files/", "/files/x")
    assert requests.get(tampered, timeout=10).status_code == 403


def test_big_file_alerts_the_business_and_tells_the_user(relay_stack):
    stack = relay_stack
    stack.add_webhook(["message:appUser"])
    stack.sandbox.push_big_document(CUSTOMER, size=25 * 2**20, file_name="holiday.mov")
    message = _last_message(stack, 1)
    assert "mediaUrl" not in message
    assert message["metadata"]["alert"] == "file_too_large"
    assert message["metadata"]["mediaSize"] == 25 * 2**20
    notice = stack.sandbox.wait_for(lambda r: r["method"] == "sendMessage" and r["params"].get("chat_id") == CUSTOMER)
    assert "20 MB" in notice["params"]["text"]


def test_start_with_payload_is_a_conversation_start_with_referral(relay_stack):
    stack = relay_stack
    stack.add_webhook(["conversation:start", "message:appUser"])
    stack.sandbox.push_text(CUSTOMER, "/start spring-campaign")
    event = stack.wait_event("conversation:start")
    assert event["referral"] == {"code": "spring-campaign"}
    assert event["appUser"]["conversationStarted"] is True
    assert stack.events("message:appUser") == []


def test_quick_replies_and_location_request(relay_stack):
    stack = relay_stack
    user_id = _user(stack)
    stack.add_webhook(["message:appUser"])
    response = stack.request("POST", f"/appusers/{user_id}/messages", json={
        "role": "appMaker", "type": "text", "text": "Which size?",
        "actions": [{"type": "reply", "text": "Large", "payload": "SIZE_L"},
                    {"type": "locationRequest", "text": "Share location"}]})
    assert response.status_code == 201, response.text
    sent = stack.sandbox.wait_for(lambda r: r["method"] == "sendMessage" and "keyboard" in str(r["params"]))
    assert sent["params"]["reply_markup"]["one_time_keyboard"] is True
    stack.sandbox.tap_reply(CUSTOMER, "Large")
    reply = _last_message(stack, 1)
    assert reply["text"] == "Large" and reply["payload"] == "SIZE_L"
    stack.sandbox.tap_reply(CUSTOMER, "Share location")
    assert _last_message(stack, 2)["type"] == "location"


def test_image_file_location_and_carousel_go_out(relay_stack):
    stack = relay_stack
    user_id = _user(stack)
    media = MediaServer()
    bodies = [
        {"role": "appMaker", "type": "image", "mediaUrl": media.url("/cat.jpg"), "text": "A cat"},
        {"role": "appMaker", "type": "file", "mediaUrl": media.url("/doc.pdf")},
        {"role": "appMaker", "type": "location", "coordinates": {"lat": 1.5, "long": 2.5}},
        {"role": "appMaker", "type": "carousel", "items": [
            {"title": "One", "description": "First", "actions": [
                {"type": "postback", "text": "Pick 1", "payload": "ONE"}]},
            {"title": "Two", "actions": [{"type": "link", "text": "See", "uri": "https://example.com/2"}]}]},
    ]
    for body in bodies:
        assert stack.request("POST", f"/appusers/{user_id}/messages", json=body).status_code == 201
    wait_until(lambda: len([r for r in stack.sandbox.requests() if r["method"].startswith("send")
                            and r["status"] == 200]) >= 5, 20, "not everything was sent")
    methods = [r["method"] for r in stack.sandbox.requests() if r["method"].startswith("send") and r["status"] == 200]
    assert methods == ["sendPhoto", "sendDocument", "sendLocation", "sendMessage", "sendMessage"]
    media.stop()


def test_media_telegram_cannot_fetch_is_a_delivery_failure(relay_stack):
    stack = relay_stack
    user_id = _user(stack)
    stack.add_webhook(["message:delivery:failure"])
    media = MediaServer()
    response = stack.request("POST", f"/appusers/{user_id}/messages",
                             json={"role": "appMaker", "type": "image", "mediaUrl": media.url("/missing.jpg")})
    assert response.status_code == 201
    failure = stack.wait_event("message:delivery:failure")
    assert failure["error"]["code"] == "bad_request"
    assert "failed to get http url content" in failure["error"]["underlyingError"]["message"].lower()
    media.stop()


def test_blocked_user_gets_one_delivery_failure_and_no_retry_storm(relay_stack):
    stack = relay_stack
    user_id = _user(stack)
    stack.add_webhook(["message:delivery:failure", "message:delivery:channel"])
    stack.sandbox.block_user(CUSTOMER)
    response = stack.request("POST", f"/appusers/{user_id}/messages",
                             json={"role": "appMaker", "type": "text", "text": "Are you there?"})
    assert response.status_code == 201
    failure = stack.wait_event("message:delivery:failure")
    assert failure["error"]["code"] == "user_blocked" and failure["isFinalEvent"] is True
    assert failure["message"]["_id"] == response.json()["message"]["_id"]
    attempts = [r for r in stack.sandbox.requests("sendMessage") if r["params"].get("chat_id") == CUSTOMER]
    assert len(attempts) == 1
    assert stack.events("message:delivery:channel") == []


def test_history_app_user_and_typing(relay_stack):
    stack = relay_stack
    user_id = _user(stack)
    assert stack.request("POST", f"/appusers/{user_id}/messages",
                         json={"role": "appMaker", "type": "text", "text": "Answer"}).status_code == 201
    history = stack.request("GET", f"/appusers/{user_id}/messages").json()
    assert [m["role"] for m in history["messages"]] == ["appUser", "appMaker"]
    app_user = stack.request("GET", f"/appusers/{user_id}").json()["appUser"]
    assert app_user["givenName"] == "Grace" and app_user["clients"][0]["platform"] == "telegram"
    assert app_user["clients"][0]["info"]["username"] == "grace"
    typing = stack.request("POST", f"/appusers/{user_id}/conversation/activity",
                           json={"role": "appMaker", "type": "typing:start"})
    assert typing.status_code == 200
    stack.sandbox.wait_for(lambda r: r["method"] == "sendChatAction" and r["params"]["action"] == "typing")


@pytest.mark.parametrize("mangle,status,code", [
    (lambda s: {"auth": None}, 401, "unauthorized"),
    (lambda s: {"auth": ("app_testkey", "wrong")}, 401, "unauthorized"),
    (lambda s: {"data": b"{not json", "headers": {"content-type": "application/json"}}, 400, "bad_request"),
    (lambda s: {"json": {"role": "appMaker", "type": "text", "text": "x", "bogus": 1}}, 400, "bad_request"),
    (lambda s: {"data": b"x" * (3 * 2**19)}, 413, "request_entity_too_large"),  # 1.5 MB: over the relay's limit
])
def test_bad_requests_get_clear_errors(relay_stack, mangle, status, code):
    stack = relay_stack
    user_id = _user(stack)
    kwargs = mangle(stack)
    response = stack.request("POST", f"/appusers/{user_id}/messages", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_unknown_user_app_and_route(relay_stack):
    stack = relay_stack
    assert stack.request("GET", "/appusers/000000000000000000000000").status_code == 404
    other = requests.get(f"{stack.http_url}/v1.1/apps/otherapp/webhooks", auth=stack.auth, timeout=10)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert stack.request("GET", "/nope").status_code == 404


def test_history_pages_both_ways_100_at_a_time(relay_stack):
    stack = relay_stack
    user_id = _user(stack)
    for n in range(130):
        response = stack.request("POST", f"/appusers/{user_id}/messages",
                                 json={"role": "appMaker", "type": "text", "text": f"reply {n}"})
        assert response.status_code == 201
    newest = stack.request("GET", f"/appusers/{user_id}/messages").json()
    assert len(newest["messages"]) == 100 and newest["messages"][-1]["text"] == "reply 129"
    assert "next" not in newest
    older = requests.get(newest["previous"], auth=stack.auth, timeout=10).json()
    assert [m.get("text") for m in older["messages"]] == ["hi"] + [f"reply {n}" for n in range(30)]
    assert "previous" not in older
    after = stack.request("GET", f"/appusers/{user_id}/messages",
                          params={"after": older["messages"][0]["received"]}).json()
    assert after["messages"][0]["text"] == "reply 0" and len(after["messages"]) == 100
    rest = requests.get(after["next"], auth=stack.auth, timeout=10).json()
    assert [m["text"] for m in rest["messages"]] == [f"reply {n}" for n in range(100, 130)]
    assert stack.request("GET", f"/appusers/{user_id}/messages", params={"before": "yesterday"}).status_code == 400
