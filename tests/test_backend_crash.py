"""A real `errbot` process with TGRelay and SQLite storage, killed with SIGKILL mid-stream and restarted:
no update is lost, and the ones handed to plugins before the kill come back flagged as redelivered."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

from sandbox import Sandbox
from tests.helpers.backend_bot import ROOT, TOKEN, wait_until

COUNT = 400


def write_config(directory: pathlib.Path, api_url: str) -> pathlib.Path:
    (directory / "data").mkdir()
    config = directory / "config.py"
    config.write_text(textwrap.dedent(f"""
        import logging
        BACKEND = "TGRelay"
        BOT_DATA_DIR = {str(directory / "data")!r}
        BOT_LOG_FILE = {str(directory / "errbot.log")!r}
        BOT_LOG_LEVEL = logging.INFO
        BOT_EXTRA_BACKEND_DIR = {str(ROOT / "backends")!r}
        BOT_EXTRA_PLUGIN_DIR = [{str(ROOT / "tests" / "plugins" / "probe")!r}]
        BOT_EXTRA_STORAGE_PLUGINS_DIR = {str(ROOT / "storage")!r}
        STORAGE = "SQLite"
        STORAGE_CONFIG = {{"synchronous": "NORMAL"}}
        AUTOINSTALL_DEPS = False
        CORE_PLUGINS = ("ACLs", "Utils")
        BOT_ADMINS = ("1000",)
        BOT_ADMINS_NOTIFICATIONS = ()
        BOT_IDENTITY = {{"token": {TOKEN!r}, "api_url": {api_url!r}, "poll_timeout": 1, "pacing": False}}
    """))
    return config


def start(config: pathlib.Path, journal: pathlib.Path) -> subprocess.Popen:
    env = dict(os.environ, PROBE_JOURNAL=str(journal), PROBE_DELAY="0.004")
    errbot = pathlib.Path(sys.executable).with_name("errbot")
    return subprocess.Popen([str(errbot), "-c", str(config)], cwd=config.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def journal_lines(journal: pathlib.Path) -> list[dict]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]


def test_kill_9_mid_stream_loses_nothing_and_flags_redeliveries(tmp_path):
    sb = Sandbox(host="127.0.0.1", port=0)
    sb.start()
    sb.add_bot(TOKEN)
    journal = tmp_path / "journal.jsonl"
    config = write_config(tmp_path, sb.url)
    processes = []
    try:
        pushed = [sb.push_text(10_000 + i % 50, f"message {i}")["update_id"] for i in range(COUNT)]
        first = start(config, journal)
        processes.append(first)
        # All updates were queued before the start, so batches are full (100): kill only when the journal
        # shows the bot inside a batch, never in the short gap between an acknowledgement and the next batch.
        wait_until(lambda: (len(journal_lines(journal)) >= COUNT // 4
                            and 10 <= len(journal_lines(journal)) % 100 <= 90), 60,
                   "the first process never reached the middle of a batch")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        handled_before = {line["update_id"] for line in journal_lines(journal)}
        assert len(handled_before) < COUNT, "the kill came too late to test anything"
        acknowledged = sb.offset_acknowledged
        assert acknowledged < max(pushed)
        second = start(config, journal)
        processes.append(second)
        wait_until(lambda: {line["update_id"] for line in journal_lines(journal)} >= set(pushed), 60,
                   "updates were lost after the restart")
        wait_until(lambda: sb.offset_acknowledged >= max(pushed), 20, "the restarted bot never acknowledged")
        lines = journal_lines(journal)
        seen = collections.Counter(line["update_id"] for line in lines)
        repeated = {update_id for update_id, times in seen.items() if times > 1}
        first_run = len(handled_before)
        flagged = {line["update_id"] for line in lines[first_run:] if line["redelivered"]}
        assert repeated, "SIGKILL mid-batch should leave some handled-but-unacknowledged updates"
        assert repeated <= flagged, "a re-delivered update was not flagged as redelivered"
        # The flag means "may have reached plugins": the whole batch in flight at the kill (≤ 100 updates)
        # may carry it, nothing after that batch may.
        beyond_batch = [line for line in lines if line["update_id"] > max(handled_before) + 100]
        assert beyond_batch and not any(line["redelivered"] for line in beyond_batch)
        assert len(seen) == COUNT
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
        sb.stop()
