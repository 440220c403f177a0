"""The relay's settings, read once from Errbot's config module (filled from the environment by config_template)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_BIG_FILE_NOTICE = (
    "Sorry, this file is larger than 20 MB, so it could not be passed on. "
    "Please send a smaller file or share a link to it."
)
DEFAULT_PAYMENT_CONFIRMATION = "Thank you! Your payment of {amount} was received."


@dataclass(frozen=True)
class RelaySettings:
    """Everything the relay reads from configuration, with the documented defaults."""

    data_dir: str
    public_url: str
    app_id: str | None = None
    api_key_id: str | None = None
    api_key_secret: str | None = None
    file_link_ttl: int = 7 * 24 * 3600
    big_file_notice: str = DEFAULT_BIG_FILE_NOTICE
    webhook_timeout: float = 20.0
    webhook_attempts: int = 5
    max_body_bytes: int = 1024 * 1024
    bot_prefix: str = "!"
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    default_currency: str = "usd"
    payment_confirmation: str = DEFAULT_PAYMENT_CONFIRMATION
    send_max_age: float = 24 * 3600.0
    checkout_ttl: int = 24 * 3600

    @property
    def payments_enabled(self) -> bool:
        """Buy actions need a Stripe key; without one they are refused with a clear 400."""
        return bool(self.stripe_api_key)

    @classmethod
    def from_config(cls, config: Any) -> RelaySettings:
        """Read settings from Errbot's config module or any object with the same attributes."""

        def get(name: str, default: Any = None) -> Any:
            value = getattr(config, name, None)
            return default if value is None or value == "" else value

        webserver = get("WEBSERVER_CONFIG", {}) or {}
        host = webserver.get("HOST", "127.0.0.1")
        port = webserver.get("PORT", 3141)
        return cls(
            data_dir=str(get("BOT_DATA_DIR", "./data")),
            public_url=str(get("RELAY_PUBLIC_URL", f"http://{host}:{port}")).rstrip("/"),
            app_id=get("RELAY_APP_ID"),
            api_key_id=get("RELAY_API_KEY_ID"),
            api_key_secret=get("RELAY_API_KEY_SECRET"),
            file_link_ttl=int(get("RELAY_FILE_LINK_TTL", cls.file_link_ttl)),
            big_file_notice=str(get("RELAY_BIG_FILE_NOTICE", DEFAULT_BIG_FILE_NOTICE)),
            webhook_timeout=float(get("RELAY_WEBHOOK_TIMEOUT", cls.webhook_timeout)),
            webhook_attempts=int(get("RELAY_WEBHOOK_ATTEMPTS", cls.webhook_attempts)),
            max_body_bytes=int(get("RELAY_MAX_BODY_BYTES", cls.max_body_bytes)),
            bot_prefix=str(get("BOT_PREFIX", "!")),
            stripe_api_key=get("STRIPE_API_KEY"),
            stripe_webhook_secret=get("STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=get("STRIPE_API_BASE"),
            default_currency=str(get("RELAY_DEFAULT_CURRENCY", "usd")).lower(),
            payment_confirmation=str(get("RELAY_PAYMENT_CONFIRMATION", DEFAULT_PAYMENT_CONFIRMATION)),
            send_max_age=float(get("RELAY_SEND_MAX_AGE", cls.send_max_age)),
            checkout_ttl=int(get("RELAY_CHECKOUT_TTL", cls.checkout_ttl)),
        )
