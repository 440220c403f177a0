"""Errbot configuration of the Telegram relay; every setting comes from the environment.

Use it unchanged: `errbot -c config_template.py`, or copy it to config.py. Paths are absolute, resolved
against this file's directory, so it works from any working directory. Empty variables count as unset.
"""

import logging
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def _env(name: str, default: str | None = None) -> str | None:
    """The stripped value of an environment variable, or default when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    return value if value else default


def _number(name: str, default: float, kind: type, minimum: float, maximum: float | None) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise ValueError(f"{name} must be {expected}, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValueError(f"{name} must be {bounds}, got {raw!r}")
    return value


def _int(name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    """An integer setting with a range check, so a typo stops the bot with a message naming the variable."""
    return int(_number(name, default, int, minimum, maximum))


def _float(name: str, default: float, minimum: float) -> float:
    """A number setting with a lower bound, checked like _int."""
    return float(_number(name, default, float, minimum, None))


def _path(value: str) -> str:
    """An absolute path; a relative one is relative to this file's directory, not the working directory."""
    return os.path.abspath(os.path.join(_HERE, os.path.expanduser(value)))


# --- Backend, plugins and storage: this repository's parts, found wherever it is checked out. ---
BACKEND = "TGRelay"
BOT_EXTRA_BACKEND_DIR = os.path.join(_HERE, "backends")
BOT_EXTRA_PLUGIN_DIR = os.path.join(_HERE, "plugins")
BOT_EXTRA_STORAGE_PLUGINS_DIR = os.path.join(_HERE, "storage")
STORAGE = "SQLite"  # storage/sqlite.py: WAL, one transaction per write (Shelf corrupts under threads)

# --- Data and logs. The data dir (created if missing) holds errbot.sqlite3 and the relay's relay.sqlite3. ---
BOT_DATA_DIR = _path(_env("RELAY_DATA_DIR", "data"))
try:
    os.makedirs(BOT_DATA_DIR, exist_ok=True)
except OSError as _exc:
    raise ValueError(
        f"RELAY_DATA_DIR: cannot create the data directory {BOT_DATA_DIR}: {_exc.strerror or _exc}"
    ) from None
if not os.access(BOT_DATA_DIR, os.W_OK | os.X_OK):
    raise ValueError(f"RELAY_DATA_DIR: the data directory {BOT_DATA_DIR} is not writable by this user")

_log_file = os.environ.get("RELAY_LOG_FILE")
if _log_file is None:
    BOT_LOG_FILE = os.path.join(BOT_DATA_DIR, "errbot.log")
elif _log_file.strip():
    BOT_LOG_FILE = _path(_log_file.strip())
else:
    BOT_LOG_FILE = None  # RELAY_LOG_FILE="" logs to the console only (containers, systemd)

_level = (_env("RELAY_LOG_LEVEL", "INFO") or "INFO").upper()
BOT_LOG_LEVEL = int(_level) if _level.isdigit() else logging.getLevelName(_level)
if not isinstance(BOT_LOG_LEVEL, int):
    raise ValueError(f"RELAY_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {_level!r}")

# --- Telegram, read by the TGRelay backend. Without a token the bot starts and waits for one. ---
BOT_IDENTITY = {
    "token": _env("TELEGRAM_TOKEN"),
    "api_url": (_env("TELEGRAM_API_URL", "https://api.telegram.org") or "").rstrip("/"),
    "poll_timeout": _int("TELEGRAM_POLL_TIMEOUT", 30, 0, 600),
    "pacing": (_env("TELEGRAM_PACING", "on") or "").lower() != "off",  # "off" only for benchmarks
}

# --- Admins: Telegram user ids (numeric strings, matched against the sender's id). ---
_admin_ids = tuple(part.strip() for part in (_env("RELAY_ADMINS", "") or "").split(",") if part.strip())
for _admin in _admin_ids:
    if not _admin.isdigit():
        raise ValueError(f"RELAY_ADMINS must be comma-separated numeric Telegram user ids, got {_admin!r}")
# Errbot refuses an empty BOT_ADMINS. With no admin configured, use a name that can never equal a numeric
# Telegram user id (and has no glob characters), so nobody is admin and every command stays locked.
BOT_ADMINS = _admin_ids or ("no-admin-configured",)
BOT_ADMINS_NOTIFICATIONS = _admin_ids  # warnings go to these chats; must be ids the backend can parse

