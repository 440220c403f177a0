"""The sandbox's control HTTP API, chat page, and `python -m sandbox` process."""

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandbox import Sandbox

TOKEN = "777:control-token"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sb():
    sandbox = Sandbox().start()
    sandbox.add_bot(TOKEN)
    yield sandbox
    sandbox.stop()


def control(sb, path, body=None):
    if body is None:
        response = requests.get(f"{sb.url}/control/{path}", timeout=5)
    else:
        response = requests.post(f"{sb.url}/control/{path}", json=body, timeout=5)
    return response.status_code, response.json()


def bot(sb, method, **params):
    return requests.post(f"{sb.url}/bot{TOKEN}/{method}", json=params, timeout=5).json()


def test_push_kinds_over_http(sb):
    assert control(sb, "push", {"kind": "text", "user_id": 1, "text": "hi", "first_name": "Ann"})[1][
        "result"]["message"]["from"]["first_name"] == "Ann"
    data = base64.b64encode(b"file body").decode()
    _, doc = control(sb, "push", {"kind": "document", "user_id": 1, "data_base64": data, "file_name": "a.txt",
                                  "mime_type": "text/plain"})
    assert doc["result"]["message"]["document"]["file_name"] == "a.txt"
    file_id = doc["result"]["message"]["document"]["file_id"]
    assert requests.get(f"{sb.url}/control/file/{file_id}", timeout=5).content == b"file body"
    assert "location" in control(sb, "push", {"kind": "location", "user_id": 1, "latitude": 1.5,
                                              "longitude": 2.5})[1]["result"]["message"]
    assert control(sb, "push", {"kind": "photo", "user_id": 1, "data_base64": data})[1]["result"]["message"]["photo"]
    assert control(sb, "push", {"kind": "contact", "user_id": 1, "phone_number": "+1",
                                "contact_first_name": "Bo"})[1]["result"]["message"]["contact"]["first_name"] == "Bo"
    assert control(sb, "push", {"kind": "raw", "update": {"update_id": 5}})[0] == 200
    status, body = control(sb, "push", {"kind": "nonsense", "user_id": 1})
    assert status == 400 and body["ok"] is False
    assert control(sb, "push", {"kind": "text"})[0] == 400
    assert control(sb, "state")[1]["result"]["pending_updates"] == 6


def test_sent_buttons_and_reply_keyboard_over_http(sb):
    control(sb, "push", {"kind": "text", "user_id": 2, "text": "hi"})
    mid = bot(sb, "sendMessage", chat_id=2, text="<b>pick</b>", parse_mode="HTML", reply_markup={
        "inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]})["result"]["message_id"]
    bot(sb, "sendMessage", chat_id=2, text="or", reply_markup={"keyboard": [["Talk"]], "resize_keyboard": True})
    _, sent = control(sb, "sent?chat_id=2")
    assert [m["text"] for m in sent["result"]] == ["pick", "or"]
    assert sent["reply_keyboard"]["keyboard"] == [["Talk"]]
    assert control(sb, "push", {"kind": "press_button", "user_id": 2, "message_id": mid, "text": "Yes"})[1][
        "result"]["callback_query"]["data"] == "y"
    assert control(sb, "push", {"kind": "callback", "user_id": 2, "message_id": mid, "data": "n"})[0] == 400
    assert control(sb, "push", {"kind": "tap_reply", "user_id": 2, "text": "Talk"})[1]["result"]["message"][
        "text"] == "Talk"


def test_faults_and_requests_over_http(sb):
    control(sb, "push", {"kind": "text", "user_id": 3, "text": "hi"})
    assert control(sb, "fail", {"method": "sendMessage", "status": 429, "description": "Too Many Requests: "
                                "retry after 2", "retry_after": 2}) == (200, {"ok": True, "result": True})
    assert bot(sb, "sendMessage", chat_id=3, text="x")["parameters"] == {"retry_after": 2}
    control(sb, "block", {"user_id": 3})
    assert bot(sb, "sendMessage", chat_id=3, text="x")["error_code"] == 403
    control(sb, "block", {"user_id": 3, "blocked": False})
    assert bot(sb, "sendMessage", chat_id=3, text="x")["ok"] is True
    control(sb, "drop", {"method": "getMe"})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sb.url}/bot{TOKEN}/getMe", timeout=5)
    _, log = control(sb, "requests?method=sendMessage")
    assert [r["status"] for r in log["result"]] == [429, 403, 200]
    assert TOKEN not in str(log), "the control API never exposes the token"
    assert control(sb, "nope")[0] == 404


def test_chat_page_is_self_contained(sb):
    response = requests.get(f"{sb.url}/", timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    page = response.text
    for needle in ("/control/push", "/control/sent", "tap_reply", "callback", "location", "FileReader"):
        assert needle in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page


def test_module_runs_as_process_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", "0", "--token",
                             TOKEN, "--username", "cli_bot"], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        assert requests.get(f"{url}/bot{TOKEN}/getMe", timeout=5).json()["result"]["username"] == "cli_bot"
        assert TOKEN not in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
