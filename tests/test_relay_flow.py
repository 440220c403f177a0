"""End to end through real Errbot, the real backend, the sandbox and a real webhook receiver."""

from tests.helpers.backend_bot import TOKEN, wait_until
from tests.helpers.relay_stack import APP_ID

pytest_plugins = ["tests.helpers.relay_stack"]

CUSTOMER = 5551


def test_text_reaches_the_business_and_the_reply_reaches_the_user(relay_stack):
    stack = relay_stack
    hook = stack.add_webhook(["*"])
    stack.sandbox.push_text(CUSTOMER, "Hello, do you ship to Canada?", first_name="Ada", last_name="L")
    event = stack.wait_event("message:appUser")
    assert event["app"] == {"_id": APP_ID}
    assert event["version"] == "v1.1"
    [message] = event["messages"]
    assert message["type"] == "text" and message["text"] == "Hello, do you ship to Canada?"
    assert message["role"] == "appUser" and message["source"]["type"] == "telegram"
    assert event["appUser"]["conversationStarted"] is True
    request = stack.receiver.requests[0]
    assert request.header("X-API-Key") == hook["secret"]

    user_id = event["appUser"]["_id"]
    response = stack.request("POST", f"/appusers/{user_id}/messages", json={
        "role": "appMaker", "type": "text", "text": "Yes, *we do*!",
        "actions": [{"type": "postback", "text": "Talk to a human", "payload": "HUMAN" * 30},
                    {"type": "link", "text": "Rates", "uri": "https://example.com/rates"}]})
    assert response.status_code == 201, response.text
    sent = stack.sandbox.wait_for(lambda r: r["method"] == "sendMessage" and r["status"] == 200)
    assert "<b>we do</b>" in sent["params"]["text"]
    keyboard = sent["params"]["reply_markup"]["inline_keyboard"]
    assert keyboard[1][0]["url"] == "https://example.com/rates"
    stack.wait_event("message:appMaker")
    stack.wait_event("message:delivery:channel")

    [telegram_message] = [m for m in stack.sandbox.sent(chat_id=CUSTOMER) if "reply_markup" in m]
    stack.sandbox.press_button(CUSTOMER, telegram_message["message_id"], "Talk to a human")
    postback = stack.wait_event("postback")
    assert postback["postbacks"][0]["action"]["payload"] == "HUMAN" * 30
    assert postback["postbacks"][0]["message"]["_id"] == response.json()["message"]["_id"]


def test_customer_typing_commands_is_relayed_not_answered(relay_stack):
    stack = relay_stack
    stack.add_webhook(["message:appUser"])
    for text in ("!help", "!relay key create evil", "!telegram token 1:abc", "!plugin list"):
        stack.sandbox.push_text(CUSTOMER, text)
    wait_until(lambda: len(stack.events("message:appUser")) == 4, 15, "not every command was relayed")
    assert [e["messages"][0]["text"] for e in stack.events("message:appUser")] == [
        "!help", "!relay key create evil", "!telegram token 1:abc", "!plugin list"]
    assert stack.sandbox.sent(chat_id=CUSTOMER) == []
    assert stack.service.store.list_api_keys()[0].key_id == "app_testkey"
    assert len(stack.service.store.list_api_keys()) == 1


def test_integration_delete_disconnects_and_queued_messages_wait_for_a_new_token(relay_stack):
    stack = relay_stack
    stack.sandbox.push_text(CUSTOMER, "hello")
    user_id = stack.app_user_id(CUSTOMER)
    [integration] = stack.request("GET", "/integrations").json()["integrations"]
    assert integration["type"] == "telegram" and integration["status"] == "active"
    assert integration["username"] == "relay_test_bot"
    assert stack.request("DELETE", f"/integrations/{integration['_id']}").status_code == 200
    assert stack.request("GET", "/integrations").json() == {"integrations": []}
    assert stack.bot.backend.telegram_status()["connected"] is False

    accepted = stack.request("POST", f"/appusers/{user_id}/messages",
                             json={"role": "appMaker", "type": "text", "text": "sent while disconnected"})
    assert accepted.status_code == 201
    created = stack.request("POST", "/integrations", json={"type": "telegram", "token": TOKEN})
    assert created.status_code == 201 and created.json()["integration"]["_id"] == integration["_id"]
    stack.sandbox.wait_for(lambda r: r["method"] == "sendMessage" and r["status"] == 200
                           and r["params"]["text"] == "sent while disconnected", timeout=20)


def test_include_full_app_user_and_include_client_shape_the_payload(relay_stack):
    stack = relay_stack
    stack.request("POST", "/webhooks", json={"target": stack.receiver.url + "/full", "triggers": ["message:appUser"],
                                             "includeFullAppUser": True, "includeClient": True})
    stack.add_webhook(["message:appUser"])
    stack.sandbox.push_text(CUSTOMER, "hi", first_name="Ada", username="ada")
    wait_until(lambda: stack.receiver.count == 2, 15, "both webhooks were not called")
    by_path = {r.path: r.json for r in stack.receiver.requests}
    full, truncated = by_path["/full"], by_path["/hook"]
    assert full["appUser"]["givenName"] == "Ada" and full["appUser"]["clients"][0]["platform"] == "telegram"
    assert full["client"]["platform"] == "telegram" and full["client"]["externalId"] == str(CUSTOMER)
    assert set(truncated["appUser"]) == {"_id", "conversationStarted"} and "client" not in truncated
    assert full["messages"] == truncated["messages"]


def test_webhook_update_and_integration_when_telegram_is_unreachable(relay_stack):
    stack = relay_stack
    hook = stack.add_webhook(["message:appUser"])
    updated = stack.request("PUT", f"/webhooks/{hook['_id']}", json={"triggers": ["postback"],
                                                                     "includeFullAppUser": True})
    assert updated.status_code == 200, updated.text
    assert updated.json()["webhook"]["triggers"] == ["postback"]
    assert updated.json()["webhook"]["includeFullAppUser"] is True
    assert stack.request("PUT", f"/webhooks/{hook['_id']}", json={"target": "ftp://x"}).status_code == 400

    stack.sandbox.add_bot("555:AAunreachable-check", username="other_bot")
    stack.sandbox.fail_next("getMe", 502, "Bad Gateway", count=10)
    response = stack.request("POST", "/integrations", json={"type": "telegram", "token": "555:AAunreachable-check"})
    assert response.status_code == 502 and response.json()["error"]["code"] == "channel_error"
    assert "555:AAunreachable-check" not in response.text
    assert stack.bot.backend.telegram_status()["connected"] is True
