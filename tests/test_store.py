"""RelayStore: CRUD, dedupe, Smooch paging, migrations, threads, clear errors, and durability across kill -9."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from smoochrelay.store import INBOUND_DEDUPE_SECONDS, RelayStore, StoreUnavailableError, WebhookJob, new_hex_id
from smoochrelay.webhooks import WebhookDispatcher
from tests.helpers.receiver import Receiver

HEX24 = re.compile(r"^[0-9a-f]{24}$")


@pytest.fixture
def store(tmp_path):
    s = RelayStore(str(tmp_path / "relay.sqlite3"))
    yield s
    s.close()


def _user(store, telegram_id=42, **names):
    return store.upsert_telegram_user({"id": telegram_id, "first_name": "Ada", **names}, telegram_id)


def _message(received, text="hi"):
    return {"_id": new_hex_id(), "received": received, "role": "appUser", "type": "text", "text": text}


def test_settings_keys_and_webhooks(store):
    made = []
    assert store.setting("app_id", lambda: made.append(1) or "abc") == "abc"
    assert store.setting("app_id", lambda: made.append(1) or "other") == "abc"
    assert made == [1]
    store.set_setting("app_id", "new")
    assert store.setting("app_id") == "new"
    assert store.setting("missing") is None

    key = store.create_api_key("ci")
    assert re.match(r"^app_[0-9a-f]{24}$", key.key_id) and len(key.secret) >= 40
    assert store.api_key_secret(key.key_id) == key.secret
    store.ensure_api_key("app_configured", "s3cret", "env")
    assert {k.key_id for k in store.list_api_keys()} == {key.key_id, "app_configured"}
    assert store.revoke_api_key(key.key_id) is True
    assert store.revoke_api_key(key.key_id) is False
    assert store.api_key_secret(key.key_id) is None
    store.ensure_api_key("app_configured", "rotated", "env")
    assert store.api_key_secret("app_configured") == "rotated"

    hook = store.create_webhook("http://example.test/hook", ["message"])
    assert HEX24.match(hook.id) and re.match(r"^[0-9a-f]{40}$", hook.secret)
    assert store.list_webhooks() == [hook]
    updated = store.update_webhook(hook.id, triggers=["*"], includeFullAppUser=True)
    assert updated.triggers == ["*"] and updated.include_full_app_user is True and updated.secret == hook.secret
    assert store.get_webhook(hook.id) == updated
    assert store.update_webhook("f" * 24, target="http://x") is None
    with pytest.raises(ValueError):
        store.update_webhook(hook.id, secret="nope")
    assert store.delete_webhook(hook.id) is True
    assert store.list_webhooks() == [] and store.delete_webhook(hook.id) is False


def test_users_quick_replies_and_telegram_ids(store):
    user = _user(store, username="ada")
    assert HEX24.match(user["_id"]) and HEX24.match(user["conversation_id"])
    again = store.upsert_telegram_user({"id": 42, "first_name": "Ada", "last_name": "L"}, 42)
    assert again["_id"] == user["_id"] and again["surname"] == "L"
    assert store.app_user_by_telegram_id(42)["_id"] == user["_id"]
    assert store.get_app_user("0" * 24) is None
    assert store.set_conversation_started(user["_id"]) is True
    assert store.set_conversation_started(user["_id"]) is False
    store.set_user_blocked(user["_id"], True)
    assert store.get_app_user(user["_id"])["blocked"] is True

    assert store.get_quick_replies(user["_id"]) is None
    store.set_quick_replies(user["_id"], [{"type": "reply", "text": "Yes", "payload": "Y"}])
    assert store.get_quick_replies(user["_id"])[0]["payload"] == "Y"
    store.set_quick_replies(user["_id"], None)
    assert store.get_quick_replies(user["_id"]) is None

    message = _message(time.time())
    store.record_outbound(user["_id"], message, [])
    assert store.stats()["send_pending"] == 1
    store.set_telegram_message_ids(message["_id"], [7, 8])
    assert store.get_telegram_message_ids(message["_id"]) == [7, 8]
    assert store.message_id_for_telegram(42, 8) == message["_id"]
    assert store.get_message(message["_id"]) == message


def test_record_inbound_dedupes_on_update_id(store):
    user = _user(store)
    job = WebhookJob("a" * 24, user["conversation_id"], "message:appUser", {"n": 1})
    first = _message(1000.0)
    assert store.record_inbound(1, user["_id"], first, [job]) is True
    assert store.record_inbound(1, user["_id"], _message(1001.0), [job, job]) is False
    assert store.record_inbound(2, user["_id"], None, []) is True
    assert store.list_messages(user["_id"]) == ([first], False)
    assert store.stats()["webhook_pending"] == 1


def test_update_ids_are_remembered_for_two_days_then_forgotten(tmp_path):
    """Telegram re-delivers an unconfirmed update within 24 h at most, and may restart its update ids at random
    after a week of silence: an id seen long ago must not make a new message look like a duplicate."""
    now = [1_000_000.0]
    store = RelayStore(str(tmp_path / "relay.sqlite3"), clock=lambda: now[0])
    try:
        user = _user(store)
        for update_id in range(1, 1201):
            assert store.record_inbound(update_id, user["_id"], None, []) is True
        now[0] += INBOUND_DEDUPE_SECONDS - 60
        assert store.record_inbound(5, user["_id"], None, []) is False  # a late re-delivery: still a duplicate
        now[0] += 120
        for update_id in range(5000, 6001):  # new traffic prunes the expired ids in batches
            store.record_inbound(update_id, user["_id"], None, [])
        assert store.record_inbound(5, user["_id"], _message(now[0]), []) is True  # an old id, a new message
        assert store.record_inbound(5500, user["_id"], None, []) is False  # recent ids are still remembered
        remembered = store._read("SELECT COUNT(*) FROM inbound_updates")[0][0]
        assert remembered == 1001 + 1, remembered
        # A quiet bot: no traffic to prune with, yet an expired id is new again at once.
        now[0] += INBOUND_DEDUPE_SECONDS + 1
        assert store.record_inbound(5500, user["_id"], None, []) is True
        assert store.record_inbound(5500, user["_id"], None, []) is False
    finally:
        store.close()


def test_list_messages_pages_like_smooch(store):
    user = _user(store)
    other = _user(store, telegram_id=43)
    for i in range(250):
        store.record_inbound(i, user["_id"], _message(1000.0 + i, str(i)), [])
    store.record_inbound(999, other["_id"], _message(1100.5), [])

    def texts(page):
        return [int(m["text"]) for m in page[0]], page[1]

    assert texts(store.list_messages(user["_id"])) == (list(range(150, 250)), True)
    assert texts(store.list_messages(user["_id"], before=1150.0)) == (list(range(50, 150)), True)
    assert texts(store.list_messages(user["_id"], before=1050.0)) == (list(range(50)), False)
    assert texts(store.list_messages(user["_id"], after=999.5)) == (list(range(100)), True)
    assert texts(store.list_messages(user["_id"], after=1199.5)) == (list(range(200, 250)), False)
    assert texts(store.list_messages(user["_id"], after=1010.0, before=1013.0)) == ([11, 12], False)
    assert texts(store.list_messages(user["_id"], limit=3)) == ([247, 248, 249], True)


def test_migrations_are_idempotent_and_extendable(tmp_path):
    path = str(tmp_path / "relay.sqlite3")
    store = RelayStore(path)
    core = store.schema_version("core")
    steps = ["CREATE TABLE payments (id TEXT PRIMARY KEY)"]
    assert store.execute_schema("payments", steps) == 1
    assert store.execute_schema("payments", steps) == 1
    store.close()
    store = RelayStore(path)
    assert store.schema_version("core") == core
    steps.append("ALTER TABLE payments ADD COLUMN amount INTEGER")
    assert store.execute_schema("payments", steps) == 2
    with store.transaction() as conn:
        conn.execute("INSERT INTO payments (id, amount) VALUES ('p', 5)")
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO payments (id, amount) VALUES ('q', 6)")
        raise RuntimeError("rolled back")
    with store.transaction() as conn:
        assert conn.execute("SELECT id FROM payments").fetchall() == [("p",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.close()


def test_concurrent_threads_dedupe_exactly_once(store):
    user = _user(store)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(seed):
        try:
            for i in range(150):
                update_id = i if seed % 2 == 0 else 10_000 + seed * 1000 + i
                ok = store.record_inbound(update_id, user["_id"], _message(1000.0 + i), [
                    WebhookJob("b" * 24, user["conversation_id"], "message:appUser", {"i": i})])
                with lock:
                    results.append(ok)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    # seeds 0,2,4,6 share update ids 0..149 (only one wins each); seeds 1,3,5,7 have their own
    assert sum(results) == 150 + 4 * 150
    assert store.stats()["messages"] == 750 and store.stats()["webhook_pending"] == 750


def test_unavailable_directory_and_disk_full(tmp_path):
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        RelayStore(str(tmp_path / "missing" / "relay.sqlite3"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailableError, match="RELAY_DATA_DIR"):
        RelayStore(str(tmp_path / "file" / "relay.sqlite3"))

    store = RelayStore(str(tmp_path / "relay.sqlite3"))
    user = _user(store)
    with store.transaction() as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # simulates a full disk
    with pytest.raises(StoreUnavailableError, match="full"):
        for i in range(2000):
            store.record_inbound(i, user["_id"], _message(1000.0 + i, "x" * 2000), [])
    store.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreUnavailableError, match="not writable"):
            RelayStore(str(locked / "relay.sqlite3"))
    finally:
        locked.chmod(0o700)


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from smoochrelay.store import RelayStore, WebhookJob, new_hex_id
    store = RelayStore(sys.argv[1])
    user = store.upsert_telegram_user({"id": 7, "first_name": "K"}, 7)
    hook = store.create_webhook(sys.argv[3], ["*"])
    print("webhook", hook.id, flush=True)
    i = 0
    while True:
        i += 1
        message = {"_id": new_hex_id(), "received": time.time(), "text": str(i)}
        store.record_inbound(i, user["_id"], message,
                             [WebhookJob(hook.id, "lane%d" % (i % 5), "message:appUser", {"i": i})])
        print(i, flush=True)
""")


