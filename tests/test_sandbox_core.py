"""The sandbox over plain HTTP: auth, getUpdates offset semantics, sendMessage checks, faults, request log."""

import threading
import time

import pytest
import requests

from sandbox import Sandbox
from sandbox.apierror import ApiError
from sandbox.faults import RateLimiter

TOKEN = "123456:TEST-token_abc"


@pytest.fixture
def sb():
    sandbox = Sandbox().start()
    sandbox.add_bot(TOKEN, username="relay_test_bot", first_name="Relay")
    yield sandbox
    sandbox.stop()


def call(sb, method, token=TOKEN, **params):
    response = requests.post(f"{sb.url}/bot{token}/{method}", data=params, timeout=10)
    return response.status_code, response.json()


def call_json(sb, method, **params):
    response = requests.post(f"{sb.url}/bot{TOKEN}/{method}", json=params, timeout=10)
    return response.status_code, response.json()


def test_get_me_over_get_and_post(sb):
    assert requests.get(f"{sb.url}/bot{TOKEN}/getMe", timeout=5).json()["result"]["username"] == "relay_test_bot"
    status, body = call(sb, "getMe")
    assert status == 200 and body["ok"] is True
    assert body["result"] == {"id": 123456, "is_bot": True, "first_name": "Relay", "username": "relay_test_bot",
                              "can_join_groups": True, "can_read_all_group_messages": False,
                              "supports_inline_queries": False, "can_connect_to_business": False,
                              "has_main_web_app": False}


def test_unknown_and_revoked_tokens_get_401(sb):
    assert call(sb, "getMe", token="999:nope") == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    sb.revoke(TOKEN)
    assert call(sb, "getMe")[0] == 401


def test_unknown_method_is_404(sb):
    assert call(sb, "sendTelepathy") == (
        404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})


def test_method_names_are_case_insensitive(sb):
    assert call(sb, "getme")[0] == 200
    assert sb.requests("getMe")[0]["method"] == "getMe"


def test_offset_confirms_and_forgets(sb):
    first = sb.push_text(7, "one")["update_id"]
    sb.push_text(7, "two")
    sb.push_text(7, "three")
    _, body = call(sb, "getUpdates")
    assert [u["update_id"] for u in body["result"]] == [first, first + 1, first + 2]
    _, body = call(sb, "getUpdates", offset=first + 2)
    assert [u["message"]["text"] for u in body["result"]] == ["three"]
    assert sb.offset_acknowledged == first + 1
    _, body = call(sb, "getUpdates", offset=first)
    assert [u["update_id"] for u in body["result"]] == [first + 2], "confirmed updates are forgotten"
    _, body = call(sb, "getUpdates", offset=first + 3)
    assert body["result"] == [] and sb.pending_updates() == 0


def test_limit_and_negative_offset(sb):
    ids = [sb.push_text(7, str(i))["update_id"] for i in range(5)]
    _, body = call(sb, "getUpdates", limit=2)
    assert [u["update_id"] for u in body["result"]] == ids[:2]
    _, body = call(sb, "getUpdates", offset=-1)
    assert [u["update_id"] for u in body["result"]] == ids[-1:]


