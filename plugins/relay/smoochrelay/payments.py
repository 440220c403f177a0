"""Stripe Checkout for Smooch buy actions: stable checkout links, sessions, Stripe's webhook and payment:success.

A buy action's link is {public_url}/checkout/{actionId}. Opening it creates (or reuses) a Stripe Checkout
Session built only from the stored action, so nobody can change the amount through the request. Stripe's
signed checkout.session.completed / async_payment_succeeded events mark the action paid exactly once, fire
payment:success and thank the user in Telegram.
"""

from __future__ import annotations

import html
import json
import logging
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from flask import Request, Response

from smoochrelay import smooch
from smoochrelay.events import EventFanout
from smoochrelay.settings import DEFAULT_PAYMENT_CONFIRMATION, RelaySettings
from smoochrelay.store import RelayStore

log = logging.getLogger(__name__)

SCHEMA_NAME = "payments"
SCHEMA: list[str] = [
    """CREATE TABLE payment_actions (
        action_id TEXT PRIMARY KEY, message_id TEXT NOT NULL, app_user_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL, text TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (typeof(amount) = 'integer' AND amount > 0),
        currency TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('offered', 'paid')),
        created REAL NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0, attempt_expires_at INTEGER,
        session_id TEXT, session_url TEXT, session_expires_at INTEGER,
        paid_at REAL, charge_id TEXT, paid_event_id TEXT, paid_session_id TEXT)""",
    "CREATE INDEX payment_actions_created ON payment_actions (created)",
    """CREATE TABLE payment_sessions (
        session_id TEXT PRIMARY KEY, action_id TEXT NOT NULL REFERENCES payment_actions (action_id),
        attempt INTEGER NOT NULL, expires_at INTEGER NOT NULL, created REAL NOT NULL)""",
    """CREATE TABLE stripe_events (
        event_id TEXT PRIMARY KEY, type TEXT NOT NULL, action_id TEXT NOT NULL, session_id TEXT NOT NULL,
        received REAL NOT NULL)""",
]

PAID_EVENT_TYPES = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
MIN_CHECKOUT_TTL = 31 * 60  # Stripe wants expires_at at least 30 minutes after creation; one minute of slack.
MAX_CHECKOUT_TTL = 24 * 3600  # and at most 24 hours after creation.
REUSE_MARGIN = 10 * 60  # an open session with less time left is expired and replaced, so the buyer has time to pay
STRIPE_TIMEOUT = (5.0, 20.0)  # connect, read (seconds)
STRIPE_RETRIES = 2  # safe: every POST carries an idempotency key
LOCK_STRIPES = 64
_ACTION_ID = re.compile(r"[0-9a-f]{24}\Z")
_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.4rem}"
)


@dataclass(frozen=True)
class BuyAction:
    """One offered buy action as stored: where it was sent, what it costs, and its checkout state."""

    action_id: str
    message_id: str
    app_user_id: str
    chat_id: int
    text: str
    amount: int
    currency: str
    state: str
    created: float
    attempt: int
    attempt_expires_at: int | None
    session_id: str | None
    session_url: str | None
    session_expires_at: int | None
    charge_id: str | None
    paid_session_id: str | None


_SELECT_ACTION = (
    "SELECT action_id, message_id, app_user_id, chat_id, text, amount, currency, state, created, attempt, "
    "attempt_expires_at, session_id, session_url, session_expires_at, charge_id, paid_session_id "
    "FROM payment_actions WHERE action_id = ?"
)


def format_amount(amount: int, currency: str) -> str:
    """Minor units → an amount in the currency's own units: (1050, "usd") → "10.50 USD", (500, "jpy") → "500 JPY"."""
    code = currency.upper()
    if currency.lower() in smooch.ZERO_DECIMAL_CURRENCIES:
        return f"{amount:,} {code}"
    return f"{Decimal(amount).scaleb(-2):,.2f} {code}"


def html_page(status: int, title: str, text: str) -> Response:
    """A small self-contained HTML page (escaped text, no scripts, not cached)."""
    body = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></main></body></html>"
    )
    response = Response(body, status=status, mimetype="text/html")
    _harden(response)
    return response


