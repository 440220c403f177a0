"""Outbound: send_outgoing, Errbot's send/send_card/stream, and Telegram's errors, against the sandbox."""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox import Sandbox
from tests.helpers.backend_bot import ROOT, TOKEN, start_bot, wait_until
from tgbackend.errors import (
    BotBlockedError,
    ChatNotFoundError,
    FileTooBigError,
    RejectedError,
    TelegramUnavailableError,
)
from tgbackend.outgoing import InlineButton, OutgoingMessage, ReplyButton
from tgbackend.rendering import visible_length

PLUGINS = [ROOT / "tests" / "plugins" / "probe"]


class _Media(BaseHTTPRequestHandler):
    types = {".jpg": "image/jpeg", ".mp3": "audio/mpeg", ".mp4": "video/mp4"}

    def do_GET(self):
        kind = self.types.get(self.path[self.path.rfind("."):], "application/octet-stream")
        body = b"media-bytes:" + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def media():
    """Base URL of a local server the sandbox fetches media URLs from."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Media)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def env():
    sb = Sandbox(host="127.0.0.1", port=0)
    sb.start()
    sb.add_bot(TOKEN, username="relay_test_bot")
    running = start_bot(sb.url, plugin_dirs=PLUGINS, required_plugins=["Probe"])
    yield sb, running.backend, running
    running.stop()
    sb.stop()


_next_chat = iter(range(6000, 7000))


def chat(env) -> int:
    """A fresh private chat that has talked to the bot (Telegram refuses others)."""
    sb, _, running = env
    chat_id = next(_next_chat)
    sb.push_text(chat_id, "hi")
    probe = running.plugin("Probe")
    wait_until(lambda: any(c["frm"] == chat_id for c in probe.calls), 10, "greeting not received")
    return chat_id


def test_long_markdown_text_is_split_with_tags_intact(env):
    sb, backend, _ = env
    chat_id = chat(env)
    text = "**" + " ".join(f"word{i}" for i in range(1500)) + "**\n\n" + "\n".join(f"line {i}" for i in range(600))
    ids = backend.send_outgoing(chat_id, OutgoingMessage(text=text))
    sent = sb.requests("sendMessage", chat_id=chat_id)
    assert len(ids) == len(sent) >= 3
    assert all(r["status"] == 200 for r in sent)
    parts = [r["params"]["text"] for r in sent]
    assert all(visible_length(p) <= 4096 for p in parts)
    assert parts[0].startswith("<b>") and parts[0].endswith("</b>") and parts[1].startswith("<b>")
    assert all(p.count("<b>") == p.count("</b>") for p in parts)
    joined = " ".join(m["text"] for m in sb.sent(chat_id)[-len(ids):])
    assert "word0 " in joined and "word1499" in joined and "line 599" in joined
    assert [m["message_id"] for m in sb.sent(chat_id)[-len(ids):]] == ids


def test_plain_and_html_formats(env):
    sb, backend, _ = env
    chat_id = chat(env)
    backend.send_outgoing(chat_id, OutgoingMessage(text="a <b> & *c*", text_format="plain"))
    backend.send_outgoing(chat_id, OutgoingMessage(text="<i>x</i> &amp; y", text_format="html"))
    plain, html = sb.sent(chat_id)[-2:]
    assert plain["text"] == "a <b> & *c*"
    assert html["text"] == "x & y" and html["entities"][0]["type"] == "italic"


def test_caption_overflow_goes_as_following_text(env, media):
    sb, backend, _ = env
    chat_id = chat(env)
    ids = backend.send_outgoing(chat_id, OutgoingMessage(
        text="c" * 1500, media_kind="photo", media_url=f"{media}/cat.jpg",
        inline_keyboard=[[InlineButton("More", url="https://example.org")]]))
    photo, text = sb.requests("sendPhoto", chat_id=chat_id)[-1], sb.requests("sendMessage", chat_id=chat_id)[-1]
    assert len(ids) == 2
    assert not photo["params"].get("caption") and "reply_markup" not in photo["params"]
    assert text["params"]["text"] == "c" * 1500 and "reply_markup" in text["params"]
    backend.send_outgoing(chat_id, OutgoingMessage(text="short *cap*", media_kind="photo",
                                                   media_url=f"{media}/cat.jpg"))
    assert sb.requests("sendPhoto", chat_id=chat_id)[-1]["params"]["caption"] == "short <i>cap</i>"


def test_media_by_bytes_document_audio_video(env, media):
    sb, backend, _ = env
    chat_id = chat(env)
    backend.send_outgoing(chat_id, OutgoingMessage(media_kind="photo", media_bytes=b"\xff\xd8\xffjpeg",
                                                   filename="p.jpg"))
    backend.send_outgoing(chat_id, OutgoingMessage(media_kind="document", media_bytes=b"%PDF-1.4",
                                                   filename="invoice.pdf", text="your invoice"))
    backend.send_outgoing(chat_id, OutgoingMessage(media_kind="audio", media_url=f"{media}/a.mp3"))
    backend.send_outgoing(chat_id, OutgoingMessage(media_kind="video", media_url=f"{media}/v.mp4"))
    photo = sb.requests("sendPhoto", chat_id=chat_id)[-1]
    document = sb.requests("sendDocument", chat_id=chat_id)[-1]
    assert list(photo["files"].values()) == [b"\xff\xd8\xffjpeg"]
    assert list(document["files"].values()) == [b"%PDF-1.4"] and document["params"]["caption"] == "your invoice"
    assert sb.requests("sendAudio", chat_id=chat_id)[-1]["status"] == 200
    assert sb.requests("sendVideo", chat_id=chat_id)[-1]["status"] == 200


def test_location_keyboards_typing_delete(env):
    sb, backend, _ = env
    chat_id = chat(env)
    backend.send_outgoing(chat_id, OutgoingMessage(location=(52.5, 13.4)))
    loc = sb.requests("sendLocation", chat_id=chat_id)[-1]["params"]
    assert (float(loc["latitude"]), float(loc["longitude"])) == (52.5, 13.4)
    backend.send_outgoing(chat_id, OutgoingMessage(text="Where?", reply_keyboard=[
        [ReplyButton("Yes"), ReplyButton("No")], [ReplyButton("Send location", request_location=True)]]))
    markup = sb.requests("sendMessage", chat_id=chat_id)[-1]["params"]["reply_markup"]
    assert markup["one_time_keyboard"] is True and markup["resize_keyboard"] is True
    assert markup["keyboard"][1][0] == {"text": "Send location", "request_location": True}
    backend.send_outgoing(chat_id, OutgoingMessage(text="Thanks", remove_reply_keyboard=True))
    assert sb.requests("sendMessage", chat_id=chat_id)[-1]["params"]["reply_markup"] == {"remove_keyboard": True}
    backend.send_typing(chat_id)
    assert sb.requests("sendChatAction", chat_id=chat_id)[-1]["params"]["action"] == "typing"
    [message_id] = backend.send_outgoing(chat_id, OutgoingMessage(text="oops"))
    backend.delete_message(chat_id, message_id)
    assert message_id not in [m["message_id"] for m in sb.sent(chat_id)]


def test_errbot_send_card_and_stream(env):
    sb, backend, running = env
    chat_id = chat(env)
    probe = running.plugin("Probe")
    probe.send(backend.build_identifier(str(chat_id)), "plain **send**")
    assert sb.sent(chat_id)[-1]["text"] == "plain send"
    probe.send_card(to=backend.build_identifier(str(chat_id)), title="Order 7", body="Ready *now*",
                    link="https://example.org/o/7", fields=(("Total", "9 EUR"),))
    card = sb.requests("sendMessage", chat_id=chat_id)[-1]["params"]
    assert card["text"].startswith("<b>Order 7</b>") and "Total" in card["text"]
    assert card["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://example.org/o/7"
    stream = probe.send_stream_request(backend.build_identifier(str(chat_id)), io.BytesIO(b"report"), name="r.txt")
    wait_until(lambda: sb.requests("sendDocument", chat_id=chat_id), 10, "stream not uploaded")
    assert list(sb.requests("sendDocument", chat_id=chat_id)[-1]["files"].values()) == [b"report"]
    wait_until(lambda: stream.status == "success", 5, f"stream status {stream.status}")


def test_identifiers_and_rooms(env):
    _, backend, _ = env
    assert backend.build_identifier("123").id == 123
    assert backend.build_identifier("123") == backend.build_identifier("123")
    assert len({backend.build_identifier("5"), backend.build_identifier("5")}) == 1
    with pytest.raises(ValueError, match="numeric id"):
        backend.build_identifier("@someone")
    with pytest.raises(Exception, match="private chats only"):
        backend.rooms()
    assert backend.mode == "tgrelay"
    assert backend.file_size_limit == 20 * 1024 * 1024


def test_blocked_and_chat_not_found_are_typed(env):
    sb, backend, _ = env
    chat_id = chat(env)
    sb.block_user(chat_id)
    with pytest.raises(BotBlockedError) as blocked:
        backend.send_outgoing(chat_id, OutgoingMessage(text="hello?"))
    assert blocked.value.permanent and blocked.value.code == "blocked"
    with pytest.raises(ChatNotFoundError) as missing:
        backend.send_outgoing(987654321, OutgoingMessage(text="hello?"))
    assert missing.value.code == "chat_not_found"
    other = chat(env)
    sb.fail_next("sendPhoto", 400, "Bad Request: wrong file identifier/HTTP URL specified")
    with pytest.raises(RejectedError, match=r"(?i)wrong file identifier"):
        backend.send_outgoing(other, OutgoingMessage(media_kind="photo", media_url="https://bad.example/x"))


def test_429_waits_and_retries_5xx_backs_off_then_unavailable(env):
    sb, backend, _ = env
    chat_id = chat(env)
    sb.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    started = time.monotonic()
    assert backend.send_outgoing(chat_id, OutgoingMessage(text="after 429"))
    assert time.monotonic() - started >= 0.9
    sb.fail_next("sendMessage", 502, "Bad Gateway", count=2)
    assert backend.send_outgoing(chat_id, OutgoingMessage(text="after 502"))
    assert sb.sent(chat_id)[-1]["text"] == "after 502"
    sb.fail_next("sendMessage", 500, "Internal Server Error", count=3)
    with pytest.raises(TelegramUnavailableError) as down:
        backend.send_outgoing(chat_id, OutgoingMessage(text="never"))
    assert down.value.permanent is False and down.value.retry_after
    sb.fail_next("sendMessage", 429, "Too Many Requests: retry after 60", retry_after=60)
    with pytest.raises(TelegramUnavailableError) as slow:
        backend.send_outgoing(chat_id, OutgoingMessage(text="later"))
    assert slow.value.retry_after == 60


def test_file_too_big(env):
    sb, backend, running = env
    sb.push_big_document(6999, size=25 * 2**20)
    probe = running.plugin("Probe")
    wait_until(lambda: any(c["frm"] == 6999 for c in probe.calls), 10, "big document not relayed")
    file = next(c for c in probe.calls if c["frm"] == 6999)["extras"]["file"]
    with pytest.raises(FileTooBigError):
        backend.open_file(file["file_id"])
