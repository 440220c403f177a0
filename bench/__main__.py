"""`make bench` (`python -m bench`): the relay against the baseline on one machine; prints a table, writes JSON.

Everything is local: the sandbox plays Telegram (in this process), bench.receiver plays the business (its
own process), the relay runs as in production (`errbot -c config_template.py`, SQLite outbox, its own
process, so RSS is its own), and bench.baseline (PTB + requests, no durability) runs on the same sandbox
and receiver. Each run starts fresh processes and databases; the table shows medians of the runs.

    python -m bench                    # defaults: 3 runs, fits in well under 10 minutes on 2 cores
    python -m bench --runs 1 --inbound 5000 --users 20000        # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import phases
from bench.procs import ROOT, TOKEN, BaselineProcess, ReceiverProcess, RelayProcess, wait_until
from sandbox import Sandbox

RESULTS = ROOT / "bench" / "results"


def fresh_sandbox() -> Sandbox:
    sandbox = Sandbox(host="127.0.0.1", port=0, enforce_limits=False)
    sandbox.start()
    sandbox.add_bot(TOKEN, username="bench_bot")
    return sandbox


def wait_polling(sandbox: Sandbox, proc) -> None:
    def polling() -> bool:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"{type(proc).__name__} exited with {proc.proc.returncode}")
        return sandbox._queue._poll_generation > 0  # a getUpdates long poll is in flight
    wait_until(polling, 60, "no getUpdates from the bot")


def public(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if not k.startswith("_")}


def inbound_phases(name: str, sandbox, receiver: ReceiverProcess, plan, args, process, log) -> tuple[dict, dict]:
    """Inbound at full speed (all figures, for the caller to pick from), then at the fixed rate."""
    log(f"  {name}: inbound {args.inbound} messages at full speed")
    full = phases.inbound(sandbox, receiver, plan, count=args.inbound, cpu=process.cpu)
    log(f"  {name}: inbound at {args.rate:g}/s for {args.seconds:g}s")
    paced = public(phases.inbound(sandbox, receiver, plan, rate=args.rate, seconds=args.seconds, cpu=process.cpu))
    return full, paced


def run_relay(args, receiver: ReceiverProcess, log) -> dict:
    sandbox = fresh_sandbox()
    relay = RelayProcess(sandbox.url, receiver.url)
    try:
        wait_polling(sandbox, relay)
        plan = phases.Plan(users=args.inbound_users)
        full, paced = inbound_phases("relay", sandbox, receiver, plan, args, relay, log)
        app_users = list(full.pop("_app_users").values())
        log(f"  relay: outbound {args.outbound} API posts from {args.clients} clients")
        out_full = phases.outbound(sandbox, relay.url, app_users, count=args.outbound, clients=args.clients,
                                   cpu=relay.cpu)
        log(f"  relay: outbound at {args.rate:g}/s for {args.seconds:g}s")
        out_paced = phases.outbound(sandbox, relay.url, app_users, clients=args.clients, rate=args.rate,
                                    seconds=args.seconds)
        rss, peak = relay.rss()
        return {"inbound_full": full, "inbound_paced": paced, "outbound_full": out_full,
                "outbound_paced": out_paced, "rss_mb": rss, "peak_rss_mb": peak}
    finally:
        relay.stop()
        sandbox.stop()


def run_baseline(args, receiver: ReceiverProcess, log) -> dict:
    sandbox = fresh_sandbox()
    baseline = BaselineProcess(sandbox.url, receiver.url)
    try:
        wait_polling(sandbox, baseline)
        plan = phases.Plan(users=args.inbound_users)
        full, paced = inbound_phases("baseline", sandbox, receiver, plan, args, baseline, log)
        full = public(full)
        log(f"  direct sendMessage reference: {args.outbound} calls from {args.clients} clients")
        chats = [plan.user_of(i) for i in range(plan.users)]
        direct = phases.direct_sends(sandbox, chats, args.outbound, args.clients)
        rss, peak = baseline.rss()
        return {"inbound_full": full, "inbound_paced": paced, "direct_sends": direct, "rss_mb": rss,
                "peak_rss_mb": peak}
    finally:
        baseline.stop()
        sandbox.stop()


def run_memory(args, receiver: ReceiverProcess, log) -> dict:
    """RSS after `users` distinct users have each written one message (all relayed)."""
    sandbox = fresh_sandbox()
    relay = RelayProcess(sandbox.url, receiver.url)
    try:
        wait_polling(sandbox, relay)
        before = relay.rss()[0]
        log(f"  relay: {args.users} distinct users write one message each")
        plan = phases.Plan(users=args.users, first_user=10_000_000, photo_every=0)
        figures = public(phases.inbound(sandbox, receiver, plan, count=args.users))
        time.sleep(1.0)
        rss, peak = relay.rss()
        return {"users": args.users, "rss_before_mb": before, "rss_after_mb": rss, "peak_rss_mb": peak,
                "throughput_per_s": figures["throughput_per_s"], "lost": figures["lost"]}
    finally:
        relay.stop()
        sandbox.stop()


def median(runs: list[dict], *path: str) -> float:
    if not runs:
        return float("nan")  # --no-baseline
    values = []
    for run in runs:
        value = run
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def summarise(relay_runs: list[dict], base_runs: list[dict], memory: dict | None, args) -> list[tuple]:
    """Rows: (figure, ours, baseline or reference, ratio, target, met)."""
    m = lambda runs, *p: median(runs, *p)  # noqa: E731
    rows = []

    def row(name, ours, ref, target, ok, ratio=None):
        if ratio is None and ref not in (None, 0):
            ratio = ours / ref
        rows.append((name, ours, ref, ratio, target, ok))

    thr, base_thr = m(relay_runs, "inbound_full", "throughput_per_s"), m(base_runs, "inbound_full", "throughput_per_s")
    row("inbound throughput, full speed (msg/s)", thr, base_thr, ">= 1000 and >= 0.7x",
        thr >= 1000 and thr >= 0.7 * base_thr)
    row("bot CPU per inbound message, full speed (ms)", m(relay_runs, "inbound_full", "cpu_ms_per_message"),
        m(base_runs, "inbound_full", "cpu_ms_per_message"), "", None)
    for q in ("p50", "p99", "max"):
        row(f"inbound added latency, full speed, {q} (ms)", m(relay_runs, "inbound_full", f"latency_{q}_ms"),
            m(base_runs, "inbound_full", f"latency_{q}_ms"), "", None)
    targets = {"p50": 5.0, "p99": 25.0}
    for q in ("p50", "p99", "max"):
        ours = m(relay_runs, "inbound_paced", f"latency_{q}_ms")
        row(f"inbound added latency at {args.rate:g}/s, {q} (ms)", ours,
            m(base_runs, "inbound_paced", f"latency_{q}_ms"),
            f"<= {targets[q]:g}" if q in targets else "", ours <= targets[q] if q in targets else None)
    for q in ("p50", "p99"):
        row(f"API accept latency, {args.clients} clients full speed, {q} (ms)",
            m(relay_runs, "outbound_full", f"accept_{q}_ms"), None, "", None)
    row(f"API accepts, {args.clients} clients full speed (req/s)", m(relay_runs, "outbound_full", "accept_per_s"),
        None, "", None)
    for q in ("p50", "p99"):
        ours = m(relay_runs, "outbound_paced", f"accept_{q}_ms")
        row(f"API accept latency at {args.rate:g}/s, {q} (ms)", ours, None, "<= 15" if q == "p99" else "",
            ours <= 15 if q == "p99" else None)
    delivery = m(relay_runs, "outbound_full", "delivery_per_s")
    row("delivery to Telegram, pacing off (msg/s)", delivery, m(base_runs, "direct_sends", "delivery_per_s"),
        ">= 500", delivery >= 500)
    row("bot CPU per outbound message, full speed (ms)", m(relay_runs, "outbound_full", "cpu_ms_per_message"),
        None, "", None)
    row("RSS after the runs (MB)", m(relay_runs, "rss_mb"), m(base_runs, "rss_mb"), "", None)
    row("peak RSS (MB)", max(r["peak_rss_mb"] for r in relay_runs),
        max((r["peak_rss_mb"] for r in base_runs), default=float("nan")), "", None)
    if memory:
        row(f"RSS after {memory['users']:,} distinct users (MB)", memory["rss_after_mb"], None, "<= 200",
            memory["rss_after_mb"] <= 200)
        row(f"peak RSS, {memory['users']:,} users (MB)", memory["peak_rss_mb"], None, "", None)
    return rows


def table(rows: list[tuple]) -> str:
    head = ("figure", "relay", "baseline*", "ratio", "target", "met")
    lines = []
    cells = [head] + [(name, f"{ours:,.1f}", "" if ref is None else f"{ref:,.1f}",
                       "" if ratio is None else f"{ratio:.2f}x", target,
                       "" if ok is None else ("yes" if ok else "NO")) for name, ours, ref, ratio, target, ok in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for index, cell in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                        for i, (c, w) in enumerate(zip(cell, widths, strict=True))) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                                        for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="repetitions (medians are reported)")
    parser.add_argument("--inbound", type=int, default=20_000, help="messages injected at full speed")
    parser.add_argument("--inbound-users", type=int, default=1000, help="distinct users in the inbound runs")
    parser.add_argument("--outbound", type=int, default=5000, help="API posts at full speed")
    parser.add_argument("--clients", type=int, default=8, help="concurrent API clients")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed rate for the paced phases (per s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each paced phase")
    parser.add_argument("--users", type=int, default=100_000, help="distinct users for the memory phase (0: skip)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the baseline runs (for quick before/after looks at the relay only)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/<time>.json)")
    args = parser.parse_args(argv)

    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    receiver = ReceiverProcess()
    relay_runs, base_runs, memory = [], [], None
    try:
        for run in range(1, args.runs + 1):
            log(f"run {run}/{args.runs}")
            relay_runs.append(run_relay(args, receiver, log))
            if not args.no_baseline:
                base_runs.append(run_baseline(args, receiver, log))
        if args.users:
            log("memory")
            memory = run_memory(args, receiver, log)
    finally:
        receiver.stop()
    rows = summarise(relay_runs, base_runs, memory, args)
    text = table(rows)
    print(text)
    print("* baseline: bench/baseline.py (PTB polling + requests, no durability) on the same sandbox and "
          "receiver; for delivery, direct sendMessage calls from the same number of clients. "
          f"Medians of {args.runs} run(s).")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": commit, "args": vars(args) | {"output": None},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "seconds": time.monotonic() - started, "relay": relay_runs, "baseline": base_runs, "memory": memory,
              "table": [dict(zip(("figure", "relay", "baseline", "ratio", "target", "met"), r, strict=True))
                        for r in rows]}
    output = args.output or RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str))
    log(f"done; results in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
