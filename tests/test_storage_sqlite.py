"""The SQLite storage plugin on its own: StorageBase semantics, threads, durability across SIGKILL, errors."""

import os
import pickle
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest
import sqlite as sqlite_storage
from errbot.storage import StoreMixin, StoreNotOpenError

STORAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "storage")


def make_plugin(data_dir, **storage_config):
    config = SimpleNamespace(BOT_DATA_DIR=str(data_dir))
    if storage_config:
        config.STORAGE_CONFIG = storage_config
    return sqlite_storage.SQLiteStoragePlugin(config)


@pytest.fixture
def plugin(tmp_path):
    return make_plugin(tmp_path)


def raw_rows(path):
    with sqlite3.connect(path) as conn:
        return {(ns, key): pickle.loads(value) for ns, key, value in conn.execute("SELECT * FROM errbot_storage")}


def test_get_set_remove_keys_len(plugin):
    store = plugin.open("ns")
    assert store.len() == 0 and list(store.keys()) == []
    store.set("b", 1)
    store.set("a", "x")
    store.set("b", 2)
    assert store.get("b") == 2 and store.get("a") == "x"
    assert sorted(store.keys()) == ["a", "b"] and store.len() == 2
    store.remove("a")
    assert list(store.keys()) == ["b"] and store.len() == 1
    with pytest.raises(KeyError):
        store.get("a")
    with pytest.raises(KeyError):
        store.remove("a")
    store.close()


def test_values_are_pickled_copies_with_types_kept(plugin):
    store = plugin.open("ns")
    value = {"tuple": (1, 2), "set": {3, 4}, "none": None, "bytes": b"\x00\xff", "nested": [{"k": 1.5}]}
    store.set("v", value)
    got = store.get("v")
    assert got == value and type(got["tuple"]) is tuple and type(got["set"]) is set
    got["nested"].append("mutated")
    assert store.get("v") == value, "the stored value is a copy, as with Shelf"
    store.close()


def test_unpicklable_value_is_refused_and_old_value_kept(plugin):
    store = plugin.open("ns")
    store.set("k", "old")
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        store.set("k", threading.Lock())
    assert store.get("k") == "old"
    store.close()


def test_keys_must_be_strings(plugin):
    store = plugin.open("ns")
    with pytest.raises(TypeError):
        store.set(1, "x")
    store.close()


def test_namespaces_are_isolated_in_one_table(plugin):
    a, b = plugin.open("alpha"), plugin.open("beta")
    a.set("k", "from a")
    b.set("k", "from b")
    assert a.get("k") == "from a" and b.get("k") == "from b"
    a.remove("k")
    assert b.get("k") == "from b" and a.len() == 0
    a.close()
    b.close()
    assert raw_rows(plugin.path) == {("beta", "k"): "from b"}


def test_closing_one_namespace_leaves_others_working(plugin):
    core, other = plugin.open("core"), plugin.open("Relay")
    core.set("configs", {})
    other.close()
    core.set("configs", {"Relay": {"x": 1}})
    assert core.get("configs") == {"Relay": {"x": 1}}
    with pytest.raises(StoreNotOpenError):
        other.get("configs")
    other.close()
    core.close()
    reopened = plugin.open("core")
    assert reopened.get("configs") == {"Relay": {"x": 1}}
    reopened.close()


def test_store_mixin_behaves_like_a_dict(plugin):
    mixin = StoreMixin()
    mixin.open_storage(plugin, "Plugin")
    mixin["a"] = [1]
    mixin["b"] = 2
    with mixin.mutable("a", []) as items:
        items.append(2)
    assert "a" in mixin and "zz" not in mixin
    assert dict(mixin) == {"a": [1, 2], "b": 2} and len(mixin) == 2
    mixin.clear()
    assert len(mixin) == 0
    mixin.close_storage()


