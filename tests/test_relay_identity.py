"""A Telegram user stays one appUser, with the same _id, across restarts and token rotation."""

import tempfile

from sandbox import Sandbox
from tests.helpers.backend_bot import OTHER_TOKEN, TOKEN, wait_until
from tests.helpers.receiver import Receiver
from tests.helpers.relay_stack import start_relay_stack

CUSTOMER = 9100


def _app_user_of_last_message(stack, count):
    wait_until(lambda: len(stack.events("message:appUser")) >= count, 15, "message not relayed")
    return stack.events("message:appUser")[count - 1]["appUser"]["_id"]


def test_app_user_id_survives_restart_and_token_rotation():
    sandbox = Sandbox()
    sandbox.start()
    sandbox.add_bot(TOKEN, username="relay_test_bot")
    sandbox.add_bot(OTHER_TOKEN, username="rotated_bot")
    receiver = Receiver()
    data_dir = tempfile.mkdtemp(prefix="relay-identity-")
    stack = start_relay_stack(sandbox, receiver, data_dir=data_dir)
    try:
        stack.add_webhook(["message:appUser"])
        sandbox.push_text(CUSTOMER, "first")
        first = _app_user_of_last_message(stack, 1)
        stack.bot.stop()

        stack = start_relay_stack(sandbox, receiver, data_dir=data_dir)
        sandbox.push_text(CUSTOMER, "after restart")
        assert _app_user_of_last_message(stack, 2) == first

        assert stack.request("POST", "/integrations", json={"type": "telegram", "token": OTHER_TOKEN}).status_code == 201
        sandbox.push_text(CUSTOMER, "after rotation")
        assert _app_user_of_last_message(stack, 3) == first
        assert stack.request("GET", f"/appusers/{first}/messages").json()["messages"][0]["text"] == "first"
    finally:
        if stack.bot.thread.is_alive():
            stack.bot.stop()
        receiver.stop()
        sandbox.stop()
