"""A buy button end to end: real Errbot, backend and Relay plugin, the Telegram sandbox, the Stripe stand-in."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from sandbox import Sandbox
from tests.helpers.backend_bot import TOKEN, wait_until
from tests.helpers.receiver import Receiver
from tests.helpers.relay_stack import RelayStack, start_relay_stack
from tests.helpers.stripe_standin import StripeStandIn

CUSTOMER = 6061
STRIPE_KEY = "sk_test_e2e_standin_key_0123456789"
WEBHOOK_SECRET = "whsec_e2e_standin_secret"


@pytest.fixture
def paying_stack() -> Iterator[tuple[RelayStack, StripeStandIn]]:
    """The relay stack with payments configured against the stand-in."""
    with StripeStandIn(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as standin:
        sandbox = Sandbox(host="127.0.0.1", port=0)
        sandbox.start()
        sandbox.add_bot(TOKEN, username="relay_test_bot")
        receiver = Receiver()
        stack = start_relay_stack(sandbox, receiver, extra_config={
            "STRIPE_API_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_BASE": standin.url,
        })
        try:
            yield stack, standin
        finally:
            if stack.bot.thread.is_alive():
                stack.bot.stop()
            receiver.stop()
            sandbox.stop()


def test_a_buy_button_is_paid_once_and_confirmed_in_telegram(paying_stack: tuple[RelayStack, StripeStandIn]) -> None:
    stack, standin = paying_stack
    stack.add_webhook(["payment:success", "message:appUser"])
    stack.sandbox.push_text(CUSTOMER, "I'd like the vinegar", first_name="Ada")
    user_id = stack.wait_event("message:appUser")["appUser"]["_id"]

    response = stack.request("POST", f"/appusers/{user_id}/messages", json={
        "role": "appMaker", "type": "text", "text": "Here you go",
        "actions": [{"type": "buy", "text": "Buy vinegar", "amount": 1000, "currency": "usd"}]})
    assert response.status_code == 201, response.text
    action = response.json()["message"]["actions"][0]
    link = f"{stack.http_url}/checkout/{action['_id']}"
    assert action["uri"] == link

    sent = stack.sandbox.wait_for(lambda r: r["method"] == "sendMessage" and r["status"] == 200
                                  and "reply_markup" in r["params"])
    assert sent["params"]["reply_markup"]["inline_keyboard"] == [[{"text": "Buy vinegar", "url": link}]]

    checkout = requests.get(link, allow_redirects=False, timeout=10)
    assert checkout.status_code == 303
    assert checkout.headers["Location"].startswith(f"{standin.url}/pay/cs_test_")
    session_id = checkout.headers["Location"].rsplit("/", 1)[1]
    assert requests.get(link, allow_redirects=False, timeout=10).headers["Location"] == checkout.headers["Location"]

    delivery = standin.complete(session_id)
    for _ in range(2):
        answer = requests.post(f"{stack.http_url}/stripe/webhook", data=delivery.body, headers=delivery.headers,
                               timeout=10)
        assert answer.status_code == 200, answer.text
    event = stack.wait_event("payment:success")
    [payment] = event["payments"]
    assert payment["action"]["_id"] == action["_id"] and payment["action"]["state"] == "paid"
    assert payment["charge"]["id"] == delivery.event["data"]["object"]["payment_intent"]
    confirmation = "Thank you! Your payment of 10.00 USD was received."
    wait_until(lambda: any(m.get("text") == confirmation for m in stack.sandbox.sent(chat_id=CUSTOMER)), 15,
               "the confirmation never reached Telegram")

    time.sleep(1.0)
    assert len(stack.events("payment:success")) == 1
    assert [m.get("text") for m in stack.sandbox.sent(chat_id=CUSTOMER)].count(confirmation) == 1
    assert len(standin.creations()) == 1
    paid_page = requests.get(link, allow_redirects=False, timeout=10)
    assert paid_page.status_code == 200 and "Paid" in paid_page.text
