"""SendDispatcher: per-user order, permanent vs transient failures, retry_after, max_age, restart."""

import threading
import time

import pytest

from smoochrelay.outbox import SendDispatcher
from smoochrelay.store import RelayStore, WebhookJob, new_hex_id


class Flaky(Exception):
    def __init__(self, permanent=False, retry_after=None):
        super().__init__("telegram said no")
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = "blocked" if permanent else "unavailable"


class Recorder:
    """A fake `send` whose behaviour per message text is scripted; records (time, job) of every call."""

    def __init__(self):
        self.calls: list[tuple[float, dict]] = []
        self.sent: list[tuple[dict, list[int]]] = []
        self.failed: list[tuple[dict, Exception]] = []
        self.script: dict[str, list[Exception]] = {}  # raised once each, in order, then success
        self.always: dict[str, Exception] = {}
        self.cond = threading.Condition()

    def send(self, job):
        with self.cond:
            self.calls.append((time.monotonic(), job))
            self.cond.notify_all()
            text = job["message"]["text"]
            if text in self.always:
                raise self.always[text]
            errors = self.script.get(text)
            if errors:
                raise errors.pop(0)
        return [len(self.calls)]

    def on_sent(self, job, ids):
        with self.cond:
            self.sent.append((job, ids))
            self.cond.notify_all()
        return [WebhookJob("c" * 24, job["app_user_id"], "message:delivery:channel", {"id": job["message"]["_id"]})]

    def on_failed(self, job, exc):
        with self.cond:
            self.failed.append((job, exc))
            self.cond.notify_all()
        return [WebhookJob("c" * 24, job["app_user_id"], "message:delivery:failure", {"id": job["message"]["_id"]})]

    def wait(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out: {len(self.calls)} calls, {len(self.sent)} sent, {len(self.failed)} failed"
                self.cond.wait(min(left, 0.1))


@pytest.fixture
def store(tmp_path):
    s = RelayStore(str(tmp_path / "relay.sqlite3"))
    yield s
    s.close()


@pytest.fixture
def run(store):
    started = []

    def start(recorder, **kwargs):
        kwargs.setdefault("backoff", 0.02)
        dispatcher = SendDispatcher(store, recorder.send, recorder.on_sent, recorder.on_failed, **kwargs)
        dispatcher.start()
        started.append(dispatcher)
        return dispatcher

    yield start
    for dispatcher in started:
        dispatcher.stop()


def _queue(store, telegram_id, texts):
    user = store.upsert_telegram_user({"id": telegram_id, "first_name": "U"}, telegram_id)
    for text in texts:
        store.record_outbound(user["_id"], {"_id": new_hex_id(), "received": time.time(), "text": text}, [])
    return user


def test_order_per_user_and_delivery_events_enqueued(store, run):
    recorder = Recorder()
    recorder.script["u1-2"] = [Flaky(), Flaky()]  # transient twice, must hold back u1-3..
    users = [_queue(store, uid, [f"u{uid}-{n}" for n in range(8)]) for uid in (1, 2, 3)]
    run(recorder)
    recorder.wait(lambda: len(recorder.sent) == 24)
    for user in users:
        mine = [job["message"]["text"] for _, job in recorder.calls if job["app_user_id"] == user["_id"]]
        expected = [f"u{user['telegram_user_id']}-{n}" for n in range(8)]
        deduped = [t for i, t in enumerate(mine) if i == 0 or mine[i - 1] != t]
        assert deduped == expected
        assert all(job["chat_id"] == user["chat_id"] for _, job in recorder.calls if job["app_user_id"] == user["_id"])
    stats = store.stats()
    assert stats["send_pending"] == 0 and stats["webhook_pending"] == 24 and recorder.failed == []


def test_permanent_failure_fails_once_and_lane_moves_on(store, run):
    recorder = Recorder()
    recorder.always["blocked"] = Flaky(permanent=True)
    _queue(store, 1, ["blocked", "after"])
    run(recorder)
    recorder.wait(lambda: len(recorder.sent) == 1)
    assert [job["message"]["text"] for _, job in recorder.calls] == ["blocked", "after"]
    assert len(recorder.failed) == 1 and recorder.failed[0][1].permanent
    stats = store.stats()
    assert stats["send_failed"] == 1 and stats["send_pending"] == 0 and stats["webhook_pending"] == 2


def test_retry_after_is_honoured(store, run):
    recorder = Recorder()
    recorder.script["slow"] = [Flaky(retry_after=0.6)]
    _queue(store, 1, ["slow"])
    run(recorder)
    recorder.wait(lambda: len(recorder.sent) == 1)
    (first, _), (second, _) = recorder.calls
    assert second - first >= 0.55
    assert recorder.failed == []


def test_max_age_expiry_fails_the_job(store, run):
    recorder = Recorder()
    recorder.always["never"] = Flaky()
    _queue(store, 1, ["never", "next"])
    run(recorder, max_age=0.5, backoff=0.05, max_backoff=0.1)
    recorder.wait(lambda: len(recorder.failed) == 1 and len(recorder.sent) == 1, timeout=10)
    attempts = [t for t, job in recorder.calls if job["message"]["text"] == "never"]
    assert len(attempts) >= 3 and attempts[-1] - attempts[0] <= 1.0
    time.sleep(0.2)
    assert len(recorder.failed) == 1 and store.stats()["send_failed"] == 1


def test_pending_sends_survive_a_restart(tmp_path):
    path = str(tmp_path / "relay.sqlite3")
    store = RelayStore(path)
    _queue(store, 1, ["a", "b", "c"])
    store.close()
    store = RelayStore(path)
    recorder = Recorder()
    dispatcher = SendDispatcher(store, recorder.send, recorder.on_sent, recorder.on_failed)
    dispatcher.start()
    try:
        recorder.wait(lambda: len(recorder.sent) == 3)
    finally:
        dispatcher.stop()
    assert [job["message"]["text"] for job, _ in recorder.sent] == ["a", "b", "c"]
    assert all(isinstance(job["id"], int) for job, _ in recorder.sent)
    store.close()


def test_on_sent_commits_with_the_job_and_its_failure_is_rolled_back_but_the_job_is_done(store, run):
    recorder = Recorder()
    _queue(store, 41, ["ok", "boom"])
    message_ids = [row[0] for row in store._read("SELECT id FROM messages ORDER BY rowid")]

    def on_sent(job, ids):
        store.set_telegram_message_ids(job["message"]["_id"], ids)  # joins finish's transaction
        if job["message"]["text"] == "boom":
            raise RuntimeError("after a write")
        return recorder.on_sent(job, ids)

    transactions = []
    real = store.transaction

    def counting():
        if not store._conn.in_transaction:
            transactions.append(threading.current_thread().name)
        return real()

    store.transaction = counting
    dispatcher = SendDispatcher(store, recorder.send, on_sent, recorder.on_failed, backoff=0.02)
    dispatcher.start()
    try:
        recorder.wait(lambda: len(recorder.calls) == 2 and store.stats()["send_pending"] == 0)
    finally:
        dispatcher.stop()
    store.transaction = real
    assert store.get_telegram_message_ids(message_ids[0]) == [1]
    assert store.get_telegram_message_ids(message_ids[1]) == []  # rolled back with on_sent's failure
    assert len(recorder.calls) == 2 and store.stats()["webhook_pending"] == 1
    assert len([t for t in transactions if t.startswith("relay-send-")]) == 2  # one per sent message


def test_api_key_secret_cache_follows_revocation_and_rotation(store):
    key = store.create_api_key("k")
    assert store.api_key_secret(key.key_id) == key.secret
    assert store.api_key_secret(key.key_id) == key.secret  # from memory
    assert store.revoke_api_key(key.key_id)
    assert store.api_key_secret(key.key_id) is None
    store.ensure_api_key(key.key_id, "new-secret", "k")
    assert store.api_key_secret(key.key_id) == "new-secret"
    store.ensure_api_key(key.key_id, "newer-secret", "k")
    assert store.api_key_secret(key.key_id) == "newer-secret"
    assert store.api_key_secret("app_unknown") is None
