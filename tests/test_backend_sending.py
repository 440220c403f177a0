"""The send hot path: PTB calls driven in the calling thread over urllib3, and one storage write per keyboard."""

from __future__ import annotations

import asyncio
import threading

import pytest
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from sandbox import Sandbox
from tgbackend.client import TelegramClient, ThreadedRequest, drive
from tgbackend.errors import BotBlockedError, TelegramUnavailableError
from tgbackend.keyboards import CALLBACK_PREFIX, CallbackStore, build_markup
from tgbackend.outgoing import InlineButton, OutgoingMessage

TOKEN = "424242:SENDING-test-token-abcdefghijklmnop"


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(host="127.0.0.1", port=0)
    sb.start()
    sb.add_bot(TOKEN, username="sending_bot")
    yield sb
    sb.stop()


@pytest.fixture
def client(sandbox):
    tg = TelegramClient(sandbox.url)
    tg.connect(TOKEN)
    yield tg
    tg.close()


def test_send_runs_in_the_calling_thread_without_the_loop(client, sandbox, monkeypatch):
    sandbox.push_text(777, "hi")
    threads = []
    blocking = ThreadedRequest.blocking_request

    def spy(self, *args):
        threads.append(threading.current_thread())
        return blocking(self, *args)

    monkeypatch.setattr(ThreadedRequest, "blocking_request", spy)
    sent = client.call(lambda bot: bot.send_message(777, "<b>hi</b>", parse_mode="HTML"))
    assert sent.message_id > 0 and sent.text == "hi"
    assert threads == [threading.current_thread()]
    # on the loop thread (getMe, polling, answerCallbackQuery) the same request object stays async httpx
    assert client.run(client.bot.get_me()).username == "sending_bot"
    assert len(threads) == 1


def test_errors_stay_typed_through_the_blocking_path(client, sandbox):
    sandbox.push_text(778, "hi")
    sandbox.fail_next("sendMessage", 400, "Bad Request: can't parse entities")
    with pytest.raises(BadRequest):
        drive(client.bot.send_message(778, "x"))
    sandbox.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(RetryAfter):
        drive(client.bot.send_message(778, "x"))
    sandbox.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(TelegramUnavailableError) as slow:
        client.call(lambda bot: bot.send_message(778, "x"))
    assert slow.value.retry_after == 7
    sandbox.block_user(778)
    with pytest.raises(Forbidden):
        drive(client.bot.send_message(778, "x"))
    with pytest.raises(BotBlockedError):
        client.call(lambda bot: bot.send_message(778, "x"))


def test_network_errors_are_network_errors_without_the_url():
    request = ThreadedRequest(connection_pool_size=1, connect_timeout=0.5, read_timeout=0.5, write_timeout=0.5,
                              pool_timeout=0.5, media_write_timeout=0.5)
    with pytest.raises(NetworkError) as failed:
        request.blocking_request("http://127.0.0.1:9/bot1:secret/getMe", "POST", None, *[request.DEFAULT_NONE] * 4)
    assert "secret" not in str(failed.value)


def test_drive_refuses_a_coroutine_that_suspends():
    async def suspends():
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspend"):
        drive(suspends())


class _Storage(dict):
    writes = 0

    def __setitem__(self, key, value):
        type(self).writes += 1
        super().__setitem__(key, value)


def test_all_buttons_of_a_message_in_one_write_and_each_resolves():
    storage = _Storage()
    callbacks = CallbackStore(storage, threading.Lock())
    message = OutgoingMessage(text="pick", inline_keyboard=[
        [InlineButton(text="A", callback_payload="a" * 200), InlineButton(text="site", url="https://x.example")],
        [InlineButton(text="B", callback_payload="b")],
    ])
    _Storage.writes = 0
    markup = build_markup(message, callbacks)
    assert _Storage.writes == 1
    datas = [b.callback_data for row in markup.inline_keyboard for b in row if b.callback_data]
    assert len(datas) == 2 and all(len(d.encode()) <= 64 and d.startswith(CALLBACK_PREFIX) for d in datas)
    assert markup.inline_keyboard[0][1].url == "https://x.example"
    # a fresh process (empty cache) resolves from storage
    fresh = CallbackStore(storage, threading.Lock())
    assert [fresh.resolve(d) for d in datas] == ["a" * 200, "b"]
    group = datas[0][len(CALLBACK_PREFIX):].split(".")[0]
    assert fresh.resolve(f"{CALLBACK_PREFIX}{group}.7") is None
    assert fresh.resolve(f"{CALLBACK_PREFIX}{group}.x") is None
    assert fresh.resolve(f"{CALLBACK_PREFIX}nosuchgroup.0") is None


def test_single_button_and_ids_issued_before_the_change_still_resolve():
    storage = _Storage()
    callbacks = CallbackStore(storage, threading.Lock())
    one = callbacks.put("only")
    storage["callback:legacyid"] = {"payload": "old", "created": 0.0}
    fresh = CallbackStore(storage, threading.Lock())
    assert fresh.resolve(one) == "only"
    assert fresh.resolve(CALLBACK_PREFIX + "legacyid") == "old"