def test_update_shapes_and_message_ids(sb):
    update = sb.push_text(42, "/start PAYLOAD", first_name="Ann", last_name="Lee", username="ann",
                          language_code="de")
    message = update["message"]
    assert message["from"] == {"id": 42, "is_bot": False, "first_name": "Ann", "last_name": "Lee",
                               "username": "ann", "language_code": "de"}
    assert message["chat"] == {"id": 42, "first_name": "Ann", "last_name": "Lee", "username": "ann",
                               "type": "private"}
    assert message["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    assert abs(message["date"] - time.time()) < 5
    assert sb.push_text(42, "again")["message"]["message_id"] == message["message_id"] + 1
    assert sb.update_available_at[update["update_id"]] <= time.time()


def test_long_poll_wakes_on_push(sb):
    sb.push_text(1, "make the chat")
    call(sb, "getUpdates", offset=sb.push_text(1, "x")["update_id"] + 1)

    def later():
        time.sleep(0.3)
        sb.push_text(1, "wake up")

    threading.Thread(target=later, daemon=True).start()
    started = time.monotonic()
    _, body = call(sb, "getUpdates", timeout=20)
    assert time.monotonic() - started < 10
    assert [u["message"]["text"] for u in body["result"]] == ["wake up"]


def test_long_poll_times_out_empty(sb):
    started = time.monotonic()
    _, body = call(sb, "getUpdates", timeout=1)
    assert body == {"ok": True, "result": []}
    assert time.monotonic() - started >= 0.9


def test_push_many_fast_path(sb):
    updates = sb.push_many((i % 50 + 1, f"m{i}") for i in range(2000))
    assert len(updates) == 2000
    ids = [u["update_id"] for u in updates]
    assert ids == list(range(ids[0], ids[0] + 2000))
    got, offset = [], None
    while len(got) < 2000:
        _, body = call(sb, "getUpdates", **({"offset": offset} if offset else {}))
        assert 0 < len(body["result"]) <= 100
        got += [u["update_id"] for u in body["result"]]
        offset = got[-1] + 1
    assert got == ids


def test_send_message_success_and_record(sb):
    sb.push_text(5, "hi")
    status, body = call(sb, "sendMessage", chat_id=5, text="<b>Hi</b> &amp; welcome", parse_mode="HTML")
    assert status == 200
    message = body["result"]
    assert message["text"] == "Hi & welcome"
    assert message["entities"] == [{"offset": 0, "length": 2, "type": "bold"}]
    assert message["from"]["is_bot"] is True and message["chat"]["id"] == 5
    assert sb.sent(5) == [message]
    record = sb.requests("sendMessage", chat_id=5)[0]
    assert record["params"] == {"chat_id": 5, "text": "<b>Hi</b> &amp; welcome", "parse_mode": "HTML"}
    assert record["token"] == TOKEN and record["status"] == 200 and isinstance(record["t"], float)


def test_json_body_is_accepted(sb):
    sb.push_text(5, "hi")
    status, body = call_json(sb, "sendMessage", chat_id=5, text="json",
                             reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]})
    assert status == 200 and body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"


