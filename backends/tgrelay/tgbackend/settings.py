"""The backend's settings, read once from Errbot's config (BOT_IDENTITY and friends)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tgbackend.affinity import parse_cpu_affinity

DEFAULT_API_URL = "https://api.telegram.org"


@dataclass(frozen=True)
class Settings:
    """Everything the backend reads from the config."""

    token: str | None
    api_url: str
    poll_timeout: float
    pacing: bool
    webserver_config: dict | None
    admins: tuple[str, ...]
    prefix: str
    cpu_affinity: str | int = "auto"


def _pacing_enabled(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("off", "false", "0", "no")
    return value is None or bool(value)


def read_settings(config: Any) -> Settings:
    """Build Settings from an Errbot config object; raise ValueError saying which setting is wrong."""
    identity = dict(getattr(config, "BOT_IDENTITY", None) or {})
    token = (identity.get("token") or "").strip() or None
    api_url = (identity.get("api_url") or DEFAULT_API_URL).strip().rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        raise ValueError(
            f"BOT_IDENTITY['api_url'] (TELEGRAM_API_URL) must be an http(s) URL, got {api_url!r}"
        )
    poll_timeout = float(identity.get("poll_timeout", 10))
    pacing = _pacing_enabled(identity.get("pacing", getattr(config, "TELEGRAM_PACING", None)))
    webserver = getattr(config, "WEBSERVER_CONFIG", None)
    admins = getattr(config, "BOT_ADMINS", ()) or ()
    if isinstance(admins, str):
        admins = (admins,)
    return Settings(
        token=token,
        api_url=api_url,
        poll_timeout=poll_timeout,
        pacing=pacing,
        webserver_config=dict(webserver) if webserver else None,
        admins=tuple(str(a) for a in admins),
        prefix=getattr(config, "BOT_PREFIX", "!") or "!",
        cpu_affinity=parse_cpu_affinity(getattr(config, "CPU_AFFINITY", None)),
    )
