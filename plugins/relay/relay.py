"""The Relay plugin: Errbot's view of the relay. Admin commands and HTTP routes only; the work is in smoochrelay."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from errbot import BotPlugin, arg_botcmd, botcmd, webhook
from flask import Request, Response

from smoochrelay import smooch
from smoochrelay.api import error_response
from smoochrelay.files import serve_file
from smoochrelay.service import RelayService
from tgbackend.redact import register_secret

API_METHODS = ("GET", "POST", "PUT", "DELETE")


def while_running(route: Callable[..., Response]) -> Callable[..., Response]:
    """Answer 503 with Smooch's error body while the relay is starting or stopping."""

    @functools.wraps(route)
    def guarded(self: Relay, request: Request, **kwargs: Any) -> Response:
        if self.service is None:
            return error_response(503, "service_unavailable", "The relay is starting or stopping; retry soon.")
        return route(self, request, **kwargs)

    return guarded


class Relay(BotPlugin):
    """Relays Telegram conversations to business systems over a Smooch v1.1-compatible API and webhooks."""

    service: RelayService | None = None

    def activate(self) -> None:
        """Open the relay database and start the delivery workers."""
        super().activate()
        self.service = RelayService(self._bot, self.bot_config)
        self.service.start()
        self.log.info("Relay ready: app %s, API at %s/v1.1/apps/%s", self.service.app_id,
                      self.service.settings.public_url, self.service.app_id)

    def deactivate(self) -> None:
        """Stop the workers; queued deliveries resume at the next start."""
        if self.service is not None:
            self.service.stop()
            self.service = None
        super().deactivate()

    def callback_message(self, msg: Any) -> None:
        """Store an incoming Telegram message as Smooch events; raising makes the backend retry the update."""
        service = self.service
        if service is None:
            raise RuntimeError("The relay is not running; the update will be retried.")
        service.inbound.handle(msg.body or "", msg.extras)

    # HTTP routes

    @webhook("/v1.1/<path:subpath>", methods=API_METHODS, raw=True)
    @while_running
    def smooch_api(self, request: Request, subpath: str) -> Response:
        """The Smooch v1.1-compatible API."""
        return self.service.api.handle(request)

    @webhook("/files/<token>/<name>", methods=("GET",), raw=True)
    @while_running
    def file_link(self, request: Request, token: str, name: str) -> Response:
        """Stream a file a Telegram user sent, through a signed, expiring link."""
        return serve_file(self.service.links, self._bot.open_file, token)

    @webhook("/checkout/<action_id>", methods=("GET",), raw=True)
    @while_running
    def checkout(self, request: Request, action_id: str) -> Response:
        """A buy button's link: open (or reuse) the Stripe Checkout session and redirect to it."""
        return self.service.payments.checkout(action_id)

    @webhook("/checkout/<action_id>/<outcome>", methods=("GET",), raw=True)
    @while_running
    def checkout_result(self, request: Request, action_id: str, outcome: str) -> Response:
        """The pages Stripe sends the buyer back to (success or cancel)."""
        return self.service.payments.result_page(action_id, outcome)

    @webhook("/stripe/webhook", methods=("POST",), raw=True)
    @while_running
    def stripe_webhook(self, request: Request) -> Response:
        """Stripe's events: a paid checkout fires payment:success."""
        return self.service.payments.stripe_webhook(request)

    # Admin commands

    @botcmd(admin_only=True)
    def relay_status(self, msg: Any, args: str) -> str:
        """Connection, app id, API address, webhooks, queue depth and dead letters."""
        service = self._running()
        telegram = self._bot.telegram_status()
        stats = service.store.stats()
        if telegram.get("connected"):
            connection = f"connected as @{telegram.get('username')} ({telegram.get('link')})"
        else:
            connection = f"not connected ({telegram.get('last_error') or 'no bot token set'})"
        webhooks = service.store.list_webhooks()
        return "\n".join([
            "**Relay status**",
            f"- Telegram: {connection}",
            f"- App id: `{service.app_id}`",
            f"- API: {service.settings.public_url}/v1.1/apps/{service.app_id}",
            f"- HTTP server: {telegram.get('webserver', 'unknown')}",
            f"- Webhooks: {len(webhooks)}",
            f"- Webhook deliveries pending: {stats.get('webhook_pending', 0)}, "
            f"dead letters: {stats.get('webhook_dead', 0)}",
            f"- Messages to send: {stats.get('send_pending', 0)}, failed: {stats.get('send_failed', 0)}",
        ])

    @arg_botcmd("name", type=str, admin_only=True)
    def relay_key_create(self, msg: Any, name: str) -> str:
        """Create an API key; the secret is shown once."""
        key = self._running().store.create_api_key(name)
        register_secret(key.secret)  # the reply below holds it; keep it out of (DEBUG) logs of the send
        return (f"API key **{key.name}** created.\n- Key id: `{key.key_id}`\n- Secret: `{key.secret}`\n"
                "Store the secret now: it is not shown again. Authenticate with HTTP Basic (key id, secret) "
                "or a JWT signed with the secret (header kid = key id, claim scope = app).")

    @botcmd(admin_only=True)
    def relay_key_list(self, msg: Any, args: str) -> str:
        """List API keys (ids and names, never secrets)."""
        keys = self._running().store.list_api_keys()
        if not keys:
            return "No API keys yet. Create one with `!relay key create <name>`."
        lines = ["**API keys**"]
        for key in keys:
            state = "revoked" if key.revoked_at else "active"
            lines.append(f"- `{key.key_id}` {key.name} ({state})")
        return "\n".join(lines)

    @arg_botcmd("key_id", type=str, admin_only=True)
    def relay_key_revoke(self, msg: Any, key_id: str) -> str:
        """Revoke an API key: requests signed with it get 401 from now on."""
        if self._running().store.revoke_api_key(key_id):
            return f"API key `{key_id}` revoked."
        return f"No active API key `{key_id}`. See `!relay key list`."

    @arg_botcmd("triggers", type=str, nargs="*", help="triggers (default: message)")
    @arg_botcmd("url", type=str, admin_only=True)
    def relay_webhook_add(self, msg: Any, url: str, triggers: list[str]) -> str:
        """Add a webhook: `!relay webhook add <url> [trigger …]`."""
        service = self._running()
        body: dict[str, Any] = {"target": url}
        if triggers:
            body["triggers"] = [t for item in triggers for t in item.split(",") if t]
        try:
            fields = smooch.validate_webhook_create(body)
        except smooch.ValidationError as exc:
            return f"Not added: {exc.description}"
        if len(service.store.list_webhooks()) >= smooch.MAX_WEBHOOKS:
            return f"Not added: an app is limited to {smooch.MAX_WEBHOOKS} webhooks. Remove one first."
        hook = service.store.create_webhook(fields["target"], fields["triggers"],
                                            include_full_app_user=fields.get("includeFullAppUser", False))
        register_secret(hook.secret)  # the reply below holds it; keep it out of (DEBUG) logs of the send
        return (f"Webhook `{hook.id}` added for {hook.target} ({', '.join(hook.triggers)}).\n"
                f"- Secret (sent as X-API-Key and used for the signature): `{hook.secret}`")

    @botcmd(admin_only=True)
    def relay_webhook_list(self, msg: Any, args: str) -> str:
        """List webhooks (ids, targets, triggers)."""
        hooks = self._running().store.list_webhooks()
        if not hooks:
            return "No webhooks yet. Add one with `!relay webhook add <url> [triggers]`."
        return "\n".join(["**Webhooks**"] + [f"- `{h.id}` {h.target} ({', '.join(h.triggers)})" for h in hooks])

    @arg_botcmd("webhook_id", type=str, admin_only=True)
    def relay_webhook_remove(self, msg: Any, webhook_id: str) -> str:
        """Remove a webhook and drop its pending deliveries."""
        if self._running().store.delete_webhook(webhook_id):
            return f"Webhook `{webhook_id}` removed."
        return f"No webhook `{webhook_id}`. See `!relay webhook list`."

    @botcmd(admin_only=True)
    def relay_redeliver(self, msg: Any, args: str) -> str:
        """Queue every dead letter again."""
        count = self._running().webhooks.redeliver()
        return f"{count} dead letter(s) queued for delivery again." if count else "No dead letters."

    @botcmd(admin_only=True)
    def relay_payments(self, msg: Any, args: str) -> str:
        """Recent buy actions and their state (offered, paid)."""
        rows = self._running().payments.recent(limit=20)
        if not rows:
            return "No buy actions yet."
        lines = ["**Recent buy actions**"]
        for row in rows:
            lines.append(f"- `{row['action_id']}` {row['text']}: {row['amount_display']} ({row['state']}), "
                         f"appUser `{row['app_user_id']}`")
        return "\n".join(lines)

    def _running(self) -> RelayService:
        if self.service is None:
            raise RuntimeError("The relay is not running.")
        return self.service
