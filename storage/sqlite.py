"""Errbot storage plugin "SQLite": every namespace in one SQLite file, safe for threads and crashes.

Errbot's default Shelf storage falls back to dbm.dumb here, which corrupts values under concurrent writes and
loses grown values after a kill. This plugin keeps one table keyed by (namespace, key) in a WAL-mode database:
each set/remove is its own committed transaction, one connection per file is shared by all namespaces and
serialised by a lock, and values are pickled as Shelf does so any picklable Python object can be stored.

STORAGE_CONFIG (all optional):
    path          the database file; relative paths are relative to BOT_DATA_DIR (default errbot.sqlite3)
    synchronous   "FULL" (default: a committed write survives power loss), "NORMAL" (survives a process
                  kill, about 10x faster) or "EXTRA"
    busy_timeout  seconds to wait for another process holding the write lock (default 10)
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from errbot.storage import StoreException, StoreNotOpenError
from errbot.storage.base import StorageBase, StoragePluginBase

log = logging.getLogger("errbot.storage.sqlite")

DEFAULT_FILENAME = "errbot.sqlite3"
SCHEMA_VERSION = 1
_SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")
_CONFIG_KEYS = frozenset({"path", "synchronous", "busy_timeout"})


class SQLiteStorageError(StoreException):
    """The database cannot be opened or configured; the message says which file and what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # Logged as well as raised: `errbot --storage-*` hides exceptions raised while opening a storage.
        log.error("%s", message)


class _Database:
    """One connection to one file, shared by every namespace opened on it and closed with the last of them."""

    def __init__(self, path: str, synchronous: str, busy_timeout: float) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._users = 0

    def acquire(self) -> None:
        """Count one more open namespace, connecting first if none was open."""
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            self._users += 1

    def release(self) -> None:
        """Count one namespace closed; the connection closes when no namespace uses it any more."""
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._conn is not None:
                self._conn.close()
                self._conn = None
                log.debug("Closed SQLite storage %s", self.path)

    def write(self, sql: str, params: tuple = ()) -> int:
        """Run one statement as its own committed transaction under the lock; returns the rows changed."""
        with self._lock:
            return self._connection().execute(sql, params).rowcount

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read and fetch every row under the lock, so no cursor outlives it."""
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreNotOpenError(f"SQLite storage {self.path} is closed")
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, exist_ok=True)
            if not os.path.exists(self.path):
                # Plugin configs (secrets) live here: owner-only; SQLite gives -wal/-shm the same mode.
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL could not be enabled")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS errbot_storage ("
                    " namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
                    " PRIMARY KEY (namespace, key)) WITHOUT ROWID"
                )
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise sqlite3.DatabaseError(
                        f"schema version {version} is newer than this plugin's {SCHEMA_VERSION}"
                    )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from None
        log.debug("Opened SQLite storage %s (WAL, synchronous=%s)", self.path, self._synchronous)
        return conn

    def _error(self, exc: BaseException) -> SQLiteStorageError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if os.path.isdir(self.path):
            reason = "the path is a directory"
        return SQLiteStorageError(
            f"Cannot open the Errbot storage database {self.path}: {reason}. Check that "
            f"{os.path.dirname(self.path)} is a writable directory for this user (BOT_DATA_DIR, or "
            f"STORAGE_CONFIG['path'])."
        )


class SQLiteStorage(StorageBase):
    """One Errbot namespace (core, a plugin's name, the backend's) inside the shared database."""

    def __init__(self, database: _Database, namespace: str) -> None:
        self._db: _Database | None = database
        self.namespace = namespace

    def _database(self) -> _Database:
        if self._db is None:
            raise StoreNotOpenError(f"Storage namespace {self.namespace!r} is closed")
        return self._db

    def get(self, key: str) -> Any:
        """Return the unpickled value for key; KeyError if it is not set."""
        rows = self._database().query(
            "SELECT value FROM errbot_storage WHERE namespace = ? AND key = ?", (self.namespace, _key(key))
        )
        if not rows:
            raise KeyError(f"{key} doesn't exist.")
        return pickle.loads(rows[0][0])  # noqa: S301 - our own file, written by set() below

    def set(self, key: str, value: Any) -> None:
        """Pickle and store value in one committed transaction; on return it survives a process kill."""
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self._database().write(
            "INSERT INTO errbot_storage (namespace, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            (self.namespace, _key(key), blob),
        )

    def remove(self, key: str) -> None:
        """Delete key in one transaction; KeyError if it was not set."""
        changed = self._database().write(
            "DELETE FROM errbot_storage WHERE namespace = ? AND key = ?", (self.namespace, _key(key))
        )
        if changed == 0:
            raise KeyError(f"{key} doesn't exist.")

    def len(self) -> int:
        """Number of keys in this namespace."""
        rows = self._database().query(
            "SELECT COUNT(*) FROM errbot_storage WHERE namespace = ?", (self.namespace,)
        )
        return int(rows[0][0])

    def keys(self) -> Iterable[str]:
        """A snapshot list of this namespace's keys, so callers may delete while iterating."""
        rows = self._database().query(
            "SELECT key FROM errbot_storage WHERE namespace = ? ORDER BY key", (self.namespace,)
        )
        return [row[0] for row in rows]

    def close(self) -> None:
        """Close this namespace only; other namespaces on the same file stay usable."""
        if self._db is not None:
            database, self._db = self._db, None
            database.release()


class SQLiteStoragePlugin(StoragePluginBase):
    """Factory of SQLite namespaces; validates STORAGE_CONFIG and opens the database eagerly to fail early."""

    def __init__(self, bot_config: object) -> None:
        super().__init__(bot_config)
        config = dict(self._storage_config or {})
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise SQLiteStorageError(
                f"Unknown STORAGE_CONFIG keys for SQLite storage: {sorted(unknown)}; "
                f"allowed: {sorted(_CONFIG_KEYS)}"
            )
        synchronous = str(config.get("synchronous", "FULL")).upper()
        if synchronous not in _SYNCHRONOUS_MODES:
            raise SQLiteStorageError(
                f"STORAGE_CONFIG['synchronous'] must be one of {_SYNCHRONOUS_MODES}, got {synchronous!r}"
            )
        try:
            busy_timeout = float(config.get("busy_timeout", 10.0))
        except (TypeError, ValueError):
            raise SQLiteStorageError(
                f"STORAGE_CONFIG['busy_timeout'] must be a number of seconds, got {config['busy_timeout']!r}"
            ) from None
        data_dir = getattr(bot_config, "BOT_DATA_DIR", None)
        path = config.get("path") or DEFAULT_FILENAME
        path = os.path.expanduser(os.fspath(path))
        if not os.path.isabs(path):
            if not data_dir:
                raise SQLiteStorageError(
                    "SQLite storage needs BOT_DATA_DIR or an absolute STORAGE_CONFIG['path']"
                )
            path = os.path.join(data_dir, path)
        self._database = _Database(os.path.abspath(path), synchronous, busy_timeout)
        self._database.acquire()
        self._database.release()

    @property
    def path(self) -> str:
        """Absolute path of the database file."""
        return self._database.path

    def open(self, namespace: str) -> StorageBase:
        """Open namespace on the shared connection (connecting if no namespace is open)."""
        self._database.acquire()
        return SQLiteStorage(self._database, namespace)


def _key(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"storage keys must be str, not {type(key).__name__}")
    return key