def _harden(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def _buy_actions(message: dict) -> list[dict]:
    """The buy actions of a message: its own and its items'."""
    actions = [a for a in message.get("actions") or [] if a.get("type") == "buy"]
    for item in message.get("items") or []:
        actions.extend(a for a in item.get("actions") or [] if a.get("type") == "buy")
    return actions


class Payments:
    """Checkout links, Stripe Checkout Sessions and Stripe's webhook for buy actions (see the module docstring)."""

    def __init__(self, store: RelayStore, settings: RelaySettings, fanout: EventFanout, *, app_id: str,
                 notify_user: Callable[[int, str], None]) -> None:
        self._store = store
        self._settings = settings
        self._fanout = fanout
        self._app_id = app_id
        self._notify_user = notify_user
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._client_lock = threading.Lock()
        self._client: stripe.StripeClient | None = None
        store.execute_schema(SCHEMA_NAME, SCHEMA)
        if settings.payments_enabled and not settings.stripe_webhook_secret:
            log.error("STRIPE_API_KEY is set but STRIPE_WEBHOOK_SECRET is not: checkout links stay closed until "
                      "the webhook signing secret (whsec_…) of %s/stripe/webhook is configured.",
                      settings.public_url)

    # -- buy actions ------------------------------------------------------------------------------

    def prepare_buy(self, message: dict, app_user: dict) -> None:
        """Give each buy action of an accepted appMaker message its stable checkout link, and record it."""
        actions = _buy_actions(message)
        if not actions:
            return
        if not self._settings.payments_enabled:
            raise smooch.ValidationError("actions", f"actions: {smooch.PAYMENTS_NOT_CONFIGURED}",
                                         code="payments_not_configured")
        now = time.time()
        rows = []
        for action in actions:
            action["uri"] = f"{self._settings.public_url}/checkout/{action['_id']}"
            action["state"] = "offered"
            rows.append((action["_id"], message["_id"], app_user["_id"], int(app_user["chat_id"]), action["text"],
                         action["amount"], action["currency"], "offered", now))
        with self._store.transaction() as conn:
            conn.executemany(
                "INSERT INTO payment_actions (action_id, message_id, app_user_id, chat_id, text, amount, currency, "
                "state, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def recent(self, limit: int = 20) -> list[dict]:
        """The newest buy actions for `!relay payments`: id, text, display amount, state, appUser, created."""
        with self._store.transaction() as conn:
            rows = conn.execute(
                "SELECT action_id, text, amount, currency, state, app_user_id, created FROM payment_actions "
                "ORDER BY created DESC, rowid DESC LIMIT ?",
                (max(1, int(limit)),),
            ).fetchall()
        return [
            {"action_id": row[0], "text": row[1], "amount_display": format_amount(row[2], row[3]),
             "state": row[4], "app_user_id": row[5], "created": row[6]}
            for row in rows
        ]

    # -- checkout ---------------------------------------------------------------------------------

    def checkout(self, action_id: str) -> Response:
        """The buy button's link: 303 to the action's open Stripe Checkout Session, created if none is usable."""
        action = self._action(action_id)
        if action is None:
            return self._unknown_page()
        if action.state == "paid":
            return self._paid_page(action)
        if self._store.get_message(action.message_id) is None:
            return self._unknown_page()
        if not self._settings.payments_enabled or not self._settings.stripe_webhook_secret:
            return html_page(503, "Payments unavailable",
                             "Payments are not available right now. Please try again later.")
        with self._locks[zlib.crc32(action_id.encode()) % LOCK_STRIPES]:
            try:
                return self._open_session(action_id)
            except stripe.StripeError as exc:
                log.warning("Stripe refused or failed a checkout for action %s: %s (HTTP %s, code %s, request %s)",
                            action_id, type(exc).__name__, exc.http_status, exc.code, exc.request_id)
                return html_page(502, "Checkout unavailable",
                                 "We could not open the payment page right now. Please try again in a moment.")

    def _open_session(self, action_id: str) -> Response:
        """Reuse the stored session while it is open with time to pay; otherwise close it and create the next."""
        action = self._action(action_id)
        if action is None:
            return self._unknown_page()
        if action.state == "paid":
            return self._paid_page(action)
        sessions = self._stripe().v1.checkout.sessions
        session = self._retrieve(action.session_id) if action.session_id is not None else None
        if session is not None:
            if session.status == "complete":
                return self._processing_page(action)
            if session.status == "open":
                if int(session.expires_at) - time.time() > REUSE_MARGIN:
                    return self._redirect(str(session.url))
                if not self._expire(action.session_id):
                    return self._processing_page(action)
        attempt, expires_at = self._reserve_attempt(action_id)
        session = sessions.create(
            params=self._session_params(action, expires_at),  # type: ignore[arg-type]
            options={"idempotency_key": f"checkout-{action_id}-{attempt}"},
        )
        if session.status != "open" or not session.url:
            raise stripe.APIError(f"Stripe answered a new checkout session with status {session.status}")
        self._store_session(action_id, attempt, str(session.id), str(session.url), int(session.expires_at))
        return self._redirect(str(session.url))

    def _retrieve(self, session_id: str) -> stripe.checkout.Session | None:
        """The stored session as Stripe has it now; None if Stripe no longer knows it (e.g. another account)."""
        try:
            return self._stripe().v1.checkout.sessions.retrieve(session_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                log.warning("Stripe does not know checkout session %s any more; a new one will be created.",
                            session_id)
                return None
            raise

    def _expire(self, session_id: str) -> bool:
        """Close a nearly expired open session so at most one can take money; False if it completed meanwhile."""
        sessions = self._stripe().v1.checkout.sessions
        try:
            sessions.expire(session_id)
            return True
        except stripe.InvalidRequestError:
            status = sessions.retrieve(session_id).status
            if status == "complete":
                return False
            if status == "expired":
                return True
            raise

    def _session_params(self, action: BuyAction, expires_at: int) -> dict[str, Any]:
        """Everything Stripe needs, from the stored action only (the request cannot change the amount)."""
        metadata = {"app_id": self._app_id, "app_user_id": action.app_user_id, "message_id": action.message_id,
                    "action_id": action.action_id}
        page = f"{self._settings.public_url}/checkout/{action.action_id}"
        return {
            "mode": "payment",
            "line_items": [{
                "price_data": {"currency": action.currency, "unit_amount": action.amount,
                               "product_data": {"name": action.text}},
                "quantity": 1,
            }],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "client_reference_id": action.action_id,
            "success_url": f"{page}/success",
            "cancel_url": f"{page}/cancel",
            "expires_at": expires_at,
        }

    def _reserve_attempt(self, action_id: str) -> tuple[int, int]:
        """The attempt number and expiry to create a session with, committed before calling Stripe.

        An attempt whose session was never stored (a crash or timeout after Stripe answered) is replayed with
        the same idempotency key and parameters, so Stripe returns that session instead of making a second.
        """
        now = time.time()
        ttl = min(max(int(self._settings.checkout_ttl), MIN_CHECKOUT_TTL), MAX_CHECKOUT_TTL)
        with self._store.transaction() as conn:
            attempt, pending_expiry, session_id = conn.execute(
                "SELECT attempt, attempt_expires_at, session_id FROM payment_actions WHERE action_id = ?",
                (action_id,),
            ).fetchone()
            if session_id is None and attempt > 0 and pending_expiry is not None \
                    and pending_expiry - now >= MIN_CHECKOUT_TTL:
                return attempt, pending_expiry
            attempt += 1
            expires_at = int(now) + ttl
            conn.execute(
                "UPDATE payment_actions SET attempt = ?, attempt_expires_at = ?, session_id = NULL, "
                "session_url = NULL, session_expires_at = NULL WHERE action_id = ?",
                (attempt, expires_at, action_id),
            )
        return attempt, expires_at

    def _store_session(self, action_id: str, attempt: int, session_id: str, url: str, expires_at: int) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE payment_actions SET session_id = ?, session_url = ?, session_expires_at = ? "
                "WHERE action_id = ? AND attempt = ?",
                (session_id, url, expires_at, action_id, attempt),
            )
            conn.execute(
                "INSERT OR IGNORE INTO payment_sessions (session_id, action_id, attempt, expires_at, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_id, action_id, attempt, expires_at, time.time()),
            )

    def _stripe(self) -> stripe.StripeClient:
        """One Stripe client for the relay's lifetime (connection reuse, bounded timeouts, safe retries)."""
        with self._client_lock:
            if self._client is None:
                base = self._settings.stripe_api_base
                self._client = stripe.StripeClient(
                    str(self._settings.stripe_api_key),
                    base_addresses={"api": base.rstrip("/")} if base else None,
                    max_network_retries=STRIPE_RETRIES,
                    http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT),
                )
            return self._client

    # -- pages ------------------------------------------------------------------------------------

    def result_page(self, action_id: str, outcome: str) -> Response:
        """Where Stripe sends the buyer back: "success" or "cancel"; anything else is 404."""
        action = self._action(action_id)
        if action is None or outcome not in ("success", "cancel"):
            return self._unknown_page()
        if action.state == "paid":
            return self._paid_page(action)
        if outcome == "success":
            return self._processing_page(action)
        return html_page(200, "Payment cancelled",
                         f"Nothing was charged for {action.text} ({format_amount(action.amount, action.currency)}). "
                         "To pay later, tap the button in Telegram again.")

    def _paid_page(self, action: BuyAction) -> Response:
        return html_page(200, "Paid", f"{action.text} ({format_amount(action.amount, action.currency)}) is paid. "
                                      "Thank you! You can close this page and go back to Telegram.")

    def _processing_page(self, action: BuyAction) -> Response:
        return html_page(200, "Thank you", f"Your payment for {action.text} "
                                           f"({format_amount(action.amount, action.currency)}) is being confirmed. "
                                           "You will get a message in Telegram once it is.")

    @staticmethod
    def _unknown_page() -> Response:
        return html_page(404, "Not found", "This payment link is not valid. Please use the button in Telegram.")

    @staticmethod
    def _redirect(url: str) -> Response:
        response = Response(f"<a href=\"{html.escape(url)}\">Continue to payment</a>", status=303,
                            mimetype="text/html")
        response.headers["Location"] = url
        _harden(response)
        return response

    # -- Stripe's webhook -------------------------------------------------------------------------

    def stripe_webhook(self, request: Request) -> Response:
        """Verify Stripe's signature; a paid checkout of ours marks its action paid and fires payment:success once."""
        secret = self._settings.stripe_webhook_secret
        if not secret:
            log.warning("A Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set; refused.")
            return _json(400, smooch.error_body("webhook_not_configured",
                                                "This relay has no Stripe webhook secret configured."))
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _json(413, smooch.error_body("request_entity_too_large", f"The body is larger than {limit} bytes."))
        payload = request.stream.read(limit + 1)
        if len(payload) > limit:
            return _json(413, smooch.error_body("request_entity_too_large", f"The body is larger than {limit} bytes."))
        try:
            stripe.Webhook.construct_event(payload, request.headers.get("Stripe-Signature"), secret)
            event = json.loads(payload)
        except stripe.SignatureVerificationError:
            log.warning("Refused a Stripe webhook with a missing or invalid signature.")
            return _json(400, smooch.error_body("invalid_signature", "The Stripe-Signature header does not verify."))
        except ValueError:
            return _json(400, smooch.error_body("bad_request", "The body is not a Stripe event."))
        data = event.get("data") if isinstance(event, dict) else None
        session = data.get("object") if isinstance(data, dict) else None
        if not isinstance(session, dict) or event.get("type") not in PAID_EVENT_TYPES \
                or session.get("object") != "checkout.session" or session.get("payment_status") != "paid":
            return _json(200, {"received": True})
        try:
            notice = self._record_payment(str(event.get("id")), str(event.get("type")), session)
        except Exception:
            log.exception("Could not record Stripe event %s; Stripe will retry it.", event.get("id"))
            return _json(500, smooch.error_body("internal_error", "Could not record the event; retry later."))
        if notice is not None:
            self._notify_user(*notice)
        return _json(200, {"received": True})

    def _record_payment(self, event_id: str, event_type: str, session: dict) -> tuple[int, str] | None:
        """Mark the session's action paid, record the event and queue payment:success, in one transaction.

        Returns the (chat_id, confirmation) to send after the commit, or None when nothing changed.
        """
        session_id = str(session.get("id"))
        metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
        action_id = metadata.get("action_id") or session.get("client_reference_id")
        with self._store.transaction() as conn:
            row = conn.execute("SELECT action_id FROM payment_sessions WHERE session_id = ?", (session_id,)).fetchone()
            if row is None or row[0] != action_id:
                log.info("Ignored Stripe event %s: session %s was not created by this relay.", event_id, session_id)
                return None
            action = self._action(action_id, conn)
            if action is None:
                return None
            if session.get("amount_total") != action.amount or str(session.get("currency")).lower() != action.currency:
                log.error("Stripe event %s: session %s charged %s %s but action %s costs %s; not marked paid.",
                          event_id, session_id, session.get("amount_total"), session.get("currency"), action_id,
                          format_amount(action.amount, action.currency))
                return None
            inserted = conn.execute(
                "INSERT OR IGNORE INTO stripe_events (event_id, type, action_id, session_id, received) "
                "VALUES (?, ?, ?, ?, ?)",
                (event_id, event_type, action_id, session_id, time.time()),
            ).rowcount
            if not inserted:
                return None
            intent = session.get("payment_intent")
            charge_id = str((intent.get("id") if isinstance(intent, dict) else intent) or session_id)
            if action.state == "paid":
                if action.paid_session_id != session_id:
                    log.error("Action %s was paid twice: session %s (%s) and session %s (%s). Refund one in the "
                              "Stripe dashboard.", action_id, action.paid_session_id, action.charge_id, session_id,
                              charge_id)
                return None
            conn.execute(
                "UPDATE payment_actions SET state = 'paid', paid_at = ?, charge_id = ?, paid_event_id = ?, "
                "paid_session_id = ? WHERE action_id = ?",
                (time.time(), charge_id, event_id, session_id, action_id),
            )
            message, paid_action = self._mark_message_paid(action)
            app_user = self._store.get_app_user(action.app_user_id)
            if app_user is not None:
                payment = {"source": {"type": "telegram"}, "message": message, "action": paid_action,
                           "charge": {"id": charge_id}}
                if message is None:
                    del payment["message"]
                self._store.enqueue(self._fanout.jobs("payment:success", app_user, payments=[payment]))
        log.info("Action %s paid: %s, charge %s.", action_id, format_amount(action.amount, action.currency),
                 charge_id)
        return action.chat_id, self._confirmation(action)

    def _mark_message_paid(self, action: BuyAction) -> tuple[dict | None, dict]:
        """Set the action's state to paid in its stored message; returns (message, the paid action)."""
        paid_action = {"_id": action.action_id, "type": "buy", "text": action.text, "amount": action.amount,
                       "currency": action.currency, "state": "paid",
                       "uri": f"{self._settings.public_url}/checkout/{action.action_id}"}
        message = self._store.get_message(action.message_id)
        if message is None:
            return None, paid_action
        for candidate in _buy_actions(message):
            if candidate.get("_id") == action.action_id:
                candidate["state"] = "paid"
                paid_action = dict(candidate)
        self._store.update_message(action.message_id, message)
        return message, paid_action

    def _confirmation(self, action: BuyAction) -> str:
        """RELAY_PAYMENT_CONFIRMATION with {amount} (in the currency's units) and {item} filled in."""
        values = {"amount": format_amount(action.amount, action.currency), "item": action.text}
        try:
            return self._settings.payment_confirmation.format_map(values)
        except (KeyError, IndexError, ValueError, AttributeError):
            log.warning("RELAY_PAYMENT_CONFIRMATION may use only {amount} and {item}; sent the default instead.")
            return DEFAULT_PAYMENT_CONFIRMATION.format_map(values)

    # -- storage ----------------------------------------------------------------------------------

    def _action(self, action_id: str, conn: sqlite3.Connection | None = None) -> BuyAction | None:
        """The stored buy action, or None for an unknown or malformed id."""
        if not _ACTION_ID.match(action_id):
            return None
        if conn is None:
            with self._store.transaction() as own:
                return self._action(action_id, own)
        row = conn.execute(_SELECT_ACTION, (action_id,)).fetchone()
        return BuyAction(*row) if row is not None else None