def test_committed_rows_survive_sigkill_and_jobs_deliver_after_restart(tmp_path):
    path = str(tmp_path / "relay.sqlite3")
    plugin_dir = os.path.join(os.path.dirname(__file__), "..", "plugins", "relay")
    with Receiver() as rx:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, path, plugin_dir, rx.url + "/hook"],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().startswith("webhook")
            committed = 0
            while committed < 300:
                line = proc.stdout.readline()
                assert line, "writer died"
                committed = int(line)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL

        store = RelayStore(path)
        user = store.app_user_by_telegram_id(7)
        with store.transaction() as conn:
            ids = {row[0] for row in conn.execute("SELECT update_id FROM inbound_updates")}
        assert set(range(1, committed + 1)) <= ids
        total = len(ids)
        assert store.stats()["messages"] == total == store.stats()["webhook_pending"]
        assert store.record_inbound(committed, user["_id"], None, []) is False

        dispatcher = WebhookDispatcher(store, backoff=0.05)
        dispatcher.start()
        try:
            rx.wait_for(lambda reqs: len({r.json["i"] for r in reqs}) >= total, timeout=30)
        finally:
            dispatcher.stop()
        assert {r.json["i"] for r in rx.requests} == set(range(1, total + 1))
        assert store.stats()["webhook_pending"] == 0
        store.close()
