"""The official `smooch` Python client (5.34.0), unchanged, drives our API: webhooks, integration, messages."""

import smooch
from smooch.rest import ApiException

from smoochrelay.auth import make_jwt
from tests.helpers.backend_bot import OTHER_TOKEN, TOKEN, wait_until
from tests.helpers.relay_stack import APP_ID, KEY_ID, KEY_SECRET

pytest_plugins = ["tests.helpers.relay_stack"]

CUSTOMER = 7001


def test_smooch_client_end_to_end(relay_stack):
    stack = relay_stack
    client = stack.smooch_api_client()
    webhooks = smooch.WebhookApi(client)
    created = webhooks.create_webhook(APP_ID, smooch.WebhookCreate(
        target=stack.receiver.url + "/hook", triggers=["message:appUser", "postback", "message:appMaker"]))
    assert created.webhook.secret and created.webhook.target.endswith("/hook")
    assert [w.id for w in webhooks.list_webhooks(APP_ID).webhooks] == [created.webhook.id]

    stack.sandbox.add_bot(OTHER_TOKEN, username="rotated_bot")
    integration = smooch.IntegrationApi(client).create_integration(
        APP_ID, smooch.IntegrationCreate(type="telegram", token=OTHER_TOKEN))
    assert integration.integration.username == "rotated_bot"
    assert stack.bot.backend.telegram_status()["username"] == "rotated_bot"

    stack.sandbox.push_text(CUSTOMER, "Hi there")
    event = stack.wait_event("message:appUser")
    user_id = event["appUser"]["_id"]
    assert smooch.AppUserApi(client).get_app_user(APP_ID, user_id).app_user.id == user_id

    conversations = smooch.ConversationApi(client)
    response = conversations.post_message(APP_ID, user_id, smooch.MessagePost(
        role="appMaker", type="text", text="Pick one",
        actions=[smooch.Action(type="postback", text="Yes", payload="YES"),
                 smooch.Action(type="link", text="Site", uri="https://example.com")]))
    assert response.message.text == "Pick one" and response.conversation.id
    carousel = conversations.post_message(APP_ID, user_id, smooch.MessagePost(
        role="appMaker", type="carousel", items=[smooch.MessageItem(
            title="Tacos", description="Crunchy", actions=[smooch.Action(type="postback", text="Order", payload="T")])]))
    assert carousel.message.type == "carousel"
    history = conversations.get_messages(APP_ID, user_id)
    assert [m.role for m in history.messages] == ["appUser", "appMaker", "appMaker"]
    stack.wait_event("message:appMaker")
    sent = stack.sandbox.wait_for(lambda r: r["method"] == "sendMessage" and r["token"] == OTHER_TOKEN
                                  and "Pick one" in r["params"].get("text", ""))
    assert sent["params"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "Yes"


def test_smooch_client_with_a_jwt_and_with_bad_credentials(relay_stack):
    stack = relay_stack
    jwt_client = stack.smooch_api_client(jwt=make_jwt(KEY_ID, KEY_SECRET))
    assert smooch.WebhookApi(jwt_client).list_webhooks(APP_ID).webhooks == []
    bad = stack.smooch_api_client(jwt=make_jwt(KEY_ID, "not-the-secret"))
    try:
        smooch.WebhookApi(bad).list_webhooks(APP_ID)
    except ApiException as exc:
        assert exc.status == 401
    else:
        raise AssertionError("a JWT signed with the wrong secret was accepted")


def test_bad_integration_token_is_refused_without_echo_and_the_old_connection_stays(relay_stack):
    stack = relay_stack
    client = stack.smooch_api_client()
    bad_token = "999999:not-a-token-telegram-knows-about-xyz"
    try:
        smooch.IntegrationApi(client).create_integration(
            APP_ID, smooch.IntegrationCreate(type="telegram", token=bad_token))
    except ApiException as exc:
        assert exc.status == 400
        assert bad_token not in exc.body
    else:
        raise AssertionError("a token Telegram refuses was accepted")
    wait_until(lambda: stack.bot.backend.telegram_status()["connected"], 5, "the old connection was lost")
    stack.sandbox.push_text(CUSTOMER, "still here")
    assert stack.app_user_id(CUSTOMER)
    assert stack.sandbox.requests("getUpdates")[-1]["token"] == TOKEN