@pytest.mark.parametrize(("params", "description"), [
    ({"chat_id": 999, "text": "x"}, "Bad Request: chat not found"),
    ({"text": "x"}, "Bad Request: chat_id is empty"),
    ({"chat_id": 5}, "Bad Request: message text is empty"),
    ({"chat_id": 5, "text": "   "}, "Bad Request: message text is empty"),
    ({"chat_id": 5, "text": "x" * 4097}, "Bad Request: message is too long"),
    ({"chat_id": 5, "text": "<b>x", "parse_mode": "HTML"},
     "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""),
    ({"chat_id": 5, "text": "<blink>x</blink>", "parse_mode": "HTML"},
     "Bad Request: can't parse entities: Unsupported start tag \"blink\" at byte offset 0"),
    ({"chat_id": 5, "text": "<b><i>x</b></i>", "parse_mode": "HTML"},
     "Bad Request: can't parse entities: Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""),
    ({"chat_id": 5, "text": "1 < 2", "parse_mode": "HTML"},
     "Bad Request: can't parse entities: Unclosed start tag at byte offset 2"),
    ({"chat_id": 5, "text": "<span>x</span>", "parse_mode": "HTML"},
     "Bad Request: can't parse entities: Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"),
])
def test_send_message_rejections(sb, params, description):
    sb.push_text(5, "hi")
    status, body = call(sb, "sendMessage", **params)
    assert (status, body) == (400, {"ok": False, "error_code": 400, "description": description})
    assert sb.sent() == []


def test_length_is_counted_after_entity_parsing(sb):
    sb.push_text(5, "hi")
    text = "<b>" + "a" * 4090 + "</b>&lt;&gt;&amp;&quot;"
    status, body = call(sb, "sendMessage", chat_id=5, text=text, parse_mode="HTML")
    assert status == 200 and len(body["result"]["text"]) == 4094
    assert call(sb, "sendMessage", chat_id=5, text="<i>" + "a" * 4097 + "</i>", parse_mode="HTML")[0] == 400


def test_supported_html_tags_nest(sb):
    sb.push_text(5, "hi")
    text = ('<b>b<i>i<u>u<s>s</s></u></i></b> <a href="https://e.org/?a=1&amp;b=2">l</a> <code>c</code> '
            '<pre>p</pre> <tg-spoiler>t</tg-spoiler> <span class="tg-spoiler">s</span> <blockquote>q</blockquote>'
            ' <strong>1</strong><em>2</em><ins>3</ins><strike>4</strike><del>5</del>')
    status, body = call(sb, "sendMessage", chat_id=5, text=text, parse_mode="HTML")
    assert status == 200, body
    kinds = {e["type"] for e in body["result"]["entities"]}
    assert kinds == {"bold", "italic", "underline", "strikethrough", "text_link", "code", "pre", "spoiler",
                     "blockquote"}
    link = next(e for e in body["result"]["entities"] if e["type"] == "text_link")
    assert link["url"] == "https://e.org/?a=1&b=2"


@pytest.mark.parametrize(("markup", "ok"), [
    ({"inline_keyboard": [[{"text": "A", "callback_data": "x" * 64}]]}, True),
    ({"inline_keyboard": [[{"text": "A", "callback_data": "x" * 65}]]}, False),
    ({"inline_keyboard": [[{"text": "A", "callback_data": "é" * 33}]]}, False),
    ({"inline_keyboard": [[{"text": "A", "callback_data": ""}]]}, False),
    ({"inline_keyboard": [[{"text": "A", "url": "https://example.org"}]]}, True),
    ({"inline_keyboard": [[{"text": "A", "url": "tg://resolve?domain=x"}]]}, True),
    ({"inline_keyboard": [[{"text": "A", "url": "ftp://example.org"}]]}, False),
    ({"inline_keyboard": [[{"text": "A"}]]}, False),
    ({"inline_keyboard": [[{"text": "A", "url": "https://e.org", "callback_data": "x"}]]}, False),
    ({"inline_keyboard": [{"text": "A", "callback_data": "x"}]}, False),
    ({"keyboard": [[{"text": "Where?", "request_location": True}, "Plain"]], "one_time_keyboard": True,
      "resize_keyboard": True}, True),
    ({"keyboard": [[{"request_location": True}]]}, False),
    ({"remove_keyboard": True}, True),
    ({"something": 1}, False),
])
def test_reply_markup_validation(sb, markup, ok):
    sb.push_text(5, "hi")
    status, body = call_json(sb, "sendMessage", chat_id=5, text="pick", reply_markup=markup)
    assert (status == 200) is ok, body
    if not ok:
        assert body["description"].startswith("Bad Request: ")


def test_callback_data_65_bytes_is_button_data_invalid(sb):
    sb.push_text(5, "hi")
    status, body = call_json(sb, "sendMessage", chat_id=5, text="pick",
                             reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "x" * 65}]]})
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")


