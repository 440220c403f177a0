"""The SQLite storage plugin inside real Errbot: the testbot fixture, a bot restart, and the errbot CLI."""

import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ["errbot.backends.test"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORAGE_DIR = os.path.join(ROOT, "storage")
ERRBOT = os.path.join(os.path.dirname(sys.executable), "errbot")
extra_config = {"STORAGE": "SQLite", "BOT_EXTRA_STORAGE_PLUGINS_DIR": STORAGE_DIR}
extra_plugin_dir = None  # set by memo_plugin_dir before the testbot fixture reads it

MEMO_PLUG = """\
[Core]
Name = Memo
Module = memo

[Documentation]
Description = Test plugin that keeps values in self[...].
"""

MEMO_PY = textwrap.dedent(
    """
    from errbot import BotPlugin, botcmd


    class Memo(BotPlugin):
        @botcmd
        def remember(self, msg, args):
            key, value = args.split(" ", 1)
            self[key] = {"value": value, "tuple": (1, 2), "set": {"a"}}
            return f"remembered {key}"

        @botcmd
        def recall(self, msg, args):
            return repr(self.get(args, "nothing"))
    """
)


@pytest.fixture(scope="module", autouse=True)
def memo_plugin_dir(tmp_path_factory):
    """Writes the Memo plugin and points the module's extra_plugin_dir (read by testbot) at it."""
    global extra_plugin_dir
    directory = tmp_path_factory.mktemp("plugins") / "memo"
    directory.mkdir()
    (directory / "memo.plug").write_text(MEMO_PLUG)
    (directory / "memo.py").write_text(MEMO_PY)
    extra_plugin_dir = str(directory.parent)
    return extra_plugin_dir


def stored(path, namespace, key):
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT value FROM errbot_storage WHERE namespace = ? AND key = ?", (namespace, key)
        ).fetchone()
    return None if row is None else pickle.loads(row[0])


def test_testbot_fixture_uses_the_sqlite_plugin(testbot):
    assert type(testbot.bot.storage_plugin).__name__ == "SQLiteStoragePlugin"
    assert testbot.exec_command("!remember color blue") == "remembered color"
    path = os.path.join(testbot.bot_config.BOT_DATA_DIR, "errbot.sqlite3")
    assert stored(path, "Memo", "color") == {"value": "blue", "tuple": (1, 2), "set": {"a"}}
    assert "configs" in {row[0] for row in sqlite3.connect(path).execute(
        "SELECT key FROM errbot_storage WHERE namespace = 'core'"
    )}


def test_plugin_values_persist_across_a_bot_restart(memo_plugin_dir, tmp_path):
    from errbot.backends.test import TestBot  # imported here so pytest does not try to collect it

    config = dict(extra_config, BOT_DATA_DIR=str(tmp_path))
    first = TestBot(extra_plugin_dir=memo_plugin_dir, extra_config=config, loglevel=30)
    first.start()
    try:
        assert first.exec_command("!remember city Lisbon") == "remembered city"
    finally:
        first.stop()
    second = TestBot(extra_plugin_dir=memo_plugin_dir, extra_config=config, loglevel=30)
    second.start()
    try:
        assert second.exec_command("!recall city") == repr({"value": "Lisbon", "tuple": (1, 2), "set": {"a"}})
        assert second.exec_command("!recall unknown") == "'nothing'"
    finally:
        second.stop()


def run_cli(config_path, *args, stdin="", cwd, env=None):
    return subprocess.run(
        [ERRBOT, "-c", str(config_path), *args],
        input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_cli_storage_set_and_get_with_a_minimal_config(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "cliconfig.py"
    config.write_text(
        f"BACKEND = 'Text'\nBOT_DATA_DIR = {str(data)!r}\nBOT_ADMINS = ('1',)\n"
        f"STORAGE = 'SQLite'\nBOT_EXTRA_STORAGE_PLUGINS_DIR = {STORAGE_DIR!r}\n"
    )
    result = run_cli(config, "--storage-set", "core", stdin="{'configs': {'Webserver': {'PORT': 3141}}}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stored(data / "errbot.sqlite3", "core", "configs") == {"Webserver": {"PORT": 3141}}
    result = run_cli(config, "--storage-get", "core", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "{'configs': {'Webserver': {'PORT': 3141}}}"


def test_cli_storage_get_through_config_template(tmp_path):
    data = tmp_path / "relaydata"
    sys.path.insert(0, STORAGE_DIR)
    import sqlite as sqlite_storage

    class Config:
        BOT_DATA_DIR = str(data)

    data.mkdir()
    store = sqlite_storage.SQLiteStoragePlugin(Config).open("core")
    store.set("configs", {"Relay": {"x": (1, 2)}})
    store.close()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = run_cli(
        os.path.join(ROOT, "config_template.py"), "--storage-get", "core", cwd=elsewhere,
        env={"RELAY_DATA_DIR": str(data), "RELAY_LOG_FILE": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "{'configs': {'Relay': {'x': (1, 2)}}}"


def test_cli_reports_an_unusable_database_plainly(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "errbot.sqlite3").mkdir()
    config = tmp_path / "badconfig.py"
    config.write_text(
        f"BACKEND = 'Text'\nBOT_DATA_DIR = {str(data)!r}\nBOT_ADMINS = ('1',)\n"
        f"STORAGE = 'SQLite'\nBOT_EXTRA_STORAGE_PLUGINS_DIR = {STORAGE_DIR!r}\n"
    )
    result = run_cli(config, "--storage-get", "core", cwd=tmp_path)
    assert result.returncode == 253
    assert f"Cannot open the Errbot storage database {data / 'errbot.sqlite3'}" in result.stderr
    assert "Traceback" not in result.stderr
