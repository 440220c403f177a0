"""Inbound: real Errbot + TGRelay + PTB against the sandbox; every kind of update → Message + extras."""

from __future__ import annotations

import pytest

from sandbox import Sandbox
from tests.helpers.backend_bot import ADMIN_ID, ROOT, TOKEN, start_bot, wait_until
from tgbackend.outgoing import InlineButton, OutgoingMessage

PLUGINS = [ROOT / "tests" / "plugins" / "probe", ROOT / "plugins" / "telegram_admin"]
EXTRA_KEYS = {"update_id", "kind", "chat_id", "message_id", "date", "user", "text", "file", "location", "contact",
              "start_payload", "callback_payload", "from_admin", "redelivered"}


@pytest.fixture(scope="module")
def env():
    sb = Sandbox(host="127.0.0.1", port=0)
    sb.start()
    sb.add_bot(TOKEN, username="relay_test_bot")
    running = start_bot(sb.url, plugin_dirs=PLUGINS, required_plugins=["Probe", "TelegramAdmin"])
    yield sb, running, running.plugin("Probe")
    running.stop()
    sb.stop()


def last_from(probe, user_id: int, count: int = 1) -> list[dict]:
    wait_until(lambda: sum(c["frm"] == user_id for c in probe.calls) >= count, 10, f"no message from {user_id}")
    return [c for c in probe.calls if c["frm"] == user_id]


def test_text_extras(env):
    sb, _, probe = env
    update = sb.push_text(2001, "hello *world*", first_name="Ann", last_name="Lee", username="ann",
                          language_code="de")
    call = last_from(probe, 2001)[0]
    extras = call["extras"]
    assert set(extras) == EXTRA_KEYS
    assert call["body"] == "hello *world*"
    assert extras["kind"] == "text" and extras["text"] == "hello *world*"
    assert extras["update_id"] == update["update_id"]
    assert extras["chat_id"] == 2001 and extras["message_id"] == update["message"]["message_id"]
    assert extras["date"] == update["message"]["date"]
    assert extras["user"] == {"id": 2001, "first_name": "Ann", "last_name": "Lee", "username": "ann",
                              "language_code": "de"}
    assert extras["from_admin"] is False and extras["redelivered"] is False
    assert extras["file"] is None and extras["callback_payload"] is None


@pytest.mark.parametrize(
    ("push", "kind", "mime"),
    [
        (lambda sb, u: sb.push_photo(u, b"\xff\xd8jpegdata" * 10, caption="look"), "photo", "image/jpeg"),
        (lambda sb, u: sb.push_document(u, b"%PDF-1", "invoice.pdf", "application/pdf", caption="pdf"),
         "document", "application/pdf"),
        (lambda sb, u: sb.push_audio(u, b"ID3audio", duration=31), "audio", "audio/mpeg"),
        (lambda sb, u: sb.push_voice(u, b"OggSvoice"), "voice", "audio/ogg"),
        (lambda sb, u: sb.push_video(u, b"mp4video", caption="vid"), "video", "video/mp4"),
        (lambda sb, u: sb.push_video_note(u, b"mp4note", length=240), "video_note", "video/mp4"),
        (lambda sb, u: sb.push_animation(u, b"gifanim"), "animation", "video/mp4"),
        (lambda sb, u: sb.push_sticker(u, b"RIFFwebp"), "sticker", "image/webp"),
        (lambda sb, u: sb.push_sticker(u, b"tgs", is_animated=True), "sticker", "application/x-tgsticker"),
        (lambda sb, u: sb.push_sticker(u, b"webm", is_video=True), "sticker", "video/webm"),
    ],
)
def test_media_kinds(env, push, kind, mime):
    sb, _, probe = env
    user_id = 3000 + len(probe.calls)
    update = push(sb, user_id)
    extras = last_from(probe, user_id)[0]["extras"]
    assert extras["kind"] == kind
    file = extras["file"]
    assert file["mime_type"] == mime
    raw = update["message"][kind]
    if kind == "photo":
        raw = raw[-1]
        assert file["width"] == raw["width"] and file["height"] == raw["height"]
    assert file["file_id"] == raw["file_id"] and file["file_unique_id"] == raw["file_unique_id"]
    assert file["size"] == raw.get("file_size")
    if kind == "video_note":
        assert file["width"] == file["height"] == 240
    if kind == "sticker":
        assert file["emoji"] == "👍"
    assert extras["text"] == update["message"].get("caption")


def test_photo_is_downloadable_through_open_file(env):
    sb, running, probe = env
    data = bytes(range(256)) * 40
    sb.push_photo(4001, data)
    file = last_from(probe, 4001)[0]["extras"]["file"]
    with running.backend.open_file(file["file_id"]) as stream:
        assert b"".join(stream.iter_chunks()) == data
        assert stream.size == len(data)


