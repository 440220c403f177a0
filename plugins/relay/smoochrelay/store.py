"""SQLite persistence for the relay: schema and migrations, every query, and the durable job rows.

The store knows nothing of Smooch semantics: it persists dicts as JSON and queues jobs in the same
transaction as the rows that caused them, so nothing accepted is lost across a crash.

Durability: WAL with ``synchronous=NORMAL`` (the default) keeps every committed transaction across a
process crash or kill -9; only an OS crash or power loss can drop the last transactions. Pass
``synchronous="FULL"`` (or set ``RELAY_SQLITE_SYNCHRONOUS=FULL``) to survive those too, at the cost of
an fsync per commit.

Threading: one connection guarded by a re-entrant lock. SQLite serialises writers anyway, and every
call here is short, so a lock costs less than per-thread connections competing for the write lock
(measured: see docs in the module's tests and the report).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

KIND_WEBHOOK = "webhook"
KIND_SEND = "send"
SEND_TARGET = ""


class StoreUnavailableError(Exception):
    """The database cannot be opened or written (directory missing, unwritable, disk full)."""


@dataclass
class WebhookJob:
    """One webhook delivery to enqueue; order is kept per (webhook, lane), lane = conversation id."""

    webhook_id: str
    lane: str
    trigger: str
    payload: dict


@dataclass
class ApiKey:
    """An API key pair; `secret` authenticates Basic and signs JWTs."""

    key_id: str
    name: str
    secret: str
    created_at: float
    revoked_at: float | None = None


@dataclass
class Webhook:
    """A registered webhook target with its shared secret."""

    id: str
    target: str
    triggers: list[str]
    secret: str
    include_full_app_user: bool = False
    include_client: bool = False
    created_at: float = 0.0


@dataclass
class OutboxJob:
    """A queued job as read back from the database (webhook delivery or Telegram send)."""

    id: int
    kind: str
    target: str
    lane: str
    payload: dict
    attempts: int
    next_attempt_at: float
    created_at: float
    last_error: str | None = None
    state: str = "pending"
    extra: dict[str, Any] = field(default_factory=dict)


def new_hex_id() -> str:
    """24 lowercase hex characters, like Smooch (Mongo) ids."""
    return secrets.token_hex(12)


_CORE_MIGRATIONS: list[str] = [
    """CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY, name TEXT NOT NULL, secret TEXT NOT NULL,
        created_at REAL NOT NULL, revoked_at REAL)""",
    """CREATE TABLE webhooks (
        id TEXT PRIMARY KEY, target TEXT NOT NULL, triggers TEXT NOT NULL, secret TEXT NOT NULL,
        include_full_app_user INTEGER NOT NULL DEFAULT 0, include_client INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL)""",
    """CREATE TABLE app_users (
        id TEXT PRIMARY KEY, telegram_user_id INTEGER NOT NULL UNIQUE, chat_id INTEGER NOT NULL,
        conversation_id TEXT NOT NULL UNIQUE, given_name TEXT, surname TEXT, username TEXT,
        language_code TEXT, signed_up_at REAL NOT NULL, conversation_started INTEGER NOT NULL DEFAULT 0,
        blocked INTEGER NOT NULL DEFAULT 0, properties TEXT NOT NULL DEFAULT '{}', quick_replies TEXT)""",
    """CREATE TABLE inbound_updates (update_id INTEGER PRIMARY KEY, recorded_at REAL NOT NULL)""",
    """CREATE TABLE messages (
        id TEXT PRIMARY KEY, app_user_id TEXT NOT NULL REFERENCES app_users(id) ON DELETE CASCADE,
        received REAL NOT NULL, data TEXT NOT NULL, telegram_message_ids TEXT)""",
    """CREATE INDEX messages_by_user ON messages (app_user_id, received)""",
    """CREATE TABLE telegram_messages (
        chat_id INTEGER NOT NULL, telegram_message_id INTEGER NOT NULL,
        message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        PRIMARY KEY (chat_id, telegram_message_id))""",
    """CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, target TEXT NOT NULL, lane TEXT NOT NULL,
        payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending', last_error TEXT, created_at REAL NOT NULL)""",
    """CREATE INDEX jobs_by_lane ON jobs (kind, target, lane, state, id)""",
    """CREATE INDEX jobs_by_state ON jobs (kind, state, id)""",
    # One row per lane that has pending work: its head job and when it is due. Claiming reads this
    # small table through (kind, due) instead of grouping the whole job table.
    """CREATE TABLE lanes (
        kind TEXT NOT NULL, target TEXT NOT NULL, lane TEXT NOT NULL, head_id INTEGER NOT NULL,
        due REAL NOT NULL, PRIMARY KEY (kind, target, lane))""",
    """CREATE INDEX lanes_by_due ON lanes (kind, due)""",
    """CREATE INDEX inbound_updates_by_time ON inbound_updates (recorded_at)""",
]

