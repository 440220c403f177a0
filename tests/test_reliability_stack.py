"""Faults around a running relay (sandbox + Errbot + Relay + Webserver + receivers, in one process), each test
counting what arrived (issue 5, items 3, 4, 6 and the bad-input items on updates and webhook targets)."""

from __future__ import annotations

import collections
import os
import threading
import time

import pytest
import requests

from sandbox import Sandbox
from tests.helpers.backend_bot import ADMIN_ID, TOKEN, wait_until
from tests.helpers.receiver import Receiver
from tests.helpers.relay_stack import start_relay_stack

pytestmark = pytest.mark.timeout(180)
ROTATED = "424242:AARotatedTokenForTheReliabilityTests-1"


@pytest.fixture
def make_stack():
    """start(enforce_limits=False, pacing=False, **config) → a RelayStack; everything stopped at teardown."""
    started = []

    def start(*, enforce_limits: bool = False, pacing: bool = False, **config):
        sandbox = Sandbox(host="127.0.0.1", port=0, enforce_limits=enforce_limits)
        sandbox.start()
        sandbox.add_bot(TOKEN, username="relay_test_bot")
        receiver = Receiver()
        started.append((sandbox, receiver, None))
        identity = {"token": TOKEN, "api_url": sandbox.url, "poll_timeout": 1, "pacing": pacing}
        stack = start_relay_stack(sandbox, receiver, extra_config={"BOT_IDENTITY": identity, **config})
        started[-1] = (sandbox, receiver, stack)
        return stack

    yield start
    for sandbox, receiver, stack in started:
        if stack is not None and stack.bot.thread.is_alive():
            stack.bot.stop()
        receiver.stop()
        sandbox.stop()


def fast_retries(stack, attempts: int) -> None:
    """Shorter webhook backoff (0.2 s doubling) so a test sees many retries quickly; same policy otherwise."""
    dispatcher = stack.service.webhooks
    dispatcher._backoff = 0.2
    dispatcher._max_backoff = 1.0
    dispatcher._max_attempts = attempts


def appuser_texts(receiver: Receiver) -> list[tuple[str, str, str]]:
    """(appUser _id, text, message _id) of every message:appUser the receiver got, in arrival order."""
    out = []
    for body in receiver.bodies():
        if body.get("trigger") == "message:appUser":
            out.extend((body["appUser"]["_id"], m["text"], m["_id"]) for m in body["messages"])
    return out


