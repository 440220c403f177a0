"""The durable, lane-ordered job queue (rows in RelayStore's `jobs` table) and the SendDispatcher.

Order: within a lane only the oldest pending job is eligible, and only once due; a lane whose head
is backing off waits, a head that ends dead lets the lane move on. Claims live in memory only, so a
restarted process re-attempts whatever was in flight (at-least-once). Done jobs are deleted at once
(the table holds only pending work and dead letters); dead jobs stay until redelivered or their
webhook is deleted.

Claiming reads the `lanes` table (one row per lane with pending work: head job and due time) through
its (kind, due) index, in batches, so a backlog of many jobs costs no scan per job.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from smoochrelay.store import KIND_SEND, OutboxJob, RelayStore, WebhookJob

log = logging.getLogger(__name__)

LaneKey = tuple[str, str]
_JOB_COLUMNS = "id, kind, target, lane, payload, attempts, next_attempt_at, created_at, last_error, state"


def _job(row: tuple) -> OutboxJob:
    """A jobs row (in _JOB_COLUMNS order) as an OutboxJob."""
    return OutboxJob(*row[:4], json.loads(row[4]), *row[5:10])


@dataclass
class Outcome:
    """What became of an attempt: 'done', 'retry' (at `retry_at`) or 'dead'; `jobs` are enqueued with it.

    `record`, if set, runs inside the transaction that applies the outcome (its store writes commit with
    it, or not at all) and returns more jobs to enqueue; if it fails, its writes are rolled back, the
    failure is logged and the outcome is applied anyway."""

    state: str
    error: str | None = None
    retry_at: float | None = None
    jobs: list[WebhookJob] = field(default_factory=list)
    record: Callable[[], list[WebhookJob]] | None = None


class Outbox:
    """Queue operations on the store's job rows for one job kind."""

    def __init__(self, store: RelayStore, kind: str, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.kind = kind
        self.clock = clock

    def claim(self, count: int, busy_lanes: set[LaneKey], target_load: dict[str, int],
              per_target: int) -> tuple[list[OutboxJob], float | None]:
        """Up to `count` due lane heads not in `busy_lanes`, at most `per_target` in flight per target.

        Targets are served in order of their oldest due lane, so one target with many due lanes cannot
        crowd out others. Also returns when the next not-yet-due lane becomes due (None if unknown).
        """
        now = self.clock()
        load = dict(target_load)
        chosen: list[tuple[str, str, int]] = []
        next_due: float | None = None
        for _round in range(4):
            capped = sorted(t for t, n in load.items() if n >= per_target)
            want = count - len(chosen)
            if want <= 0:
                break
            window = want + len(busy_lanes) + len(chosen) + 1
            marks = ",".join("?" * len(capped))
            exclude = f" AND target NOT IN ({marks})" if capped else ""
            rows = self.store._read(
                f"SELECT target, lane, head_id, due FROM lanes WHERE kind = ?{exclude} "  # noqa: S608
                "ORDER BY due, head_id LIMIT ?",
                (self.kind, *capped, window),
            )
            taken = {(t, lane) for t, lane, _ in chosen}
            newly_capped = False
            for target, lane, head_id, due in rows:
                if due > now:
                    next_due = due if next_due is None else min(next_due, due)
                    break
                if (target, lane) in busy_lanes or (target, lane) in taken:
                    continue
                if load.get(target, 0) >= per_target:
                    newly_capped = True
                    continue
                chosen.append((target, lane, head_id))
                taken.add((target, lane))
                load[target] = load.get(target, 0) + 1
                if len(chosen) >= count:
                    break
            if len(rows) < window or next_due is not None or not newly_capped:
                break
        if not chosen:
            return [], next_due
        return self._load([head_id for _, _, head_id in chosen]), next_due

    def _load(self, ids: list[int]) -> list[OutboxJob]:
        """Read the given job rows (pending ones), in the given order."""
        marks = ",".join("?" * len(ids))
        rows = self.store._read(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id IN ({marks}) AND state = 'pending'",  # noqa: S608
            ids,
        )
        by_id = {row[0]: _job(row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def finish(self, job: OutboxJob, outcome: Outcome) -> None:
        """Apply an attempt's outcome and enqueue its follow-up webhook jobs, in one transaction."""
        jobs = list(outcome.jobs)
        with self.store.transaction() as conn:
            if outcome.record is not None:
                jobs += self._record(conn, job, outcome.record)
            if outcome.state == "done":
                conn.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
                self._refresh_lane(conn, job.target, job.lane)
            elif outcome.state == "retry":
                retry_at = outcome.retry_at if outcome.retry_at is not None else self.clock()
                cursor = conn.execute(
                    "UPDATE jobs SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                    "WHERE id = ? AND state = 'pending'",
                    (retry_at, outcome.error, job.id),
                )
                if cursor.rowcount:
                    conn.execute(
                        "UPDATE lanes SET due = ? WHERE kind = ? AND target = ? AND lane = ? AND head_id = ?",
                        (retry_at, self.kind, job.target, job.lane, job.id),
                    )
            else:
                conn.execute(
                    "UPDATE jobs SET state = 'dead', attempts = attempts + 1, last_error = ? WHERE id = ?",
                    (outcome.error, job.id),
                )
                self._refresh_lane(conn, job.target, job.lane)
            if jobs:
                self.store.insert_webhook_jobs(conn, jobs)
        if jobs:
            self.store._notify()

    @staticmethod
    def _record(conn: object, job: OutboxJob, record: Callable[[], list[WebhookJob]]) -> list[WebhookJob]:
        """Run an outcome's `record` in a savepoint of the current transaction; [] if it fails."""
        conn.execute("SAVEPOINT outcome_record")  # type: ignore[attr-defined]
        try:
            jobs = list(record() or [])
        except Exception:
            conn.execute("ROLLBACK TO outcome_record")  # type: ignore[attr-defined]
            conn.execute("RELEASE outcome_record")  # type: ignore[attr-defined]
            log.exception("recording the outcome of job %s failed; the outcome stands", job.id)
            return []
        conn.execute("RELEASE outcome_record")  # type: ignore[attr-defined]
        return jobs

    def _refresh_lane(self, conn: object, target: str, lane: str) -> None:
        """Point the lane at its oldest pending job, or drop it when none remain."""
        row = conn.execute(  # type: ignore[attr-defined]
            "SELECT id, next_attempt_at FROM jobs WHERE kind = ? AND target = ? AND lane = ? "
            "AND state = 'pending' ORDER BY id LIMIT 1",
            (self.kind, target, lane),
        ).fetchone()
        if row is None:
            conn.execute("DELETE FROM lanes WHERE kind = ? AND target = ? AND lane = ?",  # type: ignore[attr-defined]
                         (self.kind, target, lane))
        else:
            conn.execute(  # type: ignore[attr-defined]
                "INSERT OR REPLACE INTO lanes (kind, target, lane, head_id, due) VALUES (?, ?, ?, ?, ?)",
                (self.kind, target, lane, row[0], row[1]),
            )

    def dead(self, limit: int = 50) -> list[OutboxJob]:
        """The most recent dead jobs of this kind (dead letters), newest first."""
        rows = self.store._read(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE kind = ? AND state = 'dead' ORDER BY id DESC LIMIT ?",  # noqa: S608
            (self.kind, int(limit)),
        )
        return [_job(row) for row in rows]

    def revive(self) -> int:
        """Dead jobs back to pending with attempts reset, due now; returns how many."""
        now = self.clock()
        with self.store.transaction() as conn:
            lanes = conn.execute(
                "SELECT DISTINCT target, lane FROM jobs WHERE kind = ? AND state = 'dead'", (self.kind,)
            ).fetchall()
            cursor = conn.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = ?, last_error = NULL "
                "WHERE kind = ? AND state = 'dead'",
                (now, self.kind),
            )
            for target, lane in lanes:
                self._refresh_lane(conn, target, lane)
            count = cursor.rowcount
        if count:
            self.store._notify()
        return count


class LanePool:
    """A fixed pool of worker threads fed by one scheduler thread that claims due lane heads in batches.

    The scheduler sleeps until woken (new jobs, a finished attempt) or until the earliest retry is due.
    """

    def __init__(self, outbox: Outbox, handle: Callable[[OutboxJob], Outcome], *, workers: int,
                 per_target: int, name: str) -> None:
        self.outbox = outbox
        self._handle = handle
        self._workers = max(1, int(workers))
        self._per_target = max(1, int(per_target))
        self._name = name
        self._cond = threading.Condition()
        self._dirty = True
        self._stopping = False
        self._busy: set[LaneKey] = set()
        self._load: dict[str, int] = {}
        self._queue: queue.SimpleQueue[OutboxJob | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the scheduler and the workers (idempotent)."""
        if self._threads:
            return
        self._stopping = False
        self._dirty = True
        threads = [threading.Thread(target=self._schedule, name=f"{self._name}-scheduler", daemon=True)]
        threads += [threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True)
                    for i in range(self._workers)]
        self._threads = threads
        for thread in threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming, let running attempts finish (bounded by `timeout`) and join the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for _ in range(self._workers):
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def wake(self) -> None:
        """New or revived jobs were committed: look for work now."""
        with self._cond:
            self._dirty = True
            if len(self._busy) < self._workers:  # else the next worker to finish wakes the scheduler
                self._cond.notify_all()

    def _schedule(self) -> None:
        """Claim due lane heads for free workers; sleep until woken or the next retry is due."""
        next_due: float | None = None
        while True:
            with self._cond:
                while not self._stopping:
                    if next_due is not None and self.outbox.clock() >= next_due:
                        self._dirty = True
                        next_due = None
                    if self._dirty and len(self._busy) < self._workers:
                        break
                    timeout = None if next_due is None else max(0.001, next_due - self.outbox.clock())
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                self._dirty = False
                free = self._workers - len(self._busy)
                busy = set(self._busy)
                load = dict(self._load)
            try:
                jobs, next_due = self.outbox.claim(free, busy, load, self._per_target)
            except Exception:
                log.exception("%s: claiming jobs failed; retrying shortly", self._name)
                jobs, next_due = [], self.outbox.clock() + 1.0
            with self._cond:
                for job in jobs:
                    self._busy.add((job.target, job.lane))
                    self._load[job.target] = self._load.get(job.target, 0) + 1
            for job in jobs:
                self._queue.put(job)

    def _stop_event_wait(self, seconds: float) -> None:
        """Pause a worker after a storage failure (so a broken disk is not hammered), unless stopping."""
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)

    def _work(self) -> None:
        """Run claimed jobs; record the outcome; never let an exception end the thread."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                try:
                    outcome = self._handle(job)
                except Exception as exc:
                    log.exception("%s: job %s failed unexpectedly", self._name, job.id)
                    outcome = Outcome("retry", error=f"internal error: {type(exc).__name__}",
                                      retry_at=self.outbox.clock() + 5.0)
                self.outbox.finish(job, outcome)
            except Exception:
                log.exception("%s: could not record the outcome of job %s; it will be retried",
                              self._name, job.id)
                self._stop_event_wait(1.0)
            finally:
                with self._cond:
                    self._busy.discard((job.target, job.lane))
                    left = self._load.get(job.target, 1) - 1
                    if left > 0:
                        self._load[job.target] = left
                    else:
                        self._load.pop(job.target, None)
                    self._dirty = True
                    self._cond.notify_all()


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff: base, 2*base, 4*base... capped at `cap` (attempts = failures so far, from 1)."""
    return min(cap, base * (2 ** max(0, min(attempts - 1, 60))))


class SendDispatcher:
    """Sends queued appMaker messages to Telegram, strictly in order per app user (CONTRACTS §5).

    `send(job)` renders and sends; `on_sent` / `on_failed` return webhook jobs (delivery events) that are
    enqueued in the same transaction as the job's state change.
    """

    def __init__(self, store: RelayStore, send: Callable[[dict], list[int]],
                 on_sent: Callable[[dict, list[int]], list[WebhookJob]],
                 on_failed: Callable[[dict, Exception], list[WebhookJob]], *, workers: int = 8,
                 max_age: float = 86400, backoff: float = 1.0, max_backoff: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._send = send
        self._on_sent = on_sent
        self._on_failed = on_failed
        self._max_age = max_age
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self.outbox = Outbox(store, KIND_SEND, clock=clock)
        self._pool = LanePool(self.outbox, self._attempt, workers=workers, per_target=workers,
                              name="relay-send")
        store.add_jobs_listener(self.wake)

    def start(self) -> None:
        """Start the workers (jobs left pending by a previous run are picked up)."""
        self._pool.start()

    def stop(self) -> None:
        """Stop the workers; a send in progress finishes first (bounded wait)."""
        self._pool.stop()

    def wake(self) -> None:
        """New send jobs were enqueued."""
        self._pool.wake()

    def _attempt(self, job: OutboxJob) -> Outcome:
        """One send attempt → done, retry (backoff / retry_after) or failed (permanent or too old)."""
        data = {"id": job.id, **job.payload}
        try:
            ids = self._send(data)
        except Exception as exc:
            return self._failure(job, data, exc)
        # on_sent's writes (the Telegram ids) and its delivery events commit with the job's deletion:
        # one transaction per sent message. If it fails, the message was still sent: the job is done.
        return Outcome("done", record=lambda: self._on_sent(data, list(ids or [])))

    def _failure(self, job: OutboxJob, data: dict, exc: Exception) -> Outcome:
        """Decide between retrying and failing the job for good."""
        error = f"{type(exc).__name__}: {getattr(exc, 'code', '') or exc}"
        now = self._clock()
        if not getattr(exc, "permanent", False):
            delay = backoff_delay(job.attempts + 1, self._backoff, self._max_backoff)
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int | float) and retry_after > delay:
                delay = float(retry_after)
            if now + delay - job.created_at <= self._max_age:
                log.info("Send job %s failed (%s); retrying in %.1fs", job.id, error, delay)
                return Outcome("retry", error=error, retry_at=now + delay)
        log.warning("Send job %s failed for good: %s", job.id, error)
        try:
            jobs = list(self._on_failed(data, exc))
        except Exception:
            log.exception("on_failed failed for send job %s", job.id)
            jobs = []
        return Outcome("dead", error=error, jobs=jobs)