# --- HTTP: the backend serves Errbot's web app (every plugin's routes) with waitress once plugins are active.
# Plain HTTP only: put a TLS-terminating proxy in front of it for anything beyond localhost. ---
_http_host = _env("RELAY_HTTP_HOST", "127.0.0.1") or "127.0.0.1"
_http_port = _int("RELAY_HTTP_PORT", 3141, 1, 65535)
RELAY_MAX_BODY_BYTES = _int("RELAY_MAX_BODY_BYTES", 1024 * 1024, 1024)
# Bodies up to the relay's limit are read; up to twice it the relay answers its own JSON 413; beyond that the
# server refuses from the headers alone, before reading (or buffering) any of the body.
WEBSERVER_CONFIG = {"HOST": _http_host, "PORT": _http_port, "SSL": None,
                    "MAX_BODY_BYTES": 2 * RELAY_MAX_BODY_BYTES}
_url_host = f"[{_http_host}]" if ":" in _http_host else _http_host
RELAY_PUBLIC_URL = (_env("RELAY_PUBLIC_URL") or f"http://{_url_host}:{_http_port}").rstrip("/")

# Keep the bot's threads on one CPU ("auto": the least busy one at start; "off"; or a CPU number). The process
# is GIL-bound, and GIL handoffs between cores cost it ~35 % of its CPU under load (README, Performance).
CPU_AFFINITY = _env("RELAY_CPU_AFFINITY", "auto") or "auto"

# --- Relay (plugins/relay reads them as self.bot_config.RELAY_*); unset ids and keys are None. ---
RELAY_APP_ID = _env("RELAY_APP_ID")
RELAY_API_KEY_ID = _env("RELAY_API_KEY_ID")
RELAY_API_KEY_SECRET = _env("RELAY_API_KEY_SECRET")
RELAY_FILE_LINK_TTL = _int("RELAY_FILE_LINK_TTL", 7 * 24 * 3600, 1)
RELAY_BIG_FILE_NOTICE = _env("RELAY_BIG_FILE_NOTICE")  # unset: the relay's built-in notice (README)
RELAY_WEBHOOK_TIMEOUT = _float("RELAY_WEBHOOK_TIMEOUT", 20.0, 0.1)
RELAY_WEBHOOK_ATTEMPTS = _int("RELAY_WEBHOOK_ATTEMPTS", 5, 1)

# --- Payments (Stripe Checkout); disabled while STRIPE_API_KEY is unset. ---
STRIPE_API_KEY = _env("STRIPE_API_KEY")
STRIPE_WEBHOOK_SECRET = _env("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = (_env("STRIPE_API_BASE", "https://api.stripe.com") or "").rstrip("/")
RELAY_DEFAULT_CURRENCY = (_env("RELAY_DEFAULT_CURRENCY", "usd") or "usd").lower()
RELAY_PAYMENT_CONFIRMATION = _env("RELAY_PAYMENT_CONFIRMATION")  # unset: the built-in thank-you with the amount
RELAY_CHECKOUT_TTL = _int("RELAY_CHECKOUT_TTL", 24 * 3600, 60)

# --- Lockdown: customers talk to this bot, so commands are admin-only, hidden and silent when refused. ---
# Not loaded: VersionChecker (calls errbot.io), ChatRoom (no rooms), Flows, Backup, TextCmds (text mode only),
# Webserver (werkzeug's development server; the backend serves WEBSERVER_CONFIG itself).
CORE_PLUGINS = ("ACLs", "Help", "Health", "Plugins", "Utils", "CommandNotFoundFilter")
ACCESS_CONTROLS_DEFAULT = {"allowusers": BOT_ADMINS, "allowmuc": False}
HIDE_RESTRICTED_ACCESS = True
HIDE_RESTRICTED_COMMANDS = True
SUPPRESS_CMD_NOT_FOUND = True
AUTOINSTALL_DEPS = False  # never pip-install at run time

# --- Commands: only "!"-prefixed admin messages are commands; everything else is relayed. ---
BOT_PREFIX = "!"
BOT_PREFIX_OPTIONAL_ON_CHAT = False
BOT_ASYNC = True