def first_seen_order(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Per lane, the texts in the order they were first seen (duplicates of earlier ones dropped)."""
    lanes: dict[str, list[str]] = collections.defaultdict(list)
    for lane, text in pairs:
        if text not in lanes[lane]:
            lanes[lane].append(text)
    return lanes


# --- item 3: a misbehaving webhook receiver ---------------------------------------------------------------

def test_receiver_503_hang_and_refused_then_recovers_everything_in_order(make_stack):
    stack = make_stack(RELAY_WEBHOOK_TIMEOUT=1.0)
    fast_retries(stack, attempts=50)
    stack.add_webhook(["message:appUser"])
    rx = stack.receiver
    rx.respond(503, times=6)
    rx.respond(200, delay=3, times=3)  # hangs past the 1 s timeout
    users = [8100, 8101, 8102]
    texts = {user: [f"{user} #{i}" for i in range(12)] for user in users}
    for i in range(12):
        for user in users:
            stack.sandbox.push_text(user, texts[user][i])
        if i == 6:
            rx.refuse()  # connection refused for a while
            time.sleep(1.5)
            rx.listen()
    want = {t for ts in texts.values() for t in ts}
    # The receiver records failed attempts too: "delivered" is the relay's own word that each job got a 2xx.
    wait_until(lambda: want <= {t for _, t, _ in appuser_texts(rx)}
               and stack.service.store.stats().get("webhook_pending", 0) == 0, 90,
               "not everything arrived after recovery")
    assert rx.requests[-1].t > 0 and rx.count > len(want), "no fault was exercised"
    received = appuser_texts(rx)
    by_user: dict[str, list[str]] = first_seen_order([(u, t) for u, t, _ in received])
    for lane in by_user.values():
        user = int(lane[0].split()[0])
        assert lane == texts[user], f"order broken for {user}: {lane}"
    duplicates = len(received) - len(want)
    print(f"\n[receiver faults] messages={len(want)} requests={rx.count} extra_attempts={duplicates} "
          f"dead={len(stack.service.webhooks.dead_letters())}")
    assert stack.service.webhooks.dead_letters() == []


def test_receiver_answering_400_gets_no_retries(make_stack):
    stack = make_stack()
    fast_retries(stack, attempts=5)
    stack.add_webhook(["message:appUser"])
    stack.receiver.respond(400, times=1)
    stack.sandbox.push_text(8200, "refused once")
    stack.receiver.wait_for(lambda reqs: len(reqs) >= 1)
    stack.sandbox.push_text(8200, "marker after")
    stack.receiver.wait_for(lambda reqs: any(b"marker after" in r.body for r in reqs))
    time.sleep(1.5)  # several backoff periods: a retry would have come by now
    attempts = [r for r in stack.receiver.requests if b"refused once" in r.body]
    assert len(attempts) == 1, f"a 400 was retried {len(attempts) - 1} times"
    dead = stack.service.webhooks.dead_letters()
    assert [d["last_error"] for d in dead] == ["HTTP 400"]


def test_dead_target_ends_in_dead_letters_that_admin_redeliver_replays(make_stack):
    stack = make_stack(RELAY_WEBHOOK_TIMEOUT=1.0)
    fast_retries(stack, attempts=3)
    stack.add_webhook(["message:appUser"])
    stack.receiver.respond(503)  # never recovers
    texts = [f"to a dead target {i}" for i in range(5)]
    for text in texts:
        stack.sandbox.push_text(8300, text)
    wait_until(lambda: len(stack.service.webhooks.dead_letters()) == len(texts), 30, "no dead letters")
    tries = stack.receiver.count
    time.sleep(1.5)
    assert stack.receiver.count == tries, "dead letters are still being retried"
    assert tries == 3 * len(texts)
    stack.receiver.respond(200)
    stack.sandbox.push_text(ADMIN_ID, "!relay redeliver")
    reply = stack.sandbox.wait_for(lambda r: r["method"] == "sendMessage" and r["params"].get("chat_id") == ADMIN_ID
                                   and "dead letter" in r["params"].get("text", ""), timeout=15)
    assert "5 dead letter(s) queued" in reply["params"]["text"]
    def replayed() -> list[str]:
        return [b["messages"][0]["text"] for b in stack.receiver.bodies()[tries:]]

    wait_until(lambda: set(texts) <= set(replayed()) and not stack.service.webhooks.dead_letters(), 20,
               "redelivered dead letters did not arrive")
    delivered = replayed()
    assert delivered == texts, "the replay broke the order"


# --- item 4: Telegram answering 429 / 502 / dropping connections, with pacing on ----------------------

def test_telegram_faults_with_pacing_every_message_arrives_at_telegrams_pace(make_stack):
    stack = make_stack(enforce_limits=True, pacing=True)
    sb = stack.sandbox
    crowd = [8400 + n for n in range(40)]  # many chats: the overall 30/s limit matters
    chatty = [8500, 8501]                  # few chats, many messages: the 1/s per chat limit matters
    for user in crowd + chatty:
        sb.push_text(user, "hi")
    app_users = {user: stack.app_user_id(user) for user in crowd + chatty}
    sb.fail_next("sendMessage", 429, "Too Many Requests: injected", retry_after=1, count=3)
    sb.fail_next("sendMessage", 502, "Bad Gateway", count=3)
    sb.drop_next("sendMessage", count=3)
    expected: dict[int, list[str]] = collections.defaultdict(list)
    plan = [(u, 2) for u in crowd] + [(u, 8) for u in chatty]
    for user, count in plan:
        for i in range(count):
            text = f"to {user} #{i}"
            response = stack.request("POST", f"/appusers/{app_users[user]}/messages",
                                     json={"role": "appMaker", "type": "text", "text": text})
            assert response.status_code == 201, response.text
            expected[user].append(text)
    total = sum(len(v) for v in expected.values())

    def delivered() -> int:
        return sum(len({m.get("text") for m in sb.sent(u)} & set(expected[u])) for u in expected)

    wait_until(lambda: delivered() == total, 90, "not every reply reached Telegram")
    time.sleep(0.5)
    sends = [r for r in sb.requests("sendMessage") if r["params"].get("text", "").startswith("to ")]
    ok = [r for r in sends if r["status"] == 200]
    duplicates = len(ok) - total
    dropped = sum(1 for r in sends if r["status"] == 0)
    paced_out = [r for r in sends if r["status"] == 429 and "injected" not in r.get("description", "")]
    for user in expected:
        got = [m.get("text") for m in sb.sent(user) if m.get("text", "").startswith("to ")]
        assert first_seen_order([(user, t) for t in got])[user] == expected[user]
    times = sorted(r["t"] for r in sends)
    overall_max = max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))
    per_chat_excess = 0.0
    for user in expected:
        chat = sorted(r["t"] for r in sends if r["params"].get("chat_id") == user)
        for i, start in enumerate(chat):
            for j in range(i, len(chat)):
                # at most a burst of 3 plus 1 per second, in any window [start, chat[j]]
                per_chat_excess = max(per_chat_excess, (j - i + 1) - (3 + (chat[j] - start) + 0.05))
    chatty_span = {u: max(r["t"] for r in sends if r["params"].get("chat_id") == u) -
                   min(r["t"] for r in sends if r["params"].get("chat_id") == u) for u in chatty}
    print(f"\n[telegram faults] messages={total} ok_sends={len(ok)} duplicates={duplicates} dropped={dropped} "
          f"limiter_429s={len(paced_out)} max_sends_in_any_1s={overall_max} "
          f"per_chat_excess_over_burst3_plus_1ps={per_chat_excess:.2f} "
          f"chatty_span_s={ {u: round(s, 1) for u, s in chatty_span.items()} }")
    assert duplicates <= dropped, "a message went out twice although Telegram's answer was not lost"
    assert overall_max <= 30
    assert per_chat_excess <= 0.0
    # A rare 429 from the limiter is scheduling jitter on a boundary the bot books exactly; it is retried.
    assert len(paced_out) <= 3, "the bot keeps sending faster than Telegram allows"


# --- item 6: the token rotated while messages are queued ------------------------------------------------

def test_token_rotated_while_messages_are_queued_they_go_out_with_the_new_token(make_stack):
    stack = make_stack(pacing=True)  # 1/s per chat keeps most of the queue waiting
    sb = stack.sandbox
    sb.push_text(8600, "hello")
    app_user = stack.app_user_id(8600)
    texts = [f"queued {i}" for i in range(10)]
    for text in texts:
        assert stack.request("POST", f"/appusers/{app_user}/messages",
                             json={"role": "appMaker", "type": "text", "text": text}).status_code == 201
    sb.add_bot(ROTATED, username="relay_test_bot")
    sb.push_text(ADMIN_ID, f"!telegram token {ROTATED}")
    sb.wait_for(lambda r: r["method"] == "sendMessage" and r["params"].get("chat_id") == ADMIN_ID
                and "Connected as" in r["params"].get("text", ""), timeout=15)
    sb.revoke(TOKEN)  # from now on the old token gets 401
    sent_before = {r["params"]["text"] for r in sb.requests("sendMessage", chat_id=8600) if r["status"] == 200}
    assert len(sent_before) < len(texts), "the queue drained before the rotation; the test proves nothing"
    wait_until(lambda: set(texts) <= {m.get("text") for m in sb.sent(8600)}, 30, "queued messages were lost")
    after = [r for r in sb.requests("sendMessage", chat_id=8600)
             if r["status"] == 200 and r["params"]["text"] not in sent_before]
    print(f"\n[token rotation] queued={len(texts)} sent_before_rotation={len(sent_before)} "
          f"sent_after={len(after)}")
    assert after and all(r["token"] == ROTATED for r in after)
    got = [m["text"] for m in sb.sent(8600) if m["text"].startswith("queued")]
    assert first_seen_order([("u", t) for t in got])["u"] == texts


# --- bad input: malformed updates, hostile webhook targets -----------------------------------------------

def test_malformed_truncated_and_unknown_updates_are_skipped_and_later_ones_arrive(make_stack):
    stack = make_stack()
    stack.add_webhook(["message:appUser"])
    sb = stack.sandbox
    user = {"id": 8700, "is_bot": False, "first_name": "Junk"}
    junk = [
        "null", "42", '"a string"', "[1, 2, 3]", "{}",                 # not updates at all
        {"update_id": "not-a-number"},
        {"message": "not an object"},
        {"message": {"message_id": 1}},                                 # truncated: no chat, no from, no date
        {"message": {"message_id": 2, "date": 1, "chat": {"id": 8700}}},  # chat without type
        {"message": {"message_id": 3, "date": 1, "chat": {"id": 8700, "type": "private"}, "from": user,
                     "text": {"nested": "object"}}},                    # wrong type for text
        {"callback_query": {"id": "x"}},                                # callback without anything
        {"poll": {"id": "1", "question": "?"}},                          # unknown update type
        {"message": {"message_id": 4, "date": 1, "chat": {"id": -100, "type": "supergroup"}, "from": user,
                     "text": "group"}},
        {"edited_message": {"message_id": 5, "date": 1, "chat": {"id": 8700, "type": "private"}, "from": user,
                            "text": "edit"}},
        {"message": {"message_id": 6, "date": 1, "chat": {"id": 8700, "type": "private"}, "from": user,
                     "dice": {"emoji": "🎲", "value": 3}}},             # a kind the relay does not map
    ]
    for index, item in enumerate(junk):
        sb.push_raw(item)
        sb.push_text(8700, f"after junk {index}")
    want = {f"after junk {i}" for i in range(len(junk))}
    wait_until(lambda: want <= {t for _, t, _ in appuser_texts(stack.receiver)}, 30,
               "the update loop stopped after a malformed update")
    wait_until(lambda: sb.pending_updates() == 0, 10, "malformed updates were never acknowledged")
    texts = [t for _, t, _ in appuser_texts(stack.receiver)]
    assert texts == [f"after junk {i}" for i in range(len(junk))], "junk was relayed or order broke"
    assert stack.bot.backend.telegram_status()["connected"]
    with open(stack.bot.log_file, encoding="utf-8") as log:
        text = log.read()
    assert "Skipping malformed update" in text, "junk was not logged"
    assert "A plugin failed on an update" not in text, "a malformed update was treated as a plugin failure"


def _relay_threads() -> int:
    """Threads of the product (not the test's HTTP servers, whose handler threads serve the hostile answers)."""
    return sum(1 for t in threading.enumerate() if "process_request_thread" not in t.name)


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_hostile_webhook_targets_do_not_exhaust_memory_or_threads(make_stack):
    stack = make_stack(RELAY_WEBHOOK_TIMEOUT=1.0)
    fast_retries(stack, attempts=50)
    hostile = Receiver()
    try:
        hostile.respond(200, body_size=200 * 2**20, path="/huge")       # 200 MB answer
        hostile.respond(302, redirect="/loop", path="/loop")             # redirect loop
        hostile.respond(200, delay=60, path="/hang")                     # never answers
        for path in ("/huge", "/loop", "/hang"):
            stack.add_webhook(["message:appUser"], target=hostile.url + path)
        stack.add_webhook(["message:appUser"])  # the healthy business
        sb = stack.sandbox
        sb.push_text(8800, "warm up")
        stack.receiver.wait_for(lambda reqs: len(reqs) >= 1)
        threads_before, rss_before = _relay_threads(), _rss_kb()
        peak_threads, peak_rss = threads_before, rss_before
        texts = [f"hostile {i}" for i in range(60)]
        for i, text in enumerate(texts):
            sb.push_text(8800 + i % 6, text)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            peak_threads = max(peak_threads, _relay_threads())
            peak_rss = max(peak_rss, _rss_kb())
            if set(texts) <= {t for _, t, _ in appuser_texts(stack.receiver)} and time.monotonic() > deadline - 50:
                break
            time.sleep(0.1)
        for _ in range(30):  # keep watching while the hostile targets are retried
            peak_threads = max(peak_threads, _relay_threads())
            peak_rss = max(peak_rss, _rss_kb())
            time.sleep(0.1)
        healthy = {t for _, t, _ in appuser_texts(stack.receiver)}
        print(f"\n[hostile targets] threads before={threads_before} peak={peak_threads}; "
              f"RSS before={rss_before // 1024} MB peak={peak_rss // 1024} MB; hostile requests={hostile.count}; "
              f"healthy got {len(healthy & set(texts))}/{len(texts)}")
        assert set(texts) <= healthy, "hostile targets held up the healthy one"
        assert hostile.count > 0
        assert peak_threads - threads_before <= 20, "threads grow with hostile targets"
        assert peak_rss - rss_before < 100 * 1024, "memory grows with huge webhook answers"
        # The redirect was not followed: only the configured path was ever requested.
        assert {r.path for r in hostile.requests} == {"/huge", "/loop", "/hang"}
    finally:
        hostile.stop()


def test_api_keeps_answering_while_a_webhook_target_hangs(make_stack):
    stack = make_stack(RELAY_WEBHOOK_TIMEOUT=2.0)
    stack.add_webhook(["message:appUser"])
    stack.receiver.respond(200, delay=30)
    for i in range(20):
        stack.sandbox.push_text(8900 + i, f"slow {i}")
    started = time.monotonic()
    for _ in range(20):
        assert stack.request("GET", "/webhooks", timeout=5).status_code == 200
    assert time.monotonic() - started < 5
    assert requests.get(f"{stack.http_url}/v1.1/openapi.json", timeout=5).status_code == 200


if os.environ.get("RELAY_SOAK") == "1":  # pragma: no cover - opt-in
    pytestmark = pytest.mark.timeout(900)
