"""CPU affinity: the bot's threads are kept on one CPU (CPU_AFFINITY / RELAY_CPU_AFFINITY)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.helpers.backend_bot import ROOT
from tgbackend.affinity import AUTO, OFF, parse_cpu_affinity, pin_process

pytest_plugins = ["tests.helpers.process_stack"]
ALLOWED = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cpus = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs a process allowed on 2+ CPUs")

PIN_SCRIPT = """
import json, os, sys, threading
sys.path.insert(0, sys.argv[1])
from tgbackend.affinity import pin_process
started, release = threading.Event(), threading.Event()
def worker():
    started.set()
    release.wait(10)
before = threading.Thread(target=worker)
before.start()
started.wait(5)
cpu = pin_process(json.loads(sys.argv[2]))
started.clear()
after = threading.Thread(target=worker)
after.start()
started.wait(5)
masks = [sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")]
release.set()
print(json.dumps({"cpu": cpu, "masks": masks}))
"""


def run_pin(choice: str | int) -> dict:
    """pin_process(choice) in a fresh interpreter with a thread started before it and one after."""
    done = subprocess.run([sys.executable, "-c", PIN_SCRIPT, str(ROOT / "backends" / "tgrelay"), json.dumps(choice)],
                          capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("value, expected", [
    (None, AUTO), ("", AUTO), ("auto", AUTO), (" Auto ", AUTO), ("off", OFF), ("OFF", OFF), ("1", 1), (0, 0),
])
def test_settings_accepted(value, expected):
    assert parse_cpu_affinity(value) == expected


@pytest.mark.parametrize("value", ["one", "-1", -1, "1.5", "all"])
def test_other_settings_are_refused_with_what_is_accepted(value):
    with pytest.raises(ValueError, match="'auto', 'off' or a CPU number"):
        parse_cpu_affinity(value)


@needs_two_cpus
def test_auto_keeps_every_thread_on_one_allowed_cpu_including_later_ones():
    result = run_pin("auto")
    assert result["cpu"] in ALLOWED
    assert len(result["masks"]) >= 3  # main thread, the thread started before pinning, the one after
    assert all(mask == [result["cpu"]] for mask in result["masks"]), result


@needs_two_cpus
def test_an_explicit_cpu_is_used():
    result = run_pin(ALLOWED[0])
    assert result["cpu"] == ALLOWED[0] and all(mask == [ALLOWED[0]] for mask in result["masks"]), result


def test_off_leaves_the_process_alone():
    result = run_pin("off")
    assert result["cpu"] is None and all(mask == ALLOWED for mask in result["masks"]), result


def test_a_cpu_the_process_may_not_use_is_refused():
    with pytest.raises(ValueError, match="may only run on CPUs"):
        pin_process(max(ALLOWED, default=0) + 1000)


def thread_masks(pid: int) -> list[frozenset[int]]:
    """The CPUs each thread of process `pid` may run on (its Cpus_allowed_list, e.g. "0-3,6")."""
    masks = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        text = next(line.split(":", 1)[1].strip() for line in status.splitlines()
                    if line.startswith("Cpus_allowed_list"))
        cpus: set[int] = set()
        for part in text.split(","):
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
        masks.append(frozenset(cpus))
    return masks


@needs_two_cpus
def test_the_product_pins_itself_by_default_and_not_when_told_not_to(process_stack):
    process_stack.start_bot()
    masks = thread_masks(process_stack.bot_proc.pid)
    assert len(masks) > 10 and len(set(masks)) == 1 and len(masks[0]) == 1 and masks[0] <= set(ALLOWED), masks
    process_stack.stop_bot()
    process_stack.start_bot(RELAY_CPU_AFFINITY="off")
    assert set(thread_masks(process_stack.bot_proc.pid)) == {frozenset(ALLOWED)}