def test_location_venue_contact(env):
    sb, _, probe = env
    sb.push_location(4101, 52.52, 13.405)
    sb.push_venue(4102, 48.85, 2.35, "Louvre", "Rue de Rivoli")
    sb.push_contact(4103, "+491701234567", "Bob", "Smith", contact_user_id=77)
    assert last_from(probe, 4101)[0]["extras"]["location"] == {"latitude": 52.52, "longitude": 13.405}
    venue = last_from(probe, 4102)[0]["extras"]
    assert venue["kind"] == "venue"
    assert venue["location"] == {"latitude": 48.85, "longitude": 2.35, "title": "Louvre", "address": "Rue de Rivoli"}
    contact = last_from(probe, 4103)[0]["extras"]
    assert contact["kind"] == "contact"
    assert contact["contact"] == {"phone_number": "+491701234567", "first_name": "Bob", "last_name": "Smith",
                                  "user_id": 77}


def test_start_with_and_without_payload(env):
    sb, _, probe = env
    sb.push_text(4201, "/start campaign-42")
    sb.push_text(4201, "/start")
    first, second = last_from(probe, 4201, 2)
    assert first["extras"]["kind"] == "start" and first["extras"]["start_payload"] == "campaign-42"
    assert second["extras"]["start_payload"] == ""


def test_callback_payload_over_64_bytes_round_trips(env):
    sb, running, probe = env
    payload = "order:" + "x" * 300 + ":ünïcode"
    sb.push_text(4300 + 1, "hi")
    last_from(probe, 4301)
    ids = running.backend.send_outgoing(4301, OutgoingMessage(
        text="Pick one", inline_keyboard=[[InlineButton("Buy", callback_payload=payload),
                                           InlineButton("Docs", url="https://example.org/docs")]]))
    sent = sb.requests("sendMessage", chat_id=4301)[-1]
    data = sent["params"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert len(data.encode()) <= 64 and payload not in data
    sb.press_button(4301, ids[0], "Buy")
    extras = last_from(probe, 4301, 2)[1]["extras"]
    assert extras["kind"] == "callback" and extras["callback_payload"] == payload
    assert extras["message_id"] == ids[0]
    sb.wait_for(lambda r: r["method"] == "answerCallbackQuery", timeout=5)


def test_forged_callback_has_no_payload(env, caplog):
    sb, running, probe = env
    sb.push_text(4401, "hi")
    last_from(probe, 4401)
    ids = running.backend.send_outgoing(4401, OutgoingMessage(
        text="Pick", inline_keyboard=[[InlineButton("A", callback_payload="a")]]))
    sb.push_callback(4401, ids[0], "cb1:forged-id-never-issued", forged=True)
    extras = last_from(probe, 4401, 2)[1]["extras"]
    assert extras["kind"] == "callback" and extras["callback_payload"] is None
    assert any("never issued" in r.getMessage() for r in caplog.records)


def test_group_messages_and_edits_are_ignored_malformed_skipped(env):
    sb, _, probe = env
    before = len(probe.calls)
    sb.push_raw({"message": {"message_id": 1, "date": 1, "chat": {"id": -100123, "type": "supergroup"},
                             "from": {"id": 4501, "is_bot": False, "first_name": "G"}, "text": "group hi"}})
    sb.push_raw({"edited_message": {"message_id": 1, "date": 1, "chat": {"id": 4501, "type": "private"},
                                    "from": {"id": 4501, "is_bot": False, "first_name": "G"}, "text": "edit"}})
    sb.push_raw({"message": "not an object"})
    sb.push_text(4501, "after the junk")
    calls = last_from(probe, 4501)
    assert [c["body"] for c in calls] == ["after the junk"]
    assert len(probe.calls) == before + 1


def test_customer_cannot_run_commands_and_gets_no_answer(env):
    sb, _, probe = env
    customer = 4601
    texts = ["!help", "!telegram token 999:forged", "!plugin list", "!webhook test /echo {}", "!status", "!nope"]
    for text in texts:
        sb.push_text(customer, text)
    calls = last_from(probe, customer, len(texts))
    assert [c["body"] for c in calls] == texts
    assert all(c["extras"]["from_admin"] is False for c in calls)
    sb.push_text(ADMIN_ID, "!echo sync-marker")
    sb.wait_for(lambda r: r["method"] == "sendMessage" and r["params"].get("text") == "sync-marker")
    assert sb.requests("sendMessage", chat_id=customer) == []
    assert sb.requests("getMe")[-1]["token"] == TOKEN


def test_admin_commands_run_and_plain_admin_text_is_relayed(env):
    sb, _, probe = env
    sb.push_text(ADMIN_ID, "!telegram status")
    reply = sb.wait_for(lambda r: r["method"] == "sendMessage" and "Updates received" in r["params"].get("text", ""))
    assert "@relay_test_bot" in reply["params"]["text"]
    assert "https://t.me/relay_test_bot" in reply["params"]["text"]
    sb.push_text(ADMIN_ID, "just chatting")
    wait_until(lambda: any(c["body"] == "just chatting" for c in probe.calls), 10, "admin text not relayed")
    assert next(c for c in probe.calls if c["body"] == "just chatting")["extras"]["from_admin"] is True


def test_plugin_failure_leaves_update_unacknowledged_and_retries(env):
    sb, _, probe = env
    with probe.changed:
        probe.fail_times = 2
    update = sb.push_text(4701, "must not be lost")
    calls = last_from(probe, 4701)
    assert probe.failures >= 2
    assert [c["body"] for c in calls] == ["must not be lost"]
    assert calls[0]["extras"]["redelivered"] is True
    wait_until(lambda: sb.offset_acknowledged >= update["update_id"], 10, "update never acknowledged")
