"""Keep all of the bot's threads on one CPU (Linux).

The bot is one CPython process: its threads take turns holding the GIL, so a second core adds almost no
Python throughput, while every GIL handoff between threads that sit on different cores is a cross-CPU
wakeup. Under load (an API flood and the sends it causes) that cost ~35 % of the process's CPU in the
kernel's task-switch paths. Measured on the benchmark's outbound run, the same code pinned or not: ~440 →
~710 messages delivered per second, 2.2 → 1.4 ms of CPU per message (README, Performance).
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("errbot.backends.tgrelay.affinity")

AUTO = "auto"
OFF = "off"


def parse_cpu_affinity(value: object) -> str | int:
    """CPU_AFFINITY as "auto", "off" or a CPU number; ValueError says what is accepted."""
    if value is None:
        return AUTO
    if isinstance(value, bool):
        return AUTO if value else OFF
    if isinstance(value, int) and value >= 0:
        return value
    text = str(value).strip().lower()
    if text in ("", AUTO):
        return AUTO
    if text in (OFF, "no", "false"):
        return OFF
    if text.isdigit():
        return int(text)
    raise ValueError(f"CPU_AFFINITY (RELAY_CPU_AFFINITY) must be 'auto', 'off' or a CPU number, got {value!r}")


def pin_process(choice: str | int) -> int | None:
    """Pin every thread of this process to one CPU (threads started later inherit it); return that CPU.

    None when nothing was done: `choice` is "off", the OS has no affinity API, or only one CPU is allowed.
    A CPU number outside the allowed set raises ValueError; an OS refusal is logged, and the bot runs
    unpinned.
    """
    if choice == OFF or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if isinstance(choice, int):
        if choice not in allowed:
            raise ValueError(f"CPU_AFFINITY is {choice}, but this process may only run on CPUs {allowed}")
        cpu = choice
    elif len(allowed) < 2:
        return None
    else:
        cpu = least_busy_cpu(allowed)
    pinned: set[int] = set()
    try:
        for _ in range(3):  # a thread started during a pass by a not-yet-pinned one is pinned in the next
            todo = [tid for tid in _thread_ids() if tid not in pinned]
            if not todo:
                break
            for tid in todo:
                pinned.add(tid)
                try:
                    os.sched_setaffinity(tid, {cpu})
                except ProcessLookupError:
                    continue  # the thread ended meanwhile
    except OSError as exc:
        log.warning("Could not keep the bot on CPU %d (%s); running on CPUs %s", cpu, exc, allowed)
        return None
    log.info("Bot threads kept on CPU %d of %s (RELAY_CPU_AFFINITY=off lets them move)", cpu, allowed)
    return cpu


def least_busy_cpu(cpus: list[int], sample: float = 0.1) -> int:
    """The CPU among `cpus` with the least busy time over `sample` seconds (/proc/stat); the last one
    if that cannot be read."""
    before = _busy_times()
    time.sleep(sample)
    after = _busy_times()
    if not before or not after:
        return cpus[-1]
    return min(reversed(cpus), key=lambda cpu: after.get(cpu, 0) - before.get(cpu, 0))


def _busy_times() -> dict[int, int]:
    """Per-CPU busy jiffies (all but idle and iowait) from /proc/stat; {} where unavailable."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return {}
    times: dict[int, int] = {}
    for line in lines:
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            fields = [int(part) for part in rest.split()]
            times[int(name[3:])] = sum(fields) - sum(fields[3:5])
    return times


def _thread_ids() -> list[int]:
    """Kernel ids of this process's threads."""
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # no /proc: the calling thread only