def test_database_uses_wal_and_a_namespace_key_primary_key(plugin):
    plugin.open("ns").close()
    with sqlite3.connect(plugin.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        pk = [(row[1], row[5]) for row in conn.execute("PRAGMA table_info(errbot_storage)") if row[5]]
    assert sorted(pk, key=lambda c: c[1]) == [("namespace", 1), ("key", 2)]
    assert stat.S_IMODE(os.stat(plugin.path).st_mode) == 0o600


def test_default_and_configured_paths(tmp_path):
    assert make_plugin(tmp_path).path == str(tmp_path / "errbot.sqlite3")
    assert make_plugin(tmp_path, path="sub/bot.db").path == str(tmp_path / "sub" / "bot.db")
    absolute = tmp_path / "elsewhere" / "x.sqlite3"
    plugin = make_plugin(tmp_path / "unused", path=str(absolute))
    plugin.open("ns").close()
    assert plugin.path == str(absolute) and absolute.exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"basedir": "/x"}, "Unknown STORAGE_CONFIG keys"),
        ({"synchronous": "OFF"}, "synchronous"),
        ({"busy_timeout": "soon"}, "busy_timeout"),
    ],
)
def test_bad_storage_config_is_a_clear_error(tmp_path, config, message):
    with pytest.raises(sqlite_storage.SQLiteStorageError, match=message):
        make_plugin(tmp_path, **config)


def test_unwritable_data_dir_is_a_clear_error(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(sqlite_storage.SQLiteStorageError) as info:
        make_plugin(not_a_dir / "data")
    message = str(info.value)
    assert str(not_a_dir / "data" / "errbot.sqlite3") in message and "writable" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_waits_for_another_writer_within_busy_timeout(tmp_path):
    plugin = make_plugin(tmp_path, busy_timeout=5)
    store = plugin.open("ns")
    other = sqlite3.connect(plugin.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.3, other.execute, args=("COMMIT",))
    releaser.start()
    started = time.monotonic()
    store.set("k", "after the other writer")
    assert time.monotonic() - started >= 0.25
    releaser.join()
    other.close()
    assert store.get("k") == "after the other writer"
    store.close()


def test_short_busy_timeout_gives_up(tmp_path):
    plugin = make_plugin(tmp_path, busy_timeout=0.05)
    store = plugin.open("ns")
    other = sqlite3.connect(plugin.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.set("k", "v")
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.close()


def test_eight_threads_writing_give_no_wrong_values(tmp_path):
    plugin = make_plugin(tmp_path, synchronous="NORMAL")
    stores = [plugin.open("shared") for _ in range(2)] + [plugin.open(f"own{i}") for i in range(2)]
    errors = []

    def value(thread, i):
        # Sizes vary so values grow and shrink: the pattern that corrupts dbm.dumb.
        return {"thread": thread, "i": i, "pad": "x" * ((thread * 97 + i * 31) % 3000), "t": (thread, i)}

    def writer(thread):
        store = stores[thread % len(stores)]
        try:
            for i in range(300):
                store.set(f"t{thread}-{i % 50}", value(thread, i))
                if i % 10 == 0:
                    assert store.get(f"t{thread}-{i % 50}") == value(thread, i)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for store in stores:
        store.close()

    fresh = make_plugin(tmp_path, synchronous="NORMAL")
    wrong = 0
    for thread in range(8):
        namespace = ("shared", "shared", "own0", "own1")[thread % 4]
        store = fresh.open(namespace)
        for slot in range(50):
            if store.get(f"t{thread}-{slot}") != value(thread, 250 + slot):
                wrong += 1
        store.close()
    assert wrong == 0


WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from types import SimpleNamespace
    sys.path.insert(0, {storage_dir!r})
    import sqlite as s
    plugin = s.SQLiteStoragePlugin(SimpleNamespace(BOT_DATA_DIR={data_dir!r}, STORAGE_CONFIG={config!r}))
    store = plugin.open("crash")
    store.set("grown", "small")
    for i in range(200):
        store.set(f"k{{i}}", {{"i": i, "tuple": (i, i)}})
    store.set("grown", "G" * 5000)
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_values_survive_sigkill_right_after_set(tmp_path, synchronous):
    script = WRITER.format(storage_dir=STORAGE_DIR, data_dir=str(tmp_path), config={"synchronous": synchronous})
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, result.stderr
    assert result.stdout.strip() == "written"
    assert os.path.exists(tmp_path / "errbot.sqlite3-wal"), "killed before a checkpoint: data is in the WAL"
    store = make_plugin(tmp_path).open("crash")
    assert store.get("grown") == "G" * 5000
    assert store.len() == 201
    assert all(store.get(f"k{i}") == {"i": i, "tuple": (i, i)} for i in range(200))
    store.close()