def test_fail_next_counts_and_wildcard(sb):
    sb.push_text(5, "hi")
    sb.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3, count=2)
    for _ in range(2):
        assert call(sb, "sendMessage", chat_id=5, text="x") == (429, {
            "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3}})
    assert call(sb, "sendMessage", chat_id=5, text="x")[0] == 200
    sb.fail_next("*", 502, "Bad Gateway")
    assert call(sb, "getMe") == (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    assert call(sb, "getMe")[0] == 200


def test_block_user(sb):
    sb.push_text(5, "hi")
    sb.block_user(5)
    assert call(sb, "sendMessage", chat_id=5, text="x") == (
        403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    assert call(sb, "sendChatAction", chat_id=5, action="typing")[0] == 403
    sb.unblock_user(5)
    assert call(sb, "sendMessage", chat_id=5, text="x")[0] == 200


def test_drop_next_closes_connection(sb):
    sb.drop_next("getMe")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{sb.url}/bot{TOKEN}/getMe", timeout=5)
    assert call(sb, "getMe")[0] == 200
    assert [r["status"] for r in sb.requests("getMe")] == [0, 200]


def test_enforce_limits_answers_429_with_retry_after(sb):
    sb.enforce_limits = True
    sb.push_text(1, "hi")
    answers = [call(sb, "sendMessage", chat_id=1, text="x") for _ in range(20)]
    assert answers[0][0] == 200
    refused = [body for status, body in answers if status == 429]
    assert refused, "a burst to one chat must be refused"
    assert refused[0]["parameters"]["retry_after"] >= 1
    assert refused[0]["description"] == f"Too Many Requests: retry after {refused[0]['parameters']['retry_after']}"


def test_rate_limiter_overall_and_per_chat():
    limiter = RateLimiter(overall_per_second=30, chat_burst=3, chat_rate=1.0)
    for chat in range(30):
        limiter.check(chat, now=100.0)
    with pytest.raises(ApiError) as caught:
        limiter.check(99, now=100.5)
    assert (caught.value.status, caught.value.retry_after) == (429, 1)
    limiter.check(99, now=101.0)
    for _ in range(3):
        limiter.check(77, now=102.0)
    with pytest.raises(ApiError):
        limiter.check(77, now=102.1)
    limiter.check(77, now=103.2)


def test_limits_off_by_default(sb):
    sb.push_text(1, "hi")
    assert {call(sb, "sendMessage", chat_id=1, text="x")[0] for _ in range(40)} == {200}


def test_wait_for_finds_and_times_out(sb):
    sb.push_text(5, "hi")
    threading.Timer(0.2, lambda: call(sb, "sendMessage", chat_id=5, text="later")).start()
    found = sb.wait_for(lambda r: r["method"] == "sendMessage" and r["params"].get("text") == "later", timeout=10)
    assert found["status"] == 200
    with pytest.raises(AssertionError):
        sb.wait_for(lambda r: r["method"] == "deleteMessage", timeout=0.2)


def test_chat_action_edit_delete(sb):
    sb.push_text(5, "hi")
    assert call(sb, "sendChatAction", chat_id=5, action="typing") == (200, {"ok": True, "result": True})
    assert call(sb, "sendChatAction", chat_id=5, action="dancing")[0] == 400
    _, body = call_json(sb, "sendMessage", chat_id=5, text="v1",
                        reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]})
    mid = body["result"]["message_id"]
    status, body = call(sb, "editMessageText", chat_id=5, message_id=mid, text="v2")
    assert status == 200 and body["result"]["text"] == "v2" and "reply_markup" not in body["result"]
    assert call(sb, "editMessageText", chat_id=5, message_id=mid, text="v2")[1]["description"].startswith(
        "Bad Request: message is not modified")
    status, body = call_json(sb, "editMessageReplyMarkup", chat_id=5, message_id=mid,
                             reply_markup={"inline_keyboard": [[{"text": "B", "callback_data": "b"}]]})
    assert status == 200 and sb.sent(5)[0]["reply_markup"]["inline_keyboard"][0][0]["text"] == "B"
    assert call(sb, "editMessageText", chat_id=5, message_id=999, text="x")[1]["description"] == (
        "Bad Request: message to edit not found")
    assert call(sb, "deleteMessage", chat_id=5, message_id=mid) == (200, {"ok": True, "result": True})
    assert sb.sent(5) == []
    assert call(sb, "deleteMessage", chat_id=5, message_id=mid)[1]["description"] == (
        "Bad Request: message to delete not found")


def test_location_checks(sb):
    sb.push_text(5, "hi")
    status, body = call(sb, "sendLocation", chat_id=5, latitude=52.5, longitude=13.4)
    assert status == 200 and body["result"]["location"] == {"latitude": 52.5, "longitude": 13.4}
    assert call(sb, "sendLocation", chat_id=5, latitude=91, longitude=0)[0] == 400
    assert call(sb, "sendLocation", chat_id=5, latitude=0, longitude=-181)[0] == 400


def test_webhook_record_and_conflict(sb):
    assert call(sb, "setWebhook", url="https://example.org/hook")[1] == {"ok": True, "result": True}
    info = call(sb, "getWebhookInfo")[1]["result"]
    assert info["url"] == "https://example.org/hook" and info["pending_update_count"] == 0
    assert call(sb, "getUpdates")[0] == 409
    assert call(sb, "deleteWebhook")[1] == {"ok": True, "result": True}
    assert call(sb, "getUpdates")[0] == 200


def test_commands_roundtrip(sb):
    commands = [{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}]
    assert call_json(sb, "setMyCommands", commands=commands)[0] == 200
    assert call(sb, "getMyCommands")[1]["result"] == commands
    assert call_json(sb, "setMyCommands", commands=[{"command": "Bad Cmd", "description": "x"}])[1][
        "description"] == "Bad Request: BOT_COMMAND_INVALID"


def test_callbacks_require_a_real_button(sb):
    sb.push_text(5, "hi")
    _, body = call_json(sb, "sendMessage", chat_id=5, text="pick", reply_markup={"inline_keyboard": [[
        {"text": "Yes", "callback_data": "ans:yes"}, {"text": "Docs", "url": "https://example.org"}]]})
    mid = body["result"]["message_id"]
    with pytest.raises(ValueError):
        sb.push_callback(5, mid, "ans:no")
    with pytest.raises(ValueError):
        sb.press_button(5, mid, "Docs")
    update = sb.press_button(5, mid, "Yes")
    query = update["callback_query"]
    assert query["data"] == "ans:yes" and query["message"]["message_id"] == mid and query["from"]["id"] == 5
    assert query["chat_instance"]
    forged = sb.push_callback(5, mid, "ans:admin", forged=True)["callback_query"]
    assert forged["data"] == "ans:admin"
    assert call(sb, "answerCallbackQuery", callback_query_id=query["id"]) == (200, {"ok": True, "result": True})
    assert call(sb, "answerCallbackQuery", callback_query_id="42")[0] == 400


def test_tap_reply_keyboard(sb):
    sb.push_text(5, "hi")
    call_json(sb, "sendMessage", chat_id=5, text="where?", reply_markup={
        "keyboard": [[{"text": "Send location", "request_location": True}], ["Talk to us"]],
        "one_time_keyboard": True, "resize_keyboard": True})
    assert "reply_markup" not in sb.sent(5)[0], "reply keyboards are not part of Message"
    assert sb.tap_reply(5, "Talk to us")["message"]["text"] == "Talk to us"
    assert "location" in sb.tap_reply(5, "Send location")["message"]
    with pytest.raises(ValueError):
        sb.tap_reply(5, "Nope")
    call_json(sb, "sendMessage", chat_id=5, text="bye", reply_markup={"remove_keyboard": True})
    with pytest.raises(ValueError):
        sb.tap_reply(5, "Talk to us")


def test_push_raw_keeps_its_position(sb):
    sb.push_text(5, "before")
    sb.push_raw({"update_id": 1, "weird": True})
    sb.push_text(5, "after")
    _, body = call(sb, "getUpdates")
    assert [u.get("weird", False) for u in body["result"]] == [False, True, False]
    sb.push_raw("{not json")
    response = requests.post(f"{sb.url}/bot{TOKEN}/getUpdates", data={"offset": 0}, timeout=5)
    assert b"{not json" in response.content


def test_concurrent_poll_conflict(sb):
    results = {}

    def first():
        results["first"] = call(sb, "getUpdates", timeout=10)

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 8
    while thread.is_alive() and time.monotonic() < deadline:
        assert call(sb, "getUpdates", timeout=0)[0] == 200
        thread.join(0.1)
    assert results["first"] == (409, {"ok": False, "error_code": 409, "description": (
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running")})


def test_get_with_query_parameters(sb):
    sb.push_text(5, "hi")
    response = requests.get(f"{sb.url}/bot{TOKEN}/sendMessage", params={"chat_id": "5", "text": "via GET"},
                            timeout=5)
    assert response.json()["result"]["text"] == "via GET"
    update_id = sb.push_text(5, "next")["update_id"]
    body = requests.get(f"{sb.url}/bot{TOKEN}/getUpdates", params={"offset": update_id, "timeout": 0},
                        timeout=5).json()
    assert [u["update_id"] for u in body["result"]] == [update_id]


def test_multipart_uploads_and_limits(sb):
    sb.push_text(5, "hi")
    response = requests.post(f"{sb.url}/bot{TOKEN}/sendPhoto", data={"chat_id": "5", "caption": "big"},
                             files={"photo": ("big.jpg", b"\xff\xd8" + b"\0" * (10 * 2**20), "image/jpeg")},
                             timeout=20)
    assert response.status_code == 400 and response.json()["description"].startswith("Bad Request: ")
    response = requests.post(f"{sb.url}/bot{TOKEN}/sendDocument", data={"chat_id": "5", "document": "attach://f"},
                             files={"f": ("a.csv", b"a,b\n1,2\n", "text/csv")}, timeout=5)
    document = response.json()["result"]["document"]
    assert (document["file_name"], document["mime_type"], document["file_size"]) == ("a.csv", "text/csv", 8)
    assert sb.file_bytes(document["file_id"]) == b"a,b\n1,2\n"
    assert call(sb, "sendDocument", chat_id=5)[1]["description"] == "Bad Request: there is no document in the request"