INBOUND_DEDUPE_SECONDS = 48 * 3600
"""How long a Telegram update id is remembered. Telegram keeps an unconfirmed update for at most 24 hours,
so a re-delivery never comes later. Remembering ids for ever would not only grow the database: after a
week without updates Telegram may restart update ids at random, and a new message whose id was seen long
ago would be dropped as a duplicate."""
_PRUNE_EVERY = 500  # inbound records between two prunes of expired update ids
_PRUNE_BATCH = 2 * _PRUNE_EVERY  # at most this many expired ids deleted per prune (keeps each one short)

_UNAVAILABLE_HINTS = ("disk is full", "readonly", "read-only", "unable to open", "disk i/o", "locked",
                      "no such file", "permission")


def _unavailable(path: str, exc: BaseException) -> StoreUnavailableError:
    """Turn an SQLite/OS failure into an actionable StoreUnavailableError."""
    text = str(exc)
    directory = os.path.dirname(os.path.abspath(path))
    if "full" in text.lower() or getattr(exc, "errno", None) == errno.ENOSPC:
        hint = f"the disk holding {directory} is full: free space (or move RELAY_DATA_DIR) and retry"
    elif "readonly" in text.lower() or "read-only" in text.lower() or "permission" in text.lower():
        hint = f"{directory} is not writable: give the relay's user write access to it (RELAY_DATA_DIR)"
    else:
        hint = f"check that RELAY_DATA_DIR ({directory}) exists, is writable and has free space"
    return StoreUnavailableError(f"The relay database {path} is unavailable ({text}); {hint}.")


def _is_unavailable(exc: sqlite3.Error) -> bool:
    """True for errors that mean the storage itself is unusable (not a programming error)."""
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError
    ):
        text = str(exc).lower()
        return any(hint in text for hint in _UNAVAILABLE_HINTS)
    return False


