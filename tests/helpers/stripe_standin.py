"""A local stand-in for the part of Stripe's API the relay uses, for tests that must never reach Stripe.

A real HTTP server (127.0.0.1, a free port) that the real `stripe` library talks to:

    with StripeStandIn(api_key="sk_test_x", webhook_secret="whsec_x") as fake:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": fake.url})
        session = client.v1.checkout.sessions.create(params={...}, options={"idempotency_key": "k1"})
        delivery = fake.complete(session.id)          # paid; the signed checkout.session.completed event
        requests.post(relay + "/stripe/webhook", data=delivery.body, headers=delivery.headers)

Implements POST /v1/checkout/sessions (form-encoded, idempotency keys honoured the way Stripe does: same key
and same parameters → the first answer again; same key, other parameters → 400 idempotency_error),
GET /v1/checkout/sessions/<id>, POST /v1/checkout/sessions/<id>/expire, and GET /pay/<id> (the page a buyer
would see). Every API request is recorded with its headers and decoded parameters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MIN_EXPIRY = 30 * 60
MAX_EXPIRY = 24 * 3600
_SESSION_PATH = re.compile(r"/v1/checkout/sessions/(?P<id>cs_[A-Za-z0-9_]+)(?P<expire>/expire)?\Z")


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header value exactly as Stripe computes it: t=<ts>,v1=<hex HMAC-SHA256(secret, "t.body")>."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (a[b][0][c]=v) → nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            nxt = None if last else parts[index + 1]
            container: Any = [] if nxt is not None and nxt.isdigit() else {}
            if isinstance(node, list):
                position = int(part)
                while len(node) <= position:
                    node.append(None)
                if last:
                    node[position] = value
                else:
                    if node[position] is None:
                        node[position] = container
                    node = node[position]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, container)
    return root


@dataclass
class Recorded:
    """One API request as the stand-in saw it."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass
