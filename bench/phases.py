"""The measured phases: inbound (sandbox → receiver), outbound (API → sandbox), and their figures."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from bench.procs import APP_ID, KEY_ID, KEY_SECRET, TOKEN, Http, ReceiverProcess

PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
CHUNK = 1000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_figures(prefix: str, seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {f"{prefix}_p50_ms": percentile(ms, 0.50), f"{prefix}_p99_ms": percentile(ms, 0.99),
            f"{prefix}_max_ms": max(ms) if ms else float("nan")}


@dataclass
class Plan:
    """Which users write what: message `seq` goes from user `user_of(seq)`; every `photo_every`-th is a photo."""

    users: int = 1000
    first_user: int = 500_000
    photo_every: int = 5  # 20 % photos

    def user_of(self, seq: int) -> int:
        return self.first_user + seq % self.users

    def is_photo(self, seq: int) -> bool:
        return self.photo_every > 0 and seq % self.photo_every == self.photo_every - 1


def push_one(sandbox, plan: Plan, seq: int) -> int:
    """Inject message `seq`; returns its update_id."""
    user = plan.user_of(seq)
    if plan.is_photo(seq):
        return sandbox.push_photo(user, data=PHOTO, caption=f"a photo bench#{seq}")["update_id"]
    return sandbox.push_many([(user, f"hello, this is message bench#{seq}")])[0]["update_id"]


def push_all(sandbox, plan: Plan, count: int) -> dict[int, int]:
    """Inject `count` messages as fast as the sandbox takes them (texts in batches); seq → update_id."""
    update_of: dict[int, int] = {}
    for start in range(0, count, CHUNK):
        seqs = range(start, min(count, start + CHUNK))
        texts = [s for s in seqs if not plan.is_photo(s)]
        for seq, update in zip(texts, sandbox.push_many(
                [(plan.user_of(s), f"hello, this is message bench#{s}") for s in texts]), strict=True):
            update_of[seq] = update["update_id"]
        for seq in seqs:
            if plan.is_photo(seq):
                update_of[seq] = push_one(sandbox, plan, seq)
    return update_of


def wait_for_count(receiver: ReceiverProcess, count: int, stall: float = 60.0) -> None:
    """Until the receiver has `count` requests; fails if nothing arrives for `stall` seconds."""
    seen, last_change = -1, time.monotonic()
    while True:
        now_count = receiver.count()
        if now_count >= count:
            return
        if now_count != seen:
            seen, last_change = now_count, time.monotonic()
        elif time.monotonic() - last_change > stall:
            raise TimeoutError(f"the receiver got {now_count} of {count} webhooks and nothing more for {stall:g}s")
        time.sleep(0.05)


def inbound(sandbox, receiver: ReceiverProcess, plan: Plan, count: int | None = None,
            rate: float | None = None, seconds: float = 0.0, cpu=None) -> dict:
    """Full speed (`count` injected at once) or fixed `rate` for `seconds`; throughput and added latency."""
    receiver.reset()
    cpu_before = cpu() if cpu else 0.0
    if rate is None:
        total = int(count or 0)
        update_of = push_all(sandbox, plan, total)
    else:
        total = int(rate * seconds)
        update_of = {}
        start = time.monotonic()
        for seq in range(total):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            update_of[seq] = push_one(sandbox, plan, seq)
    wait_for_count(receiver, total)
    cpu_used = cpu() - cpu_before if cpu else float("nan")
    time.sleep(0.3)  # let stragglers (duplicates) show
    arrivals = receiver.dump()
    available = sandbox.update_available_at
    latencies, first_seen, users = [], {}, {}
    for marker, t, app_user in arrivals:
        if marker in update_of and marker not in first_seen:
            first_seen[marker] = t
            latencies.append(t - available[update_of[marker]])
            if app_user:
                users[plan.user_of(marker)] = app_user
    begin = min(available[u] for u in update_of.values())
    end = max(first_seen.values())
    figures = {"messages": total, "received": len(first_seen), "lost": total - len(first_seen),
               "duplicates": len(arrivals) - len(first_seen), "seconds": end - begin,
               "throughput_per_s": len(first_seen) / (end - begin) if end > begin else float("nan")}
    figures.update(latency_figures("latency", latencies))
    figures["cpu_ms_per_message"] = cpu_used * 1000 / max(1, total)
    figures["cpu_cores"] = cpu_used / (end - begin) if end > begin else float("nan")
    figures["_app_users"] = users
    return figures


class SendCounter:
    """Successful sendMessage calls the sandbox answered (read incrementally from its request log)."""

    def __init__(self, sandbox) -> None:
        self._entries = sandbox._recorder._entries
        self._index = 0
        self.count = 0
        self.last_t = 0.0
        self.poll()
        self.count = 0

    def poll(self) -> int:
        entries = self._entries
        end = len(entries)
        for entry in entries[self._index:end]:
            if entry["method"] == "sendMessage" and entry["status"] == 200:
                self.count += 1
                self.last_t = entry["t"]
        self._index = end
        return self.count


def reply_body(seq: int) -> dict:
    return {"role": "appMaker", "type": "text", "text": f"Thanks! Reply **bench#{seq}**. Pick one:",
            "actions": [{"type": "postback", "text": "Yes", "payload": f"YES_{seq}"},
                        {"type": "postback", "text": "No", "payload": f"NO_{seq}"},
                        {"type": "link", "text": "Our site", "uri": "https://example.com/help"}]}


def _run_clients(make_client, do, count: int, clients: int, rate: float | None) -> tuple[list[float], int]:
    """Issue `count` calls of do(client, seq) from `clients` threads, at full speed or a fixed rate.

    Returns the latencies (s) of accepted calls and the number of refused ones."""
    latencies: list[float] = []
    refused = [0]
    lock = threading.Lock()
    work: queue.SimpleQueue = queue.SimpleQueue()

    def worker() -> None:
        client = make_client()
        mine, bad = [], 0
        try:
            while (seq := work.get()) is not None:
                began = time.perf_counter()
                ok = do(client, seq)
                if ok:
                    mine.append(time.perf_counter() - began)
                else:
                    bad += 1
        finally:
            client.close()
            with lock:
                latencies.extend(mine)
                refused[0] += bad

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start = time.monotonic()
    for seq in range(count):
        if rate is not None:
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        work.put(seq)
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    return latencies, refused[0]


def outbound(sandbox, relay_url: str, app_users: list[str], count: int | None = None, clients: int = 8,
             rate: float | None = None, seconds: float = 0.0, cpu=None) -> dict:
    """API posts of replies with buttons: accept latency, and delivery throughput to the sandbox."""
    total = int(count or 0) if rate is None else int(rate * seconds)
    sends = SendCounter(sandbox)

    def post(client: Http, seq: int) -> bool:
        user = app_users[seq % len(app_users)]
        status, _ = client.request("POST", f"/v1.1/apps/{APP_ID}/appusers/{user}/messages", reply_body(seq))
        return status == 201

    cpu_before = cpu() if cpu else 0.0
    began = time.monotonic()
    latencies, refused = _run_clients(lambda: Http(relay_url, auth=(KEY_ID, KEY_SECRET)), post, total,
                                      clients, rate)
    posted = time.monotonic()
    deadline_stall, seen, last_change = 60.0, -1, time.monotonic()
    while sends.poll() < total - refused:
        if sends.count != seen:
            seen, last_change = sends.count, time.monotonic()
        elif time.monotonic() - last_change > deadline_stall:
            raise TimeoutError(f"the sandbox got {sends.count} of {total} sends and nothing more for 60s")
        time.sleep(0.05)
    cpu_used = cpu() - cpu_before if cpu else float("nan")
    figures = {"requests": total, "refused": refused, "clients": clients,
               "cpu_ms_per_message": cpu_used * 1000 / max(1, total),
               "accept_per_s": total / (posted - began),
               "delivered": sends.count, "delivery_seconds": sends.last_t - began,
               "delivery_per_s": sends.count / (sends.last_t - began)}
    figures.update(latency_figures("accept", latencies))
    return figures


def direct_sends(sandbox, chat_ids: list[int], count: int, clients: int = 8) -> dict:
    """Reference for delivery: the same sendMessage calls straight to the sandbox from `clients` threads."""
    sends = SendCounter(sandbox)
    keyboard = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}, {"text": "No", "callback_data": "n"}],
                                    [{"text": "Our site", "url": "https://example.com/help"}]]}

    def send(client: Http, seq: int) -> bool:
        body = {"chat_id": chat_ids[seq % len(chat_ids)], "text": f"Thanks! Reply <b>bench#{seq}</b>. Pick one:",
                "parse_mode": "HTML", "reply_markup": keyboard}
        return client.request("POST", f"/bot{TOKEN}/sendMessage", body)[0] == 200

    began = time.monotonic()
    latencies, refused = _run_clients(lambda: Http(sandbox.url), send, count, clients, None)
    sends.poll()
    return {"requests": count, "refused": refused, "delivery_per_s": sends.count / (sends.last_t - began),
            **latency_figures("call", latencies)}