class RelayStore:
    """The relay's one SQLite database: settings, keys, webhooks, users, messages and the job queue."""

    def __init__(self, path: str, *, synchronous: str | None = None, busy_timeout_ms: int = 10000,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._inbound_until_prune = 0  # records until the next prune (0: prune on the first one)
        self._lock = threading.RLock()
        self._webhooks: dict[str, Webhook] | None = None
        self._key_secrets: dict[str, str] = {}  # active keys already looked up (cleared on any key change)
        self._listeners: list[Callable[[], None]] = []
        mode = (synchronous or os.environ.get("RELAY_SQLITE_SYNCHRONOUS") or "NORMAL").upper()
        if mode not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {mode!r}")
        self.synchronous = mode
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise StoreUnavailableError(
                f"The relay data directory {directory} does not exist: create it, or point RELAY_DATA_DIR "
                "at an existing writable directory."
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StoreUnavailableError(
                f"The relay data directory {directory} is not writable: give the relay's user write access "
                "to it, or point RELAY_DATA_DIR elsewhere."
            )
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode_row = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode_row is None or str(mode_row[0]).lower() != "wal":
                raise StoreUnavailableError(f"SQLite refused WAL mode for {path} (got {mode_row!r}).")
            self._conn.execute(f"PRAGMA synchronous = {mode}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise _unavailable(path, exc) from exc
        self.execute_schema("core", _CORE_MIGRATIONS)

    # -- plumbing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (checkpointing the WAL); later calls fail."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction (BEGIN IMMEDIATE); nested use joins the outer one.

        Other modules (payments) use it to keep their own tables consistent with the relay's rows.
        """
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._wrap(exc) from exc
            try:
                yield self._conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and _is_unavailable(exc):
                    raise _unavailable(self.path, exc) from exc
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise self._wrap(exc) from exc

    def _wrap(self, exc: sqlite3.Error) -> Exception:
        """StoreUnavailableError for storage failures, the original error otherwise."""
        return _unavailable(self.path, exc) if _is_unavailable(exc) else exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row | tuple]:
        """Run a read query under the lock and return all rows."""
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._wrap(exc) from exc

    def execute_schema(self, name: str, statements: Sequence[str]) -> int:
        """Apply the not-yet-applied steps of module `name`'s migration list, in order; returns the version.

        Step i is applied once, in its own transaction with the version bump, so re-running is a no-op
        and later releases only append steps.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT version FROM schema_version WHERE name = ?", (name,)).fetchone()
            current = row[0] if row else 0
        for index in range(current, len(statements)):
            with self.transaction() as conn:
                row = conn.execute("SELECT version FROM schema_version WHERE name = ?", (name,)).fetchone()
                if (row[0] if row else 0) > index:
                    continue
                conn.execute(statements[index])
                conn.execute(
                    "INSERT INTO schema_version (name, version) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                    (name, index + 1),
                )
        return max(current, len(statements))

    def schema_version(self, name: str = "core") -> int:
        """The number of applied migration steps of module `name`."""
        rows = self._read("SELECT version FROM schema_version WHERE name = ?", (name,))
        return rows[0][0] if rows else 0

    def add_jobs_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every commit that enqueued jobs (dispatchers use it to wake up)."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        """Wake the dispatchers after new jobs were committed."""
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("A job listener failed")

    # -- settings ---------------------------------------------------------------------------------

    def setting(self, key: str, create: Callable[[], str] | None = None) -> str | None:
        """The stored value of `key`; with `create`, make and store it the first time (race-free)."""
        rows = self._read("SELECT value FROM settings WHERE key = ?", (key,))
        if rows or create is None:
            return rows[0][0] if rows else None
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            if row:
                return row[0]
            value = create()
            conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (key, value))
            return value

    def set_setting(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing any previous value."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- API keys ---------------------------------------------------------------------------------

    def create_api_key(self, name: str) -> ApiKey:
        """A new active key: id "app_" + 24 hex, secret 32 random bytes (urlsafe base64)."""
        key = ApiKey("app_" + new_hex_id(), name, secrets.token_urlsafe(32), self._clock())
        with self.transaction() as conn:
            self._key_secrets = {}
            conn.execute(
                "INSERT INTO api_keys (key_id, name, secret, created_at) VALUES (?, ?, ?, ?)",
                (key.key_id, key.name, key.secret, key.created_at),
            )
        return key

    def ensure_api_key(self, key_id: str, secret: str, name: str) -> None:
        """Install a configured key (RELAY_API_KEY_ID/SECRET), updating its secret and re-activating it."""
        with self.transaction() as conn:
            self._key_secrets = {}
            conn.execute(
                "INSERT INTO api_keys (key_id, name, secret, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key_id) DO UPDATE SET secret = excluded.secret, name = excluded.name, "
                "revoked_at = NULL",
                (key_id, name, secret, self._clock()),
            )

    def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        rows = self._read(
            "SELECT key_id, name, secret, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id"
        )
        return [ApiKey(*row) for row in rows]

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke an active key; False if unknown or already revoked."""
        with self.transaction() as conn:
            self._key_secrets = {}
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (self._clock(), key_id),
            )
            return cursor.rowcount > 0

    def api_key_secret(self, key_id: str) -> str | None:
        """The secret of an active key, None for unknown or revoked keys.

        Every API request asks: known active keys are answered from memory, without the store's lock
        (the cache is dropped inside any transaction that changes a key; unknown ids are not cached)."""
        cached = self._key_secrets.get(key_id)
        if cached is not None:
            return cached
        with self._lock:
            rows = self._read("SELECT secret FROM api_keys WHERE key_id = ? AND revoked_at IS NULL", (key_id,))
            if not rows:
                return None
            secrets_now = self._key_secrets
            if len(secrets_now) < 1000:
                secrets_now[key_id] = rows[0][0]
            return rows[0][0]

    # -- webhooks ---------------------------------------------------------------------------------

    def _webhook_cache(self) -> dict[str, Webhook]:
        """All webhooks by id, loaded once and reloaded after any change (read without the lock when loaded)."""
        cached = self._webhooks
        if cached is not None:
            return cached
        with self._lock:
            if self._webhooks is None:
                rows = self._read(
                    "SELECT id, target, triggers, secret, include_full_app_user, include_client, created_at "
                    "FROM webhooks ORDER BY created_at, id"
                )
                self._webhooks = {
                    row[0]: Webhook(row[0], row[1], json.loads(row[2]), row[3], bool(row[4]), bool(row[5]),
                                    row[6])
                    for row in rows
                }
            return self._webhooks

    def create_webhook(self, target: str, triggers: list[str], include_full_app_user: bool = False,
                       include_client: bool = False) -> Webhook:
        """Register a webhook with a fresh 40-hex shared secret."""
        hook = Webhook(new_hex_id(), target, list(triggers), secrets.token_hex(20),
                       bool(include_full_app_user), bool(include_client), self._clock())
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO webhooks (id, target, triggers, secret, include_full_app_user, include_client, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (hook.id, hook.target, json.dumps(hook.triggers), hook.secret,
                 int(hook.include_full_app_user), int(hook.include_client), hook.created_at),
            )
            self._webhooks = None
        return hook

    def list_webhooks(self) -> list[Webhook]:
        """Every webhook, oldest first (served from memory)."""
        return list(self._webhook_cache().values())

    def get_webhook(self, webhook_id: str) -> Webhook | None:
        """One webhook by id (served from memory)."""
        return self._webhook_cache().get(webhook_id)

    _WEBHOOK_FIELDS = {
        "target": "target", "triggers": "triggers",
        "include_full_app_user": "include_full_app_user", "includeFullAppUser": "include_full_app_user",
        "include_client": "include_client", "includeClient": "include_client",
    }

    def update_webhook(self, webhook_id: str, **changes: Any) -> Webhook | None:
        """Change target/triggers/include flags (snake or Smooch camelCase names); None if unknown."""
        columns: dict[str, Any] = {}
        for key, value in changes.items():
            column = self._WEBHOOK_FIELDS.get(key)
            if column is None:
                raise ValueError(f"unknown webhook field {key!r}")
            if column == "triggers":
                value = json.dumps(list(value))
            elif column.startswith("include_"):
                value = int(bool(value))
            columns[column] = value
        with self.transaction() as conn:
            if columns:
                assignments = ", ".join(f"{column} = ?" for column in columns)
                cursor = conn.execute(
                    f"UPDATE webhooks SET {assignments} WHERE id = ?",  # noqa: S608 - columns are whitelisted
                    (*columns.values(), webhook_id),
                )
                if cursor.rowcount == 0:
                    return None
            self._webhooks = None
        return self.get_webhook(webhook_id)

    def delete_webhook(self, webhook_id: str) -> bool:
        """Delete a webhook and drop every job queued for it (pending and dead)."""
        with self.transaction() as conn:
            cursor = conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
            conn.execute("DELETE FROM jobs WHERE kind = ? AND target = ?", (KIND_WEBHOOK, webhook_id))
            conn.execute("DELETE FROM lanes WHERE kind = ? AND target = ?", (KIND_WEBHOOK, webhook_id))
            self._webhooks = None
            return cursor.rowcount > 0

    # -- app users --------------------------------------------------------------------------------

    _USER_COLUMNS = ("id, telegram_user_id, chat_id, conversation_id, given_name, surname, username, "
                     "language_code, signed_up_at, conversation_started, blocked, properties")

    @staticmethod
    def _user_dict(row: Sequence[Any]) -> dict:
        """An app_users row as the §4 app-user dict (plus conversation_id)."""
        return {
            "_id": row[0], "telegram_user_id": row[1], "chat_id": row[2], "conversation_id": row[3],
            "given_name": row[4], "surname": row[5], "username": row[6], "language_code": row[7],
            "signed_up_at": row[8], "conversation_started": bool(row[9]), "blocked": bool(row[10]),
            "properties": json.loads(row[11] or "{}"),
        }

    def upsert_telegram_user(self, user: dict, chat_id: int) -> dict:
        """The app user of a Telegram user, created on first sight (stable _id); names and chat kept fresh."""
        telegram_user_id = int(user["id"])
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO app_users (id, telegram_user_id, chat_id, conversation_id, given_name, surname, "
                "username, language_code, signed_up_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(telegram_user_id) DO UPDATE SET chat_id = excluded.chat_id, "
                "given_name = excluded.given_name, surname = excluded.surname, username = excluded.username, "
                "language_code = COALESCE(excluded.language_code, app_users.language_code)",
                (new_hex_id(), telegram_user_id, int(chat_id), new_hex_id(), user.get("first_name"),
                 user.get("last_name"), user.get("username"), user.get("language_code"), self._clock()),
            )
            row = conn.execute(
                f"SELECT {self._USER_COLUMNS} FROM app_users WHERE telegram_user_id = ?",  # noqa: S608
                (telegram_user_id,),
            ).fetchone()
        return self._user_dict(row)

    def get_app_user(self, app_user_id: str) -> dict | None:
        """An app user by _id, None if unknown."""
        rows = self._read(f"SELECT {self._USER_COLUMNS} FROM app_users WHERE id = ?", (app_user_id,))  # noqa: S608
        return self._user_dict(rows[0]) if rows else None

    def app_user_by_telegram_id(self, telegram_user_id: int) -> dict | None:
        """An app user by Telegram user id, None if never seen."""
        rows = self._read(
            f"SELECT {self._USER_COLUMNS} FROM app_users WHERE telegram_user_id = ?",  # noqa: S608
            (int(telegram_user_id),),
        )
        return self._user_dict(rows[0]) if rows else None

    def set_conversation_started(self, app_user_id: str) -> bool:
        """Mark the conversation started; True only the first time (for conversation:start)."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE app_users SET conversation_started = 1 WHERE id = ? AND conversation_started = 0",
                (app_user_id,),
            )
            return cursor.rowcount > 0

    def set_user_blocked(self, app_user_id: str, blocked: bool) -> None:
        """Remember whether the user blocked the bot."""
        with self.transaction() as conn:
            conn.execute("UPDATE app_users SET blocked = ? WHERE id = ?", (int(bool(blocked)), app_user_id))

    # -- messages and jobs ------------------------------------------------------------------------

    def _insert_jobs(self, conn: sqlite3.Connection, kind: str,
                     rows: Sequence[tuple[str, str, dict]]) -> list[int]:
        """Insert jobs (target, lane, payload) due now and register their lanes; returns the job ids."""
        now = self._clock()
        ids: list[int] = []
        for target, lane, payload in rows:
            cursor = conn.execute(
                "INSERT INTO jobs (kind, target, lane, payload, next_attempt_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (kind, target, lane, json.dumps(payload, separators=(",", ":")), now, now),
            )
            job_id = int(cursor.lastrowid or 0)
            conn.execute(
                "INSERT OR IGNORE INTO lanes (kind, target, lane, head_id, due) VALUES (?, ?, ?, ?, ?)",
                (kind, target, lane, job_id, now),
            )
            ids.append(job_id)
        return ids

    def insert_webhook_jobs(self, conn: sqlite3.Connection, jobs: Sequence[WebhookJob]) -> None:
        """Queue webhook jobs inside the caller's transaction (see `transaction()`)."""
        rows = [(job.webhook_id, job.lane, {"trigger": job.trigger, "payload": job.payload}) for job in jobs]
        self._insert_jobs(conn, KIND_WEBHOOK, rows)

    def _insert_message(self, conn: sqlite3.Connection, app_user_id: str, message: dict) -> None:
        """Insert one message row (its `_id` and `received` are taken from the dict)."""
        received = float(message.get("received") or self._clock())
        conn.execute(
            "INSERT INTO messages (id, app_user_id, received, data) VALUES (?, ?, ?, ?)",
            (message["_id"], app_user_id, received, json.dumps(message, separators=(",", ":"))),
        )

    def record_inbound(self, update_id: int, app_user_id: str, message: dict | None,
                       jobs: list[WebhookJob]) -> bool:
        """Record a Telegram update once: its message (if any) and its webhook jobs, atomically.

        Returns False and writes nothing when `update_id` was already recorded (Telegram re-delivery) within
        INBOUND_DEDUPE_SECONDS.
        """
        now = self._clock()
        with self.transaction() as conn:
            cursor = conn.execute(  # an id last seen before the window counts as new (expired, not yet pruned)
                "INSERT INTO inbound_updates (update_id, recorded_at) VALUES (?, ?) ON CONFLICT (update_id) "
                "DO UPDATE SET recorded_at = excluded.recorded_at WHERE inbound_updates.recorded_at < ?",
                (int(update_id), now, now - INBOUND_DEDUPE_SECONDS),
            )
            if cursor.rowcount == 0:
                return False
            if message is not None:
                self._insert_message(conn, app_user_id, message)
            self.insert_webhook_jobs(conn, jobs)
            self._prune_inbound_updates(conn)
        if jobs:
            self._notify()
        return True

    def _prune_inbound_updates(self, conn: sqlite3.Connection) -> None:
        """Every _PRUNE_EVERY records, forget up to _PRUNE_BATCH update ids older than INBOUND_DEDUPE_SECONDS."""
        self._inbound_until_prune -= 1
        if self._inbound_until_prune > 0:
            return
        self._inbound_until_prune = _PRUNE_EVERY
        conn.execute(
            "DELETE FROM inbound_updates WHERE update_id IN (SELECT update_id FROM inbound_updates "
            "WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?)",
            (self._clock() - INBOUND_DEDUPE_SECONDS, _PRUNE_BATCH),  # space only: expiry is checked on insert
        )

    def record_outbound(self, app_user_id: str, message: dict, jobs: list[WebhookJob]) -> None:
        """Record an appMaker message, its Telegram send job and its webhook jobs, atomically."""
        with self.transaction() as conn:
            row = conn.execute("SELECT chat_id FROM app_users WHERE id = ?", (app_user_id,)).fetchone()
            if row is None:
                raise KeyError(f"unknown app user {app_user_id}")
            self._insert_message(conn, app_user_id, message)
            self._insert_jobs(conn, KIND_SEND, [
                (SEND_TARGET, app_user_id,
                 {"app_user_id": app_user_id, "chat_id": row[0], "message": message}),
            ])
            self.insert_webhook_jobs(conn, jobs)
        self._notify()

    def enqueue(self, jobs: list[WebhookJob]) -> None:
        """Queue webhook jobs on their own (events without a stored message)."""
        if not jobs:
            return
        with self.transaction() as conn:
            self.insert_webhook_jobs(conn, jobs)
        self._notify()

    def get_message(self, message_id: str) -> dict | None:
        """A stored message dict by _id."""
        rows = self._read("SELECT data FROM messages WHERE id = ?", (message_id,))
        return json.loads(rows[0][0]) if rows else None

    def update_message(self, message_id: str, message: dict) -> bool:
        """Replace a stored message's dict (e.g. a buy action's state); False if unknown."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE messages SET data = ? WHERE id = ?",
                (json.dumps(message, separators=(",", ":")), message_id),
            )
            return cursor.rowcount > 0

    def list_messages(self, app_user_id: str, *, before: float | None = None, after: float | None = None,
                      limit: int = 100) -> tuple[list[dict], bool]:
        """A page of a user's messages ascending by `received`, and whether more exist past the page.

        Smooch paging: `after` gives the oldest `limit` messages newer than it (has_more: newer ones
        remain); otherwise the newest `limit` messages older than `before` (or now) (has_more: older remain).
        """
        limit = max(1, int(limit))
        if after is not None:
            sql = "SELECT data FROM messages WHERE app_user_id = ? AND received > ?"
            params: list[Any] = [app_user_id, float(after)]
            if before is not None:
                sql += " AND received < ?"
                params.append(float(before))
            rows = self._read(sql + " ORDER BY received ASC, rowid ASC LIMIT ?", (*params, limit + 1))
            page = rows[:limit]
        else:
            sql = "SELECT data FROM messages WHERE app_user_id = ?"
            params = [app_user_id]
            if before is not None:
                sql += " AND received < ?"
                params.append(float(before))
            rows = self._read(sql + " ORDER BY received DESC, rowid DESC LIMIT ?", (*params, limit + 1))
            page = list(reversed(rows[:limit]))
        return [json.loads(row[0]) for row in page], len(rows) > limit

    def set_quick_replies(self, app_user_id: str, actions: list[dict] | None) -> None:
        """Remember the quick replies last offered to a user (None clears them)."""
        value = None if actions is None else json.dumps(actions)
        with self.transaction() as conn:
            conn.execute("UPDATE app_users SET quick_replies = ? WHERE id = ?", (value, app_user_id))

    def get_quick_replies(self, app_user_id: str) -> list[dict] | None:
        """The quick replies currently offered to a user, None when none are."""
        rows = self._read("SELECT quick_replies FROM app_users WHERE id = ?", (app_user_id,))
        return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None

    def set_telegram_message_ids(self, message_id: str, ids: list[int]) -> None:
        """Remember which Telegram messages carried a stored message (for replies and button presses)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT u.chat_id FROM messages m JOIN app_users u ON u.id = m.app_user_id WHERE m.id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                return
            conn.execute("UPDATE messages SET telegram_message_ids = ? WHERE id = ?",
                         (json.dumps(list(ids)), message_id))
            conn.executemany(
                "INSERT OR REPLACE INTO telegram_messages (chat_id, telegram_message_id, message_id) "
                "VALUES (?, ?, ?)",
                [(row[0], int(tg_id), message_id) for tg_id in ids],
            )

    def get_telegram_message_ids(self, message_id: str) -> list[int]:
        """The Telegram message ids recorded for a stored message ([] when not sent yet)."""
        rows = self._read("SELECT telegram_message_ids FROM messages WHERE id = ?", (message_id,))
        return json.loads(rows[0][0]) if rows and rows[0][0] else []

    def message_id_for_telegram(self, chat_id: int, telegram_message_id: int) -> str | None:
        """The stored message a Telegram message (in a chat) carried, if any."""
        rows = self._read(
            "SELECT message_id FROM telegram_messages WHERE chat_id = ? AND telegram_message_id = ?",
            (int(chat_id), int(telegram_message_id)),
        )
        return rows[0][0] if rows else None

    def stats(self) -> dict:
        """Queue health: webhook_pending, webhook_dead, send_pending, send_failed (+ users, messages)."""
        counts = {(kind, state): n for kind, state, n in
                  self._read("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state")}
        return {
            "webhook_pending": counts.get((KIND_WEBHOOK, "pending"), 0),
            "webhook_dead": counts.get((KIND_WEBHOOK, "dead"), 0),
            "send_pending": counts.get((KIND_SEND, "pending"), 0),
            "send_failed": counts.get((KIND_SEND, "dead"), 0),
            "app_users": self._read("SELECT COUNT(*) FROM app_users")[0][0],
            "messages": self._read("SELECT COUNT(*) FROM messages")[0][0],
        }