class Delivery:
    """A signed webhook, ready to POST to the relay's /stripe/webhook."""

    event_id: str
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict:
        """The event, parsed."""
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class StripeStandIn:
    """Checkout Sessions held in memory; see the module docstring."""

    def __init__(self, api_key: str = "sk_test_standin", webhook_secret: str = "whsec_standin") -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self._lock = threading.Lock()
        self.sessions: dict[str, dict] = {}
        self._idempotent: dict[str, tuple[str, int, dict]] = {}
        self._requests: list[Recorded] = []
        self._failures: list[tuple[int, str]] = []
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="stripe-standin", daemon=True)
        self._thread.start()

    def __enter__(self) -> StripeStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    # -- what tests read and drive --------------------------------------------------------------

    def requests(self, method: str | None = None, path_prefix: str = "/v1/") -> list[Recorded]:
        """The API requests seen so far, oldest first."""
        with self._lock:
            return [r for r in self._requests
                    if (method is None or r.method == method) and r.path.startswith(path_prefix)]

    def creations(self) -> list[Recorded]:
        """The POST /v1/checkout/sessions requests (each creation attempt, replays included)."""
        return [r for r in self.requests("POST") if r.path == "/v1/checkout/sessions"]

    def fail_next(self, status: int, error_type: str = "api_error", times: int = 1) -> None:
        """The next `times` API requests get `status` with a Stripe error body."""
        with self._lock:
            self._failures.extend([(status, error_type)] * times)

    def expire(self, session_id: str) -> None:
        """The session's time ran out (as if expires_at had passed)."""
        with self._lock:
            session = self.sessions[session_id]
            session["status"] = "expired"
            session["expires_at"] = int(time.time()) - 1

    def complete(self, session_id: str, *, event_type: str = "checkout.session.completed",
                 payment_status: str = "paid") -> Delivery:
        """The buyer paid: the session is complete with a payment intent; returns the signed event."""
        with self._lock:
            session = self.sessions[session_id]
            session["status"] = "complete"
            session["payment_status"] = payment_status
            if session.get("payment_intent") is None:
                session["payment_intent"] = "pi_" + secrets.token_hex(12)
            snapshot = json.loads(json.dumps(session))
        return self.event(event_type, snapshot)

    def event(self, event_type: str, data_object: dict, *, secret: str | None = None,
              timestamp: int | None = None) -> Delivery:
        """Any event around `data_object`, signed with the webhook secret (or `secret`)."""
        event_id = "evt_" + secrets.token_hex(12)
        event = {
            "id": event_id, "object": "event", "api_version": "2026-10-28.endive", "created": int(time.time()),
            "data": {"object": data_object}, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": event_type,
        }
        return self.sign(event_id, json.dumps(event, indent=2).encode(), secret=secret, timestamp=timestamp)

    def sign(self, event_id: str, body: bytes, *, secret: str | None = None, timestamp: int | None = None) -> Delivery:
        """Sign `body` the way Stripe does."""
        signature = stripe_signature(body, secret or self.webhook_secret, timestamp)
        return Delivery(event_id, body, {"Stripe-Signature": signature,
                                         "Content-Type": "application/json; charset=utf-8"})

    # -- the API --------------------------------------------------------------------------------

    def _create(self, params: dict[str, Any]) -> tuple[int, dict]:
        now = int(time.time())
        problem = self._invalid(params, now)
        if problem is not None:
            return 400, {"error": {"type": "invalid_request_error", "message": problem[1], "param": problem[0]}}
        item = params["line_items"][0]
        unit_amount = int(item["price_data"]["unit_amount"])
        quantity = int(item.get("quantity", 1))
        session_id = "cs_test_" + secrets.token_hex(24)
        session = {
            "id": session_id, "object": "checkout.session", "mode": params["mode"],
            "url": f"{self.url}/pay/{session_id}", "status": "open", "payment_status": "unpaid",
            "created": now, "expires_at": int(params.get("expires_at", now + MAX_EXPIRY)),
            "amount_subtotal": unit_amount * quantity, "amount_total": unit_amount * quantity,
            "currency": item["price_data"]["currency"], "metadata": params.get("metadata", {}),
            "client_reference_id": params.get("client_reference_id"), "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"), "payment_intent": None, "livemode": False,
            "customer": None, "customer_details": None,
        }
        self.sessions[session_id] = session
        return 200, session

    @staticmethod
    def _invalid(params: dict[str, Any], now: int) -> tuple[str, str] | None:
        """Stripe's own checks on the fields the relay sends: (param, message) or None."""
        if params.get("mode") != "payment":
            return "mode", "mode must be payment here"
        if not params.get("success_url"):
            return "success_url", "Missing required param: success_url."
        items = params.get("line_items")
        if not isinstance(items, list) or len(items) != 1:
            return "line_items", "line_items must hold one item here"
        price = items[0].get("price_data") or {}
        amount = str(price.get("unit_amount", ""))
        if not amount.isdigit() or int(amount) < 1:
            return "line_items[0][price_data][unit_amount]", "Invalid integer: unit_amount"
        if not re.fullmatch(r"[a-z]{3}", str(price.get("currency", ""))):
            return "line_items[0][price_data][currency]", "Invalid currency"
        if not (price.get("product_data") or {}).get("name"):
            return "line_items[0][price_data][product_data][name]", "Missing required param: name."
        if "expires_at" in params:
            expires_at = int(params["expires_at"])
            if not now + MIN_EXPIRY <= expires_at <= now + MAX_EXPIRY:
                return "expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours from now."
        return None

    def _answer(self, method: str, path: str, headers: dict[str, str], params: dict[str, Any]) -> tuple[int, dict]:
        with self._lock:
            self._requests.append(Recorded(method, path, headers, params))
            if self._failures:
                status, error_type = self._failures.pop(0)
                return status, {"error": {"type": error_type, "message": "The stand-in was told to fail."}}
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            if auth != f"Bearer {self.api_key}":
                return 401, {"error": {"type": "invalid_request_error",
                                       "message": "Invalid API Key provided: sk_test_****"}}
            key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
            fingerprint = f"{method} {path} " + json.dumps(params, sort_keys=True)
            if method == "POST" and key is not None and key in self._idempotent:
                seen, status, body = self._idempotent[key]
                if seen != fingerprint:
                    return 400, {"error": {"type": "idempotency_error", "message": (
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different "
                        "request.")}}
                return status, body
            status, body = self._route(method, path, params)
            if method == "POST" and key is not None:
                self._idempotent[key] = (fingerprint, status, json.loads(json.dumps(body)))
            return status, body

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict]:
        if path == "/v1/checkout/sessions" and method == "POST":
            return self._create(params)
        match = _SESSION_PATH.match(path)
        if match is None or match.group("id") not in self.sessions:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "message": "No such checkout.session"}}
        session = self.sessions[match.group("id")]
        if match.group("expire") and method == "POST":
            if session["status"] != "open":
                return 400, {"error": {"type": "invalid_request_error", "message": (
                    f"Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session "
                    f"has a status of \"{session['status']}\".")}}
            session["status"] = "expired"
            return 200, session
        if method == "GET" and not match.group("expire"):
            return 200, session
        return 404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL."}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Request-Id", "req_" + secrets.token_hex(7))
                self.end_headers()
                self.wfile.write(body)

            def _api(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                params = decode_form(parse_qsl(raw or parts.query, keep_blank_values=True))
                status, body = standin._answer(method, parts.path, dict(self.headers.items()), params)
                self._reply(status, json.dumps(body).encode(), "application/json")

            def do_POST(self) -> None:
                self._api("POST")

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path.startswith("/pay/"):
                    session = standin.sessions.get(path[len("/pay/"):])
                    if session is None:
                        self._reply(404, b"no such session", "text/plain")
                        return
                    page = (f"<html><body><h1>Stripe stand-in checkout</h1><p>{session['amount_total']} "
                            f"{session['currency']} ({session['status']})</p></body></html>")
                    self._reply(200, page.encode(), "text/html")
                    return
                self._api("GET")

        return Handler
