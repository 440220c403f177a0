"""Crash safety of the real product, run as OS processes (`python -m sandbox`, `errbot -c config_template.py`)
and killed with SIGKILL mid-stream. Each test counts what arrived and prints lost / duplicate counts.

RELAY_SOAK=1 runs the counts of the issue and more (see README, "Reliability and security"); the default counts are the
issue's, sized to keep the suite quick.
"""

from __future__ import annotations

import collections
import os
import threading
import time

import pytest

from tests.helpers.process_stack import ProcessStack, wait_until

SOAK = os.environ.get("RELAY_SOAK") == "1"
INBOUND_COUNT = 10_000 if SOAK else 2_000
INBOUND_USERS = 20
REPLY_COUNT = 2_000 if SOAK else 500
REPLY_USERS = 5

pytestmark = pytest.mark.timeout(600 if SOAK else 240)


pytest_plugins = ["tests.helpers.process_stack"]


@pytest.fixture
def stack(process_stack: ProcessStack) -> ProcessStack:
    """The relay as real processes (tests/helpers/process_stack.py)."""
    return process_stack


def _received_texts(stack: ProcessStack) -> list[tuple[str, str]]:
    """(text, message _id) of every message:appUser delivery the receiver got, in arrival order."""
    out = []
    for request in stack.receiver.requests:
        body = request.json
        if body.get("trigger") == "message:appUser":
            for message in body["messages"]:
                out.append((message["text"], message["_id"]))
    return out


def test_kill_9_while_user_messages_stream_in_loses_nothing(stack):
    """SIGKILL the bot while INBOUND_COUNT messages stream in; after a restart every one reaches the
    receiver at least once, and every duplicate carries the _id of its first delivery."""
    stack.start_bot()
    stack.add_webhook(["message:appUser"])
    texts = [f"u{i % INBOUND_USERS} m{i}" for i in range(INBOUND_COUNT)]
    pushed = threading.Event()

    def push_all() -> None:
        for i, text in enumerate(texts):
            stack.push_text(7000 + i % INBOUND_USERS, text, first_name=f"User{i % INBOUND_USERS}")
        pushed.set()

    pusher = threading.Thread(target=push_all, daemon=True)
    pusher.start()
    # Kill once a good part has been delivered and more is in flight (received, stored, being delivered).
    wait_until(lambda: len(_received_texts(stack)) >= INBOUND_COUNT // 4, 120, "nothing was relayed before the kill")
    stack.kill_bot()
    delivered_before_kill = len(_received_texts(stack))
    acknowledged_at_kill = stack.sandbox_state()["offset_acknowledged"]
    stack.start_bot()
    pusher.join(120)
    assert pushed.is_set()

    wait_until(lambda: {t for t, _ in _received_texts(stack)} >= set(texts), 180,
               "some messages never reached the receiver after the restart", interval=0.5)
    time.sleep(1.0)  # let late retries land so they are counted as duplicates
    received = _received_texts(stack)
    ids_by_text: dict[str, set[str]] = collections.defaultdict(set)
    for text, message_id in received:
        ids_by_text[text].add(message_id)
    lost = [t for t in texts if t not in ids_by_text]
    duplicates = len(received) - len(ids_by_text)
    print(f"\n[kill -9 inbound] sent={INBOUND_COUNT} delivered_before_kill={delivered_before_kill} "
          f"acknowledged_at_kill={acknowledged_at_kill} received={len(received)} lost={len(lost)} "
          f"duplicates={duplicates}")
    assert lost == []
    assert {t for t, _ in received} == set(texts), "the receiver got messages nobody sent"
    mixed = {t: ids for t, ids in ids_by_text.items() if len(ids) != 1}
    assert mixed == {}, f"duplicates with different _ids cannot be dropped by a receiver: {list(mixed.items())[:3]}"
    assert stack.sandbox_state()["pending_updates"] == 0


def test_kill_9_while_replies_are_queued_sends_every_one_in_order(stack):
    """REPLY_COUNT API-posted replies are accepted (201) while pacing holds them in the queue; SIGKILL; after a
    restart each reaches the sandbox with the accepted text, none lost, in order per conversation."""
    stack.start_bot(TELEGRAM_PACING="on")  # 1/s per chat: with 5 chats most of the queue is waiting at the kill
    users = [7100 + n for n in range(REPLY_USERS)]
    stack.add_webhook(["message:appUser"])
    for user in users:
        stack.push_text(user, f"hello from {user}")
    app_users: dict[int, str] = {}

    def known() -> bool:
        for request in stack.receiver.requests:
            body = request.json
            user = int(body["messages"][0]["text"].rsplit(" ", 1)[1])
            app_users[user] = body["appUser"]["_id"]
        return all(user in app_users for user in users)

    wait_until(known, 30, "the users never reached the relay", interval=0.2)
    expected: dict[int, list[str]] = {user: [] for user in users}
    for i in range(REPLY_COUNT):
        user = users[i % len(users)]
        text = f"reply {i} to {user}"
        response = stack.request("POST", f"/appusers/{app_users[user]}/messages",
                                 json={"role": "appMaker", "type": "text", "text": text})
        assert response.status_code == 201, response.text
        expected[user].append(text)
    sent_at_kill = len(stack.sent())
    stack.kill_bot()
    assert sent_at_kill < REPLY_COUNT // 2, "the queue drained before the kill; the test proves nothing"
    stack.start_bot(TELEGRAM_PACING="off")  # drain fast; order and durability are what is checked

    def all_sent() -> bool:
        texts = {m.get("text") for m in stack.sent()}
        return all(t in texts for ts in expected.values() for t in ts)

    wait_until(all_sent, 120, "some accepted replies never reached Telegram", interval=0.5)
    time.sleep(1.0)
    lost = duplicates = 0
    for user in users:
        got = [m.get("text") for m in stack.sent(user) if m.get("text", "").startswith("reply ")]
        first_seen: list[str] = []
        for text in got:
            if text not in first_seen:
                first_seen.append(text)
        duplicates += len(got) - len(first_seen)
        lost += len(set(expected[user]) - set(got))
        assert first_seen == expected[user], f"chat {user}: order or content differs from what was accepted"
    print(f"\n[kill -9 outbound] accepted={REPLY_COUNT} sent_before_kill={sent_at_kill} lost={lost} "
          f"duplicates={duplicates}")
    assert lost == 0
