"""Buy actions → Stripe Checkout → payment:success, against the real stripe library and a local Stripe stand-in.

Real SQLite (tmp_path), the real RelayApi for posting messages, the real WebhookDispatcher delivering to a
real receiver, and the Payments routes mounted on a Flask app exactly as relay.py mounts them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from flask import Flask, Response, request

from smoochrelay.api import Channel, RelayApi
from smoochrelay.events import EventFanout
from smoochrelay.payments import Payments, format_amount
from smoochrelay.settings import RelaySettings
from smoochrelay.store import RelayStore
from smoochrelay.webhooks import WebhookDispatcher
from tests.helpers.receiver import Receiver
from tests.helpers.stripe_standin import StripeStandIn, stripe_signature

APP_ID = "5f0c0ffee0c0ffee0c0ffee0"
KEY_ID = "app_paytests"
KEY_SECRET = "api-key-secret-for-payment-tests"
STRIPE_KEY = "sk_test_51RelayStandInSecretKey0123456789"
WEBHOOK_SECRET = "whsec_relay_standin_webhook_secret_42"
PUBLIC_URL = "https://relay.example.com"
CHAT_ID = 777


@dataclass
class Rig:
    """Everything one test drives and observes."""

    store: RelayStore
    payments: Payments
    client: Any
    standin: StripeStandIn
    receiver: Receiver
    notices: list[tuple[int, str]]
    app_user: dict

    def post_message(self, body: dict) -> Any:
        """POST an appMaker message through the real API handler."""
        return self.client.post(f"/v1.1/apps/{APP_ID}/appusers/{self.app_user['_id']}/messages",
                                json=body, auth=(KEY_ID, KEY_SECRET))

    def buy(self, text: str = "Buy vinegar", amount: int = 1000, currency: str | None = "usd") -> dict:
        """Post a message with one buy action; returns the accepted message."""
        action: dict[str, Any] = {"type": "buy", "text": text, "amount": amount}
        if currency is not None:
            action["currency"] = currency
        response = self.post_message({"role": "appMaker", "type": "text", "text": "Just put some vinegar on it",
                                      "actions": [action]})
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["message"]

    def open_checkout(self, action_id: str) -> str:
        """Follow the buy button: expect 303 and return the session id it points at."""
        response = self.client.get(f"/checkout/{action_id}")
        assert response.status_code == 303, response.get_data(as_text=True)
        location = response.headers["Location"]
        assert location.startswith(f"{self.standin.url}/pay/cs_test_")
        return location.rsplit("/", 1)[1]

    def deliver(self, delivery: Any) -> Any:
        """POST a signed Stripe event to the webhook route."""
        return self.client.post("/stripe/webhook", data=delivery.body, headers=delivery.headers)

    def payment_events(self) -> list[dict]:
        return [r.json for r in self.receiver.requests if r.json.get("trigger") == "payment:success"]

    def wait_payment_events(self, count: int) -> list[dict]:
        self.receiver.wait_for(
            lambda reqs: sum(1 for r in reqs if r.json.get("trigger") == "payment:success") >= count, timeout=10)
        return self.payment_events()

    def state(self, action_id: str) -> str:
        return next(row["state"] for row in self.payments.recent(limit=100) if row["action_id"] == action_id)


def _flask_app(api: RelayApi, payments: Payments) -> Flask:
    """The same routes relay.py registers, on a plain Flask app."""
    app = Flask(__name__)

    @app.route("/v1.1/<path:subpath>", methods=["GET", "POST", "PUT", "DELETE"])
    def smooch_api(subpath: str) -> Response:
        return api.handle(request)

    @app.route("/checkout/<action_id>")
    def checkout(action_id: str) -> Response:
        return payments.checkout(action_id)

    @app.route("/checkout/<action_id>/<outcome>")
    def checkout_result(action_id: str, outcome: str) -> Response:
        return payments.result_page(action_id, outcome)

    @app.route("/stripe/webhook", methods=["POST"])
    def stripe_webhook() -> Response:
        return payments.stripe_webhook(request)

    return app


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    with StripeStandIn(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        yield fake


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def _settings(tmp_path: Any, standin: StripeStandIn, **changes: Any) -> RelaySettings:
    base = RelaySettings(data_dir=str(tmp_path), public_url=PUBLIC_URL, app_id=APP_ID,
                         stripe_api_key=STRIPE_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                         stripe_api_base=standin.url, checkout_ttl=3600)
    return replace(base, **changes)


@pytest.fixture
def make_rig(tmp_path: Any, standin: StripeStandIn, receiver: Receiver) -> Iterator[Any]:
    started: list[tuple[RelayStore, WebhookDispatcher]] = []

    def build(**changes: Any) -> Rig:
        settings = _settings(tmp_path, standin, **changes)
        store = RelayStore(str(tmp_path / "relay.sqlite3"))
        fanout = EventFanout(store, APP_ID)
        notices: list[tuple[int, str]] = []
        payments = Payments(store, settings, fanout, app_id=APP_ID,
                            notify_user=lambda chat_id, text: notices.append((chat_id, text)))
        channel = Channel(set_token=lambda token: None, clear_token=None, status=lambda: {},
                          send_typing=lambda chat_id: None)
        api = RelayApi(store, settings, APP_ID, fanout, channel, prepare_buy=payments.prepare_buy)
        store.ensure_api_key(KEY_ID, KEY_SECRET, "tests")
        store.create_webhook(receiver.url + "/hook", ["payment:success"])
        dispatcher = WebhookDispatcher(store, timeout=5, max_attempts=2, workers=2)
        dispatcher.start()
        started.append((store, dispatcher))
        app_user = store.upsert_telegram_user({"id": CHAT_ID, "first_name": "Ada"}, CHAT_ID)
        return Rig(store, payments, _flask_app(api, payments).test_client(), standin, receiver, notices, app_user)

    yield build
    for store, dispatcher in started:
        dispatcher.stop()
        store.close()


@pytest.fixture
def rig(make_rig: Any) -> Rig:
    return make_rig()


# -- buy actions and their links ---------------------------------------------------------------------------


def test_buy_action_gets_a_stable_checkout_link_and_is_recorded(rig: Rig) -> None:
    message = rig.buy()
    action = message["actions"][0]
    assert action["uri"] == f"{PUBLIC_URL}/checkout/{action['_id']}"
    assert (action["state"], action["amount"], action["currency"], action["type"]) == ("offered", 1000, "usd", "buy")
    assert rig.store.get_message(message["_id"])["actions"][0]["uri"] == action["uri"]
    [row] = rig.payments.recent()
    assert row["action_id"] == action["_id"]
    assert (row["text"], row["amount_display"], row["state"], row["app_user_id"]) == (
        "Buy vinegar", "10.00 USD", "offered", rig.app_user["_id"])


def test_buy_actions_in_carousel_items_get_links_too(rig: Rig) -> None:
    response = rig.post_message({"role": "appMaker", "type": "carousel", "items": [
        {"title": "Tacos", "actions": [{"type": "buy", "text": "Buy tacos", "amount": 550, "currency": "eur"}]},
        {"title": "Ramen", "actions": [{"type": "link", "text": "More", "uri": "https://example.org"}]},
    ]})
    assert response.status_code == 201, response.get_data(as_text=True)
    buy = response.get_json()["message"]["items"][0]["actions"][0]
    assert buy["uri"] == f"{PUBLIC_URL}/checkout/{buy['_id']}"
    assert rig.payments.recent()[0]["amount_display"] == "5.50 EUR"


def test_recent_lists_newest_first(rig: Rig) -> None:
    first = rig.buy("First", 100)["actions"][0]["_id"]
    second = rig.buy("Second", 200)["actions"][0]["_id"]
    assert [row["action_id"] for row in rig.payments.recent()] == [second, first]
    assert len(rig.payments.recent(limit=1)) == 1


def test_buy_without_payments_configured_is_refused_with_payments_not_configured(make_rig: Any) -> None:
    rig = make_rig(stripe_api_key=None)
    response = rig.post_message({"role": "appMaker", "type": "text", "text": "x",
                                 "actions": [{"type": "buy", "text": "Buy", "amount": 100}]})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "payments_not_configured"
    assert "STRIPE_API_KEY" in error["description"]
    assert rig.payments.recent() == []


def test_prepare_buy_refuses_on_its_own_when_payments_are_off(make_rig: Any) -> None:
    from smoochrelay.smooch import ValidationError

    rig = make_rig(stripe_api_key=None)
    message = {"_id": "a" * 24, "actions": [{"_id": "b" * 24, "type": "buy", "text": "B", "amount": 1,
                                             "currency": "usd", "state": "offered"}]}
    with pytest.raises(ValidationError) as raised:
        rig.payments.prepare_buy(message, rig.app_user)
    assert raised.value.code == "payments_not_configured"
    assert "uri" not in message["actions"][0]


@pytest.mark.parametrize(("amount", "currency", "field"), [
    (0, "usd", "amount"),
    (-500, "usd", "amount"),
    (9.99, "usd", "amount"),
    ("1000", "usd", "amount"),
    (True, "usd", "amount"),
    (100_000_000, "usd", "amount"),
    (None, "usd", "amount"),
    (1000, "xyz", "currency"),
    (1000, "US", "currency"),
    (1000, 840, "currency"),
])
def test_invalid_amounts_and_currencies_are_refused_and_not_recorded(
        rig: Rig, amount: Any, currency: Any, field: str) -> None:
    action = {"type": "buy", "text": "Buy", "currency": currency}
    if amount is not None:
        action["amount"] = amount
    response = rig.post_message({"role": "appMaker", "type": "text", "text": "x", "actions": [action]})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_request"
    assert f"actions[0].{field}" in error["description"]
    assert rig.payments.recent() == []


def test_largest_amount_is_accepted(rig: Rig) -> None:
    action = rig.buy(amount=99_999_999)["actions"][0]
    assert rig.payments.recent()[0]["amount_display"] == "999,999.99 USD"
    rig.open_checkout(action["_id"])
    assert rig.standin.creations()[0].params["line_items"][0]["price_data"]["unit_amount"] == "99999999"


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (1000, "usd", "10.00 USD"),
    (1, "usd", "0.01 USD"),
    (123456, "eur", "1,234.56 EUR"),
    (500, "jpy", "500 JPY"),
    (1500000, "krw", "1,500,000 KRW"),
    (7, "clp", "7 CLP"),
])
def test_amounts_are_shown_in_the_currency_units(amount: int, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


def test_zero_decimal_currency_goes_to_stripe_and_the_user_unscaled(rig: Rig) -> None:
    action = rig.buy("Ramen", 500, "jpy")["actions"][0]
    session_id = rig.open_checkout(action["_id"])
    price = rig.standin.creations()[0].params["line_items"][0]["price_data"]
    assert (price["unit_amount"], price["currency"]) == ("500", "jpy")
    assert rig.deliver(rig.standin.complete(session_id)).status_code == 200
    assert rig.notices == [(CHAT_ID, "Thank you! Your payment of 500 JPY was received.")]


# -- checkout ---------------------------------------------------------------------------------------------


def test_checkout_creates_a_session_from_the_stored_action_and_redirects_303(rig: Rig) -> None:
    message = rig.buy()
    action_id = message["actions"][0]["_id"]
    before = int(time.time())
    response = rig.client.get(f"/checkout/{action_id}?amount=1&currency=jpy")
    assert response.status_code == 303
    assert response.headers["Cache-Control"] == "no-store"
    [create] = rig.standin.creations()
    session_id = response.headers["Location"].rsplit("/", 1)[1]
    assert rig.standin.sessions[session_id]["url"] == response.headers["Location"]
    assert create.header("Authorization") == f"Bearer {STRIPE_KEY}"
    assert create.header("Idempotency-Key") == f"checkout-{action_id}-1"
    params = create.params
    assert params["mode"] == "payment"
    assert params["line_items"] == [{"price_data": {"currency": "usd", "unit_amount": "1000",
                                                    "product_data": {"name": "Buy vinegar"}}, "quantity": "1"}]
    metadata = {"app_id": APP_ID, "app_user_id": rig.app_user["_id"], "message_id": message["_id"],
                "action_id": action_id}
    assert params["metadata"] == metadata
    assert params["payment_intent_data"] == {"metadata": metadata}
    assert params["client_reference_id"] == action_id
    assert params["success_url"] == f"{PUBLIC_URL}/checkout/{action_id}/success"
    assert params["cancel_url"] == f"{PUBLIC_URL}/checkout/{action_id}/cancel"
    assert before + 3600 <= int(params["expires_at"]) <= int(time.time()) + 3600


@pytest.mark.parametrize(("ttl", "low", "high"), [(60, 31 * 60, 31 * 60), (7 * 24 * 3600, 24 * 3600, 24 * 3600)])
def test_checkout_ttl_is_kept_inside_stripes_window(make_rig: Any, ttl: int, low: int, high: int) -> None:
    rig = make_rig(checkout_ttl=ttl)
    before = int(time.time())
    rig.open_checkout(rig.buy()["actions"][0]["_id"])
    expires_at = int(rig.standin.creations()[0].params["expires_at"])
    assert before + low <= expires_at <= int(time.time()) + high


def test_a_second_click_reuses_the_open_session(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    first = rig.open_checkout(action_id)
    second = rig.open_checkout(action_id)
    assert first == second
    assert len(rig.standin.creations()) == 1
    assert [r.path for r in rig.standin.requests("GET")] == [f"/v1/checkout/sessions/{first}"]


def test_concurrent_clicks_create_one_session(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    locations: list[str] = []

    def click() -> None:
        response = rig.client.get(f"/checkout/{action_id}")
        locations.append(f"{response.status_code} {response.headers.get('Location')}")

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(locations) == 8
    assert len(set(locations)) == 1 and locations[0].startswith("303 ")
    assert len(rig.standin.sessions) == 1


def test_an_expired_session_is_replaced_with_a_new_attempt(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    first = rig.open_checkout(action_id)
    rig.standin.expire(first)
    second = rig.open_checkout(action_id)
    assert second != first
    assert [c.header("Idempotency-Key") for c in rig.standin.creations()] == [
        f"checkout-{action_id}-1", f"checkout-{action_id}-2"]


def test_a_nearly_expired_session_is_closed_at_stripe_before_a_new_one_is_made(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    first = rig.open_checkout(action_id)
    rig.standin.sessions[first]["expires_at"] = int(time.time()) + 60
    second = rig.open_checkout(action_id)
    assert second != first
    assert rig.standin.sessions[first]["status"] == "expired"
    assert f"/v1/checkout/sessions/{first}/expire" in [r.path for r in rig.standin.requests("POST")]
    assert [s["status"] for s in rig.standin.sessions.values()].count("open") == 1


def test_a_session_lost_after_stripe_answered_is_replayed_not_duplicated(rig: Rig, monkeypatch: Any) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    original = rig.payments._store_session

    def crash_once(*args: Any) -> None:
        monkeypatch.setattr(rig.payments, "_store_session", original)
        raise RuntimeError("the relay died before storing the session")

    monkeypatch.setattr(rig.payments, "_store_session", crash_once)
    assert rig.client.get(f"/checkout/{action_id}").status_code == 500
    session_id = rig.open_checkout(action_id)
    creations = rig.standin.creations()
    assert [c.header("Idempotency-Key") for c in creations] == [f"checkout-{action_id}-1"] * 2
    assert creations[0].params == creations[1].params
    assert list(rig.standin.sessions) == [session_id]


def test_a_completed_but_unconfirmed_session_creates_no_new_one(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    session_id = rig.open_checkout(action_id)
    rig.standin.complete(session_id)
    response = rig.client.get(f"/checkout/{action_id}")
    assert response.status_code == 200
    assert "being confirmed" in response.get_data(as_text=True)
    assert len(rig.standin.creations()) == 1


def test_a_paid_action_shows_the_paid_page_and_creates_no_session(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    rig.deliver(rig.standin.complete(rig.open_checkout(action_id)))
    requests_before = len(rig.standin.requests())
    response = rig.client.get(f"/checkout/{action_id}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "<h1>Paid</h1>" in body and "10.00 USD" in body
    assert len(rig.standin.requests()) == requests_before


@pytest.mark.parametrize("action_id", ["0123456789abcdef01234567", "nope", "../etc", "A" * 24])
def test_unknown_action_is_a_404_page(rig: Rig, action_id: str) -> None:
    response = rig.client.get(f"/checkout/{action_id}")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert rig.standin.requests() == []


def test_stripe_errors_give_a_502_page_that_leaks_nothing(rig: Rig, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    action_id = rig.buy()["actions"][0]["_id"]
    rig.standin.fail_next(401, "invalid_request_error")
    response = rig.client.get(f"/checkout/{action_id}")
    assert response.status_code == 502
    body = response.get_data(as_text=True)
    assert "try again" in body
    assert "sk_" not in body and "Stripe" not in body
    assert STRIPE_KEY not in caplog.text
    assert rig.open_checkout(action_id)


def test_a_wrong_api_key_gives_502_and_the_key_is_never_logged(make_rig: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk_test_wrong_key_that_must_not_leak_000"
    rig = make_rig(stripe_api_key=wrong)
    response = rig.client.get(f"/checkout/{rig.buy()['actions'][0]['_id']}")
    assert response.status_code == 502
    assert wrong not in response.get_data(as_text=True)
    assert wrong not in caplog.text
    assert "AuthenticationError" in caplog.text


def test_checkout_stays_closed_without_a_webhook_secret(make_rig: Any) -> None:
    rig = make_rig(stripe_webhook_secret=None)
    response = rig.client.get(f"/checkout/{rig.buy()['actions'][0]['_id']}")
    assert response.status_code == 503
    assert rig.standin.requests() == []


# -- result pages ------------------------------------------------------------------------------------------


def test_result_pages_are_small_escaped_and_404_for_unknown_outcomes(rig: Rig) -> None:
    action_id = rig.buy(text="<script>alert(1)</script> & co")["actions"][0]["_id"]
    for outcome, phrase in (("success", "being confirmed"), ("cancel", "Nothing was charged")):
        response = rig.client.get(f"/checkout/{action_id}/{outcome}")
        body = response.get_data(as_text=True)
        assert response.status_code == 200
        assert phrase in body
        assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in body
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert len(body) < 2000
    assert rig.client.get(f"/checkout/{action_id}/refund").status_code == 404
    assert rig.client.get("/checkout/0123456789abcdef01234567/success").status_code == 404


def test_success_page_after_payment_says_paid(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    rig.deliver(rig.standin.complete(rig.open_checkout(action_id)))
    assert "<h1>Paid</h1>" in rig.client.get(f"/checkout/{action_id}/success").get_data(as_text=True)


# -- Stripe's webhook --------------------------------------------------------------------------------------


def test_a_paid_checkout_fires_one_payment_success_with_smoochs_payload(rig: Rig) -> None:
    message = rig.buy()
    action_id = message["actions"][0]["_id"]
    delivery = rig.standin.complete(rig.open_checkout(action_id))
    before = time.time()
    response = rig.deliver(delivery)
    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    [event] = rig.wait_payment_events(1)
    payment_intent = delivery.event["data"]["object"]["payment_intent"]
    assert payment_intent.startswith("pi_")
    assert event["trigger"] == "payment:success"
    assert event["app"] == {"_id": APP_ID}
    assert event["appUser"]["_id"] == rig.app_user["_id"]
    assert event["version"] == "v1.1"
    assert before <= event["timestamp"] <= time.time()
    [payment] = event["payments"]
    assert set(payment) == {"source", "message", "action", "charge"}
    assert payment["source"] == {"type": "telegram"}
    assert payment["charge"] == {"id": payment_intent}
    expected_action = {"_id": action_id, "type": "buy", "text": "Buy vinegar", "amount": 1000, "currency": "usd",
                       "state": "paid", "uri": f"{PUBLIC_URL}/checkout/{action_id}"}
    assert payment["action"] == expected_action
    sent = payment["message"]
    assert (sent["_id"], sent["role"], sent["type"], sent["text"]) == (
        message["_id"], "appMaker", "text", "Just put some vinegar on it")
    assert sent["actions"] == [expected_action]
    assert sent["received"] == message["received"] and sent["source"] == {"type": "api"}
    assert rig.store.get_message(message["_id"])["actions"][0]["state"] == "paid"
    assert rig.state(action_id) == "paid"
    assert rig.notices == [(CHAT_ID, "Thank you! Your payment of 10.00 USD was received.")]


def test_replays_and_a_second_event_for_a_paid_action_fire_nothing_more(rig: Rig) -> None:
    first = rig.buy()["actions"][0]["_id"]
    session_id = rig.open_checkout(first)
    delivery = rig.standin.complete(session_id)
    for _ in range(3):
        assert rig.deliver(delivery).status_code == 200
    later = rig.standin.complete(session_id, event_type="checkout.session.async_payment_succeeded")
    assert rig.deliver(later).status_code == 200
    # A payment for another action on the same conversation lane arrives after any duplicate would have.
    sentinel = rig.buy("Sentinel", 200)["actions"][0]["_id"]
    rig.deliver(rig.standin.complete(rig.open_checkout(sentinel)))
    events = rig.wait_payment_events(2)
    assert [e["payments"][0]["action"]["_id"] for e in events] == [first, sentinel]
    assert [text for _, text in rig.notices] == ["Thank you! Your payment of 10.00 USD was received.",
                                                 "Thank you! Your payment of 2.00 USD was received."]


def test_async_payment_fires_only_once_paid(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    session_id = rig.open_checkout(action_id)
    pending = rig.standin.complete(session_id, payment_status="unpaid")
    assert rig.deliver(pending).status_code == 200
    assert rig.state(action_id) == "offered"
    succeeded = rig.standin.complete(session_id, event_type="checkout.session.async_payment_succeeded")
    assert rig.deliver(succeeded).status_code == 200
    assert rig.state(action_id) == "paid"
    [event] = rig.wait_payment_events(1)
    assert event["payments"][0]["charge"]["id"] == succeeded.event["data"]["object"]["payment_intent"]


def _assert_nothing_changed(rig: Rig, action_id: str) -> None:
    assert rig.state(action_id) == "offered"
    assert rig.notices == []
    time.sleep(0.3)
    assert rig.payment_events() == []


@pytest.mark.parametrize("forge", ["other_secret", "tampered_body", "missing", "garbage_header", "stale", "v0_only"])
def test_bad_or_missing_signatures_are_refused_and_change_nothing(rig: Rig, forge: str) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    delivery = rig.standin.complete(rig.open_checkout(action_id))
    body, headers = delivery.body, dict(delivery.headers)
    if forge == "other_secret":
        headers["Stripe-Signature"] = stripe_signature(body, "whsec_attacker")
    elif forge == "tampered_body":
        body = body.replace(b'"amount_total": 1000', b'"amount_total": 1')
        assert body != delivery.body
    elif forge == "missing":
        del headers["Stripe-Signature"]
    elif forge == "garbage_header":
        headers["Stripe-Signature"] = "nonsense"
    elif forge == "stale":
        headers["Stripe-Signature"] = stripe_signature(body, WEBHOOK_SECRET, int(time.time()) - 3600)
    else:
        headers["Stripe-Signature"] = headers["Stripe-Signature"].replace("v1=", "v0=")
    response = rig.client.post("/stripe/webhook", data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_signature"
    _assert_nothing_changed(rig, action_id)


def test_webhook_without_a_configured_secret_is_refused(make_rig: Any) -> None:
    rig = make_rig(stripe_webhook_secret=None)
    action_id = rig.buy()["actions"][0]["_id"]
    delivery = rig.standin.event("checkout.session.completed", {"id": "cs_test_x", "object": "checkout.session"})
    response = rig.deliver(delivery)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "webhook_not_configured"
    _assert_nothing_changed(rig, action_id)


def test_events_for_sessions_we_did_not_create_are_acknowledged_and_ignored(rig: Rig) -> None:
    message = rig.buy()
    action_id = message["actions"][0]["_id"]
    ours = rig.open_checkout(action_id)
    forged = dict(rig.standin.sessions[ours], id="cs_test_not_ours", status="complete", payment_status="paid",
                  payment_intent="pi_not_ours")
    assert rig.deliver(rig.standin.event("checkout.session.completed", forged)).status_code == 200
    stranger = {"id": "cs_test_stranger", "object": "checkout.session", "payment_status": "paid",
                "metadata": {}, "amount_total": 5, "currency": "usd"}
    assert rig.deliver(rig.standin.event("checkout.session.completed", stranger)).status_code == 200
    mismatched = dict(rig.standin.sessions[ours], payment_status="paid", status="complete",
                      metadata={**rig.standin.sessions[ours]["metadata"], "action_id": "f" * 24})
    assert rig.deliver(rig.standin.event("checkout.session.completed", mismatched)).status_code == 200
    _assert_nothing_changed(rig, action_id)


def test_other_event_types_are_acknowledged_and_ignored(rig: Rig) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    session = dict(rig.standin.sessions[rig.open_checkout(action_id)], payment_status="paid", status="complete")
    for event_type in ("checkout.session.expired", "payment_intent.succeeded", "charge.succeeded",
                       "checkout.session.async_payment_failed"):
        response = rig.deliver(rig.standin.event(event_type, session))
        assert response.status_code == 200
        assert response.get_json() == {"received": True}
    _assert_nothing_changed(rig, action_id)


def test_a_session_whose_amount_differs_from_the_action_is_not_marked_paid(rig: Rig, caplog: Any) -> None:
    action_id = rig.buy()["actions"][0]["_id"]
    session_id = rig.open_checkout(action_id)
    rig.standin.sessions[session_id]["amount_total"] = 1
    assert rig.deliver(rig.standin.complete(session_id)).status_code == 200
    assert "not marked paid" in caplog.text
    _assert_nothing_changed(rig, action_id)


def test_an_oversized_or_non_json_body_is_refused(rig: Rig) -> None:
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    delivery = rig.standin.sign("evt_big", big)
    assert rig.deliver(delivery).status_code == 413
    assert rig.deliver(rig.standin.sign("evt_bad", b"not json")).status_code == 400


def test_confirmation_template_can_name_the_item_and_falls_back_when_broken(make_rig: Any) -> None:
    rig = make_rig(payment_confirmation="Paid {amount} for {item}. Merci!")
    rig.deliver(rig.standin.complete(rig.open_checkout(rig.buy("Tacos", 1250, "eur")["actions"][0]["_id"])))
    assert rig.notices == [(CHAT_ID, "Paid 12.50 EUR for Tacos. Merci!")]
    broken = make_rig(payment_confirmation="Paid {total}")
    broken.deliver(broken.standin.complete(broken.open_checkout(broken.buy(amount=300)["actions"][0]["_id"])))
    assert broken.notices == [(CHAT_ID, "Thank you! Your payment of 3.00 USD was received.")]


def test_no_secret_appears_in_any_response_or_log(rig: Rig, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    message = rig.buy()
    action_id = message["actions"][0]["_id"]
    for path in (f"/checkout/{action_id}", f"/checkout/{action_id}", f"/checkout/{action_id}/success",
                 f"/checkout/{action_id}/cancel", "/checkout/0123456789abcdef01234567"):
        response = rig.client.get(path)
        bodies.append(response.get_data(as_text=True) + json.dumps(dict(response.headers)))
    [session_id] = list(rig.standin.sessions)
    delivery = rig.standin.complete(session_id)
    for headers in (delivery.headers, {"Stripe-Signature": "t=1,v1=00"}):
        response = rig.client.post("/stripe/webhook", data=delivery.body, headers=headers)
        bodies.append(response.get_data(as_text=True))
    rig.standin.fail_next(500, times=3)
    rig.standin.expire(session_id)
    bodies.append(rig.client.get(f"/checkout/{rig.buy()['actions'][0]['_id']}").get_data(as_text=True))
    rig.wait_payment_events(1)
    assert rig.payment_events()
    everything = "\n".join(bodies) + caplog.text + json.dumps(rig.payment_events())
    for secret in (STRIPE_KEY, WEBHOOK_SECRET, KEY_SECRET):
        assert secret not in everything
    assert "stripe" in {record.name.split(".")[0] for record in caplog.records}
