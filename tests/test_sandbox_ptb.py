"""The sandbox driven by the real python-telegram-bot 22 Bot: parsing, errors, files, URL media."""

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup
from telegram import error as tg_error

from sandbox import Sandbox

TOKEN = "424242:PTB-sandbox_token"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x40\x00\x00\x00\xf0\x08\x02\x00\x00\x00"
       + b"\x00" * 200)


@pytest.fixture
def sb():
    sandbox = Sandbox().start()
    sandbox.add_bot(TOKEN, username="relay_test_bot", first_name="Relay")
    yield sandbox
    sandbox.stop()


def run(sb, use, token=TOKEN):
    """Run `await use(bot)` with a fresh PTB Bot pointed at the sandbox."""
    async def main():
        bot = telegram.Bot(token, base_url=f"{sb.url}/bot", base_file_url=f"{sb.url}/file/bot")
        async with bot:
            return await use(bot)
    return asyncio.run(main())


@pytest.fixture
def media_server():
    """A local HTTP server: /ok.png (an image), /big.png (6 MB), /text (text/plain), /missing (404)."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            routes = {"/ok.png": (200, "image/png", PNG), "/big.png": (200, "image/png", b"\0" * (6 * 2**20)),
                      "/text": (200, "text/plain", b"hello"), "/doc.pdf": (200, "application/pdf", b"%PDF-1.4")}
            status, kind, body = routes.get(self.path, (404, "text/plain", b"no"))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_get_me(sb):
    me = run(sb, lambda bot: bot.get_me())
    assert (me.id, me.username, me.is_bot, me.first_name) == (424242, "relay_test_bot", True, "Relay")
    assert sb.requests("getMe")[0]["token"] == TOKEN


def test_get_updates_offset_and_long_poll(sb):
    first = sb.push_text(11, "one")["update_id"]
    sb.push_text(11, "two")

    async def use(bot):
        batch = await bot.get_updates(timeout=0)
        assert [u.update_id for u in batch] == [first, first + 1]
        again = await bot.get_updates(offset=first + 1, timeout=0)
        assert [u.message.text for u in again] == ["two"]
        threading.Timer(0.3, lambda: sb.push_text(11, "woken")).start()
        started = time.monotonic()
        woke = await bot.get_updates(offset=first + 2, timeout=20, read_timeout=30)
        return woke, time.monotonic() - started

    woke, elapsed = run(sb, use)
    assert [u.message.text for u in woke] == ["woken"] and elapsed < 10
    assert sb.offset_acknowledged == first + 1


def test_every_push_kind_parses_in_ptb(sb):
    sb.push_text(3, "/start PAYLOAD", first_name="Ann", username="ann", language_code="en")
    sb.push_photo(3, caption="look")
    sb.push_document(3, b"%PDF-1.4 data", "invoice.pdf", "application/pdf", caption="doc")
    sb.push_audio(3, duration=12, title="Song", performer="Band")
    sb.push_voice(3, duration=4)
    sb.push_video(3, width=640, height=360, duration=7)
    sb.push_video_note(3, length=240, duration=3)
    sb.push_animation(3)
    sb.push_sticker(3, emoji="🔥", is_video=True)
    sb.push_big_document(3, file_name="big.zip")
    sb.push_location(3, 52.52, 13.405)
    sb.push_venue(3, 48.85, 2.35, "Louvre", "Rue de Rivoli")
    sb.push_contact(3, "+49301234567", "Bob", "Smith")
    body = run(sb, lambda bot: bot.send_message(3, "pick", reply_markup=InlineKeyboardMarkup(
        [[InlineKeyboardButton("Yes", callback_data="yes")]])))
    sb.press_button(3, body.message_id, "Yes")

    updates = run(sb, lambda bot: bot.get_updates(timeout=0))
    m = [u.message for u in updates[:-1]]
    assert m[0].text == "/start PAYLOAD" and m[0].from_user.username == "ann"
    assert m[0].parse_entities(["bot_command"]) and m[0].chat.type == "private"
    assert m[0].from_user.language_code == "en" and m[0].from_user.is_bot is False
    assert len(m[1].photo) == 3 and m[1].caption == "look"
    assert m[1].photo[-1].width == 1280 and m[1].photo[-1].file_size >= m[1].photo[0].file_size
    assert (m[2].document.file_name, m[2].document.mime_type, m[2].document.file_size) == (
        "invoice.pdf", "application/pdf", 13)
    assert (m[3].audio.duration.total_seconds() if hasattr(m[3].audio.duration, "total_seconds")
            else m[3].audio.duration) == 12 and m[3].audio.title == "Song"
    assert m[4].voice.mime_type == "audio/ogg"
    assert (m[5].video.width, m[5].video.height) == (640, 360)
    assert m[6].video_note.length == 240
    assert m[7].animation is not None and m[7].document is not None
    assert m[8].sticker.emoji == "🔥" and m[8].sticker.is_video and m[8].sticker.type == "regular"
    assert m[9].document.file_size == 25 * 2**20
    assert (m[10].location.latitude, m[10].location.longitude) == (52.52, 13.405)
    assert m[11].venue.title == "Louvre" and m[11].location is not None
    assert m[12].contact.phone_number == "+49301234567" and m[12].contact.last_name == "Smith"
    query = updates[-1].callback_query
    assert query.data == "yes" and query.message.message_id == body.message_id and query.from_user.id == 3
    ids = [u.update_id for u in updates]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_send_message_errors_surface_in_ptb(sb):
    sb.push_text(3, "hi")

    async def use(bot):
        ok = await bot.send_message(3, "x", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("ok", callback_data="x" * 64)]]))
        assert ok.reply_markup.inline_keyboard[0][0].callback_data == "x" * 64
        with pytest.raises(tg_error.BadRequest, match=r"Button_data_invalid|BUTTON_DATA_INVALID"):
            await bot.send_message(3, "x", reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("no", callback_data="x" * 65)]]))
        with pytest.raises(tg_error.BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(99, "x")
        with pytest.raises(tg_error.BadRequest, match=r"(?i)message is too long"):
            await bot.send_message(3, "x" * 4097)
        with pytest.raises(tg_error.BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(3, "<b>open", parse_mode="HTML")
        html = await bot.send_message(3, "<b>bold</b> <i>it</i>", parse_mode="HTML")
        assert html.text == "bold it" and [e.type for e in html.entities] == ["bold", "italic"]
        kb = await bot.send_message(3, "where", reply_markup=ReplyKeyboardMarkup(
            [[KeyboardButton("Here", request_location=True)]], one_time_keyboard=True, resize_keyboard=True))
        assert kb.reply_markup is None

    run(sb, use)
    assert sb.tap_reply(3, "Here")["message"]["location"]
    record = sb.requests("sendMessage")[0]
    assert record["params"]["chat_id"] == 3 and record["params"]["reply_markup"]["inline_keyboard"]


def test_fault_errors_map_to_ptb_exceptions(sb):
    sb.push_text(3, "hi")
    sb.push_text(4, "hi")
    sb.block_user(4)
    sb.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)

    async def use(bot):
        with pytest.raises(tg_error.RetryAfter) as caught:
            await bot.send_message(3, "x")
        assert caught.value._retry_after.total_seconds() == 7
        with pytest.raises(tg_error.Forbidden, match=r"(?i)blocked by the user"):
            await bot.send_message(4, "x")
        sb.drop_next("sendMessage")
        with pytest.raises(tg_error.NetworkError):
            await bot.send_message(3, "x")
        return await bot.send_message(3, "fine")

    assert run(sb, use).text == "fine"


def test_invalid_token_in_ptb(sb):
    with pytest.raises(tg_error.InvalidToken):
        run(sb, lambda bot: bot.get_me(), token="1:wrong")


def test_upload_get_file_and_download(sb):
    sb.push_text(3, "hi")
    update = sb.push_document(3, b"user bytes", "notes.txt", "text/plain")
    user_file_id = update["message"]["document"]["file_id"]

    async def use(bot):
        sent = await bot.send_document(3, b"bot bytes \x00\x01", filename="report.bin", caption="<b>r</b>",
                                       parse_mode="HTML")
        assert sent.document.file_name == "report.bin" and sent.caption == "r"
        photo = await bot.send_photo(3, PNG)
        assert (photo.photo[-1].width, photo.photo[-1].height) == (320, 240)
        again = await bot.send_photo(3, photo.photo[-1].file_id)
        assert again.photo[-1].file_id == photo.photo[-1].file_id
        with pytest.raises(tg_error.BadRequest):
            await bot.send_photo(3, sent.document.file_id)
        with pytest.raises(tg_error.BadRequest, match=r"(?i)caption is too long"):
            await bot.send_document(3, b"x", filename="a.txt", caption="c" * 1025)
        user_file = await bot.get_file(user_file_id)
        bot_file = await bot.get_file(sent.document.file_id)
        return (bytes(await user_file.download_as_bytearray()), bytes(await bot_file.download_as_bytearray()),
                user_file.file_path)

    user_bytes, bot_bytes, path = run(sb, use)
    assert user_bytes == b"user bytes" and bot_bytes == b"bot bytes \x00\x01"
    assert path.startswith(f"{sb.url}/file/bot{TOKEN}/documents/")
    upload = sb.requests("sendDocument")[0]
    assert upload["files"]["document"] == b"bot bytes \x00\x01" and upload["status"] == 200


def test_big_file_is_refused(sb):
    file_id = sb.push_big_document(3)["message"]["document"]["file_id"]
    assert sb.file_bytes(file_id) is None, "big documents keep only their size"
    with pytest.raises(tg_error.BadRequest, match=r"(?i)file is too big"):
        run(sb, lambda bot: bot.get_file(file_id))


def test_media_by_url(sb, media_server):
    sb.push_text(3, "hi")

    async def use(bot):
        photo = await bot.send_photo(3, f"{media_server}/ok.png", caption="from url")
        document = await bot.send_document(3, f"{media_server}/doc.pdf")
        for bad in ("/missing", "/big.png"):
            with pytest.raises(tg_error.BadRequest, match=r"(?i)failed to get http url content"):
                await bot.send_photo(3, f"{media_server}{bad}")
        with pytest.raises(tg_error.BadRequest, match=r"(?i)failed to get http url content"):
            await bot.send_document(3, "http://127.0.0.1:9/unreachable.pdf")
        with pytest.raises(tg_error.BadRequest, match=r"(?i)wrong type of the web page content"):
            await bot.send_photo(3, f"{media_server}/text")
        with pytest.raises(tg_error.BadRequest, match=r"(?i)wrong file identifier"):
            await bot.send_photo(3, "not-a-file-id")
        data = await (await bot.get_file(photo.photo[-1].file_id)).download_as_bytearray()
        return photo, document, bytes(data)

    photo, document, data = run(sb, use)
    assert photo.caption == "from url" and data == PNG
    assert document.document.file_name == "doc.pdf" and document.document.file_size == 8


def test_file_download_needs_the_token(sb):
    stored = sb.push_document(3, b"secret", "s.txt", "text/plain")["message"]["document"]
    path = run(sb, lambda bot: bot.get_file(stored["file_id"])).file_path
    relative = path.split(f"/file/bot{TOKEN}/", 1)[1]
    assert requests.get(f"{sb.url}/file/bot{TOKEN}/{relative}", timeout=5).content == b"secret"
    assert requests.get(f"{sb.url}/file/bot1:bad/{relative}", timeout=5).status_code == 401
    assert requests.get(f"{sb.url}/file/bot{TOKEN}/documents/nope", timeout=5).status_code == 404
