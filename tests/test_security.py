"""Security at the system level (issue 5): every API route refuses bad credentials; customers cannot run any
command; secrets appear nowhere; file links cannot be forged, altered, reused late or repointed."""

from __future__ import annotations

import base64
import inspect
import json
import logging
import pathlib
import re
import time

import jwt
import pytest
import requests

from smoochrelay import api as api_module
from smoochrelay import auth as auth_module
from smoochrelay.auth import make_jwt
from smoochrelay.files import FileLinks
from tests.helpers.backend_bot import ADMIN_ID, TOKEN, wait_until
from tests.helpers.relay_stack import APP_ID, KEY_ID, KEY_SECRET

pytest_plugins = ["tests.helpers.relay_stack"]
pytestmark = pytest.mark.timeout(120)
ROTATED = "424242:AARotatedTokenForTheSecurityTests-77"


def routes() -> list[tuple[str, str]]:
    """(method, concrete path) of every API route in api.ROUTES."""
    out = []
    for rule in api_module.ROUTES.iter_rules():
        path = re.sub(r"<(\w+)>", lambda m: APP_ID if m.group(1) == "app_id" else "x" * 24, rule.rule)
        out.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return out


def basic(key_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode()


def test_every_route_refuses_bad_credentials_and_other_apps(relay_stack):
    stack = relay_stack
    revoked = stack.service.store.create_api_key("to revoke")
    stack.service.store.revoke_api_key(revoked.key_id)
    unsigned = jwt.encode({"scope": "app"}, key=None, algorithm="none", headers={"kid": KEY_ID})
    bad_credentials = {
        "none": None,
        "wrong secret": basic(KEY_ID, "wrong-secret"),
        "unknown key": basic("app_nobody", KEY_SECRET),
        "revoked key": basic(revoked.key_id, revoked.secret),
        "revoked key jwt": "Bearer " + make_jwt(revoked.key_id, revoked.secret),
        "expired jwt": "Bearer " + make_jwt(KEY_ID, KEY_SECRET, expires_in=-60),
        "wrongly signed jwt": "Bearer " + make_jwt(KEY_ID, "not-the-secret"),
        "alg none jwt": "Bearer " + unsigned,
        "HS512 jwt": "Bearer " + jwt.encode({"scope": "app"}, KEY_SECRET, algorithm="HS512",
                                            headers={"kid": KEY_ID}),
        "wrong scope jwt": "Bearer " + jwt.encode({"scope": "appUser"}, KEY_SECRET, algorithm="HS256",
                                                  headers={"kid": KEY_ID}),
        "garbage": "Bearer a.b.c",
        "other scheme": "Token " + KEY_SECRET,
    }
    table = routes()
    assert len(table) >= 13, table
    failures = []
    for method, path in table:
        url = stack.http_url + path
        for name, header in bad_credentials.items():
            headers = {"Authorization": header} if header else {}
            response = requests.request(method, url, headers=headers, json={}, timeout=10)
            body = response.json()
            if response.status_code != 401 or body.get("error", {}).get("code") != "unauthorized":
                failures.append((method, path, name, response.status_code, body))
            if KEY_SECRET in response.text or "Traceback" in response.text:
                failures.append((method, path, name, "leak", response.text))
        # Valid credentials for this server, but another app's id: 404, and nothing about this app leaks.
        other = url.replace(f"/apps/{APP_ID}/", "/apps/someone-elses-app/").replace(
            f"/apps/{APP_ID}", "/apps/someone-elses-app")
        for header in (basic(KEY_ID, KEY_SECRET), "Bearer " + make_jwt(KEY_ID, KEY_SECRET)):
            response = requests.request(method, other, headers={"Authorization": header}, json={}, timeout=10)
            if response.status_code != 404 or APP_ID in response.text:
                failures.append((method, other, "other app", response.status_code, response.text))
    assert failures == []


def test_credentials_are_compared_in_constant_time_and_jwts_verified_by_pyjwt():
    source = inspect.getsource(auth_module)
    assert "hmac.compare_digest(" in source
    assert re.search(r"jwt\.decode\(\s*token, secret, algorithms=\[JWT_ALGORITHM\]", source)
    assert auth_module.JWT_ALGORITHM == "HS256"
    files_source = inspect.getsource(FileLinks.verify)
    assert "hmac.compare_digest(" in files_source
    # No plain == on secrets anywhere in the auth path.
    assert not re.search(r"secret\s*==|==\s*secret|expected\s*==", source)


# Every admin command of the project and of Errbot's core that a customer might try.
ADMIN_COMMANDS = [
    f"!telegram token {ROTATED}", "!telegram status", "!relay status", "!relay key create sneaky",
    "!relay key list", f"!relay key revoke {KEY_ID}", "!relay webhook add http://127.0.0.1:9/steal *",
    "!relay webhook list", "!relay webhook remove x", "!relay redeliver", "!relay payments",
    "!plugin list", "!plugin deactivate Relay", "!plugin config Relay", "!plugin blacklist Relay",
    "!plugin reload Relay", "!repos install https://example.com/evil.git", "!webhook test /echo {}",
    "!help", "!status", "!status plugins", "!whoami", "!echo hi", "!log tail", "!history", "!about",
    "!apropos token", "!render test", "!restart", "!shutdown --confirm", "!shutdown --kill",
]


def test_customer_sending_every_admin_command_runs_nothing_and_is_relayed(relay_stack):
    stack = relay_stack
    stack.add_webhook(["message:appUser"])
    sb = stack.sandbox
    customer = 9100
    keys_before = len(stack.service.store.list_api_keys())
    for text in ADMIN_COMMANDS:
        sb.push_text(customer, text)
    wait_until(lambda: len(stack.events("message:appUser")) >= len(ADMIN_COMMANDS), 30,
               "commands were not relayed")
    relayed = [e["messages"][0]["text"] for e in stack.events("message:appUser")]
    assert relayed == ADMIN_COMMANDS
    # Synchronise with the bot: an admin's command round-trips, so anything queued before it has run.
    sb.push_text(ADMIN_ID, "!echo sync-marker")
    sb.wait_for(lambda r: r["method"] == "sendMessage" and r["params"].get("text") == "sync-marker", timeout=15)
    assert sb.requests("sendMessage", chat_id=customer) == [], "Errbot answered a customer"
    assert [r for r in sb.requests() if r["method"] == "deleteMessage"] == []
    assert len(stack.service.store.list_api_keys()) == keys_before
    assert [h.target for h in stack.service.store.list_webhooks()] == [stack.receiver.url + "/hook"]
    assert {r["token"] for r in sb.requests()} == {TOKEN}, "a customer changed the token"
    assert stack.bot.thread.is_alive() and "Relay" in stack.bot.backend.plugin_manager.get_all_active_plugin_names()


def test_no_secret_in_any_log_line_payload_link_page_or_error(relay_stack, caplog):
    """A full session at DEBUG: token set and rotated, keys and webhooks created, text, files, API replies,
    errors. Then every captured surface is searched for every secret."""
    caplog.set_level(logging.DEBUG)
    stack = relay_stack
    sb = stack.sandbox
    hook = stack.add_webhook(["*"], include_full_app_user=True)
    surfaces: list[str] = []
    sb.push_text(ADMIN_ID, "!relay key create session")
    created = sb.wait_for(lambda r: r["method"] == "sendMessage" and "Secret:" in r["params"].get("text", ""),
                          timeout=15)
    key_secret = re.search(r"Secret: <code>([^<]+)</code>", created["params"]["text"]).group(1)
    sb.push_text(ADMIN_ID, f"!relay webhook add {stack.receiver.url}/second message:appUser")
    added = sb.wait_for(lambda r: r["method"] == "sendMessage" and "added for" in r["params"].get("text", ""),
                        timeout=15)
    second_secret = re.search(r"Secret \(sent as X-API-Key.*?<code>([^<]+)</code>", added["params"]["text"]).group(1)
    sb.add_bot(ROTATED, username="relay_test_bot")
    sb.push_text(ADMIN_ID, f"!telegram token {ROTATED}")
    sb.wait_for(lambda r: r["method"] == "sendMessage" and "Connected as" in r["params"].get("text", ""),
                timeout=15)
    sb.push_text(ADMIN_ID, f"!telegram token 424242:AAWrongTokenThatTelegramRefuses-{KEY_SECRET[:4]}")
    sb.push_text(ADMIN_ID, "!telegram status")
    sb.push_text(ADMIN_ID, "!relay status")
    customer = 9200
    sb.push_text(customer, "hello, here is my order")
    sb.push_photo(customer, data=b"\xff\xd8\xff" + b"p" * 2000, caption="a photo")
    sb.push_document(customer, b"%PDF-1.4 doc", "invoice.pdf", "application/pdf", caption="a file")
    sb.push_location(customer, 48.85, 2.35)
    sb.push_big_document(customer)
    app_user = stack.app_user_id(customer)
    wait_until(lambda: len(stack.events("message:appUser")) >= 5, 20, "the session's messages did not arrive")
    jwt_token = make_jwt(KEY_ID, KEY_SECRET)
    for body in ({"role": "appMaker", "type": "text", "text": "Thanks!", "actions": [
                  {"type": "postback", "text": "OK", "payload": "ok"}]},
                 {"role": "appMaker", "type": "image", "mediaUrl": "https://example.com/x.jpg"},
                 {"role": "appMaker", "type": "text", "text": "x" * 5000}):
        response = requests.post(f"{stack.api}/appusers/{app_user}/messages", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {jwt_token}"})
        surfaces.append(response.text)
    for method, path, kwargs in (
        ("POST", "/appusers/nobody/messages", {"json": {"role": "appMaker", "type": "text", "text": "x"}}),
        ("POST", "/webhooks", {"json": {"target": "ftp://nope"}}),
        ("POST", "/integrations", {"json": {"type": "telegram", "token": "999:bad-token-" + KEY_SECRET}}),
        ("GET", f"/appusers/{app_user}/messages", {}), ("GET", "/integrations", {}),
        ("PUT", f"/webhooks/{hook['_id']}", {"data": b"{not json"}),
    ):
        surfaces.append(stack.request(method, path, **kwargs).text)
    for auth in (("app_x", KEY_SECRET), (KEY_ID, KEY_SECRET + "x")):
        surfaces.append(requests.get(f"{stack.api}/webhooks", auth=auth, timeout=10).text)
    wait_until(lambda: stack.events("message:delivery:channel"), 20, "no delivery event")
    time.sleep(1.0)
    links = [m.get("mediaUrl") for e in stack.events("message:appUser") for m in e["messages"] if m.get("mediaUrl")]
    assert links, "no file link was produced"
    for link in links:
        response = requests.get(link, timeout=10)
        assert response.status_code == 200
        surfaces.append(link)
        surfaces.append(repr(dict(response.headers)))
    surfaces.append(requests.get(links[0] + "x", timeout=10).text)
    surfaces.append(requests.get(f"{stack.http_url}/checkout/nonexistent", timeout=10).text)
    surfaces.append(requests.get(f"{stack.http_url}/checkout/nonexistent/success", timeout=10).text)
    surfaces.append(requests.get(f"{stack.http_url}/v1.1/openapi.json", timeout=10).text)
    surfaces.append(requests.post(f"{stack.http_url}/stripe/webhook", data=b"{}", timeout=10).text)
    payloads = [r.body.decode("utf-8", "replace") for r in stack.receiver.requests]
    headers_sent = [json.dumps({k: v for k, v in r.headers.items() if k.lower() != "x-api-key"})
                    for r in stack.receiver.requests]
    log_text = pathlib.Path(stack.bot.log_file).read_text(encoding="utf-8")
    log_text += "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "DEBUG" in log_text and len(caplog.records) > 100, "the log scan would prove nothing"
    secrets = {"bot token": TOKEN, "rotated token": ROTATED, "API key secret": KEY_SECRET,
               "created key secret": key_secret, "webhook secret": hook["secret"],
               "second webhook secret": second_secret,
               "file link secret": stack.service.store.setting("file_link_secret")}
    found = []
    for surface_name, texts in (("log", [log_text]), ("webhook payloads", payloads),
                                ("webhook headers", headers_sent), ("API/links/pages", surfaces)):
        for secret_name, secret in secrets.items():
            for piece in {secret, secret.split(":", 1)[-1]}:
                if any(piece in text for text in texts):
                    found.append((secret_name, surface_name))
    print(f"\n[secret scan] log chars={len(log_text)} records={len(caplog.records)} payloads={len(payloads)} "
          f"surfaces={len(surfaces)} found={found}")
    assert found == []


def test_file_links_over_http_forged_altered_expired_or_repointed_get_403(relay_stack):
    stack = relay_stack
    stack.add_webhook(["message:appUser"])
    sb = stack.sandbox
    sb.push_document(9301, b"alice's file", "alice.txt", "text/plain")
    sb.push_document(9302, b"bob's file", "bob.txt", "text/plain")
    wait_until(lambda: len(stack.events("message:appUser")) >= 2, 20, "files did not arrive")
    urls = {e["messages"][0]["metadata"]["fileName"]: e["messages"][0]["mediaUrl"]
            for e in stack.events("message:appUser")}
    alice, bob = urls["alice.txt"], urls["bob.txt"]
    assert requests.get(alice, timeout=10).content == b"alice's file"
    prefix = f"{stack.http_url}/files/"
    a_body, a_sig = alice[len(prefix):].split("/", 1)[0].split(".")
    b_body, _ = bob[len(prefix):].split("/", 1)[0].split(".")
    claims = json.loads(base64.urlsafe_b64decode(a_body + "=" * (-len(a_body) % 4)))
    links = stack.service.links
    forged_links = FileLinks("a-guessed-secret", stack.http_url, 3600)

    def enc(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
                                        ).decode().rstrip("=")

    bad = {
        "forged (other secret)": forged_links.link(file_id=claims["f"], app_user_id=claims["u"],
                                                   mime_type="text/plain", name="alice.txt", size=12),
        "altered signature": f"{prefix}{a_body}.{a_sig[:-2]}AA/alice.txt",
        "altered body": f"{prefix}{enc({**claims, 'e': claims['e'] + 10**6})}.{a_sig}/alice.txt",
        "expired": links.link(file_id=claims["f"], app_user_id=claims["u"], mime_type="text/plain",
                              name="alice.txt", size=12, now=time.time() - 10**8),
        "bob's body, alice's signature": f"{prefix}{b_body}.{a_sig}/bob.txt",
        "alice's signature, bob's file id": f"{prefix}{enc({**claims, 'f': 'other'})}.{a_sig}/alice.txt",
        "no signature": f"{prefix}{a_body}/alice.txt",
        "garbage": f"{prefix}not-a-token/alice.txt",
    }
    results = {name: requests.get(url, timeout=10) for name, url in bad.items()}
    wrong = {name: r.status_code for name, r in results.items() if r.status_code != 403}
    assert wrong == {}
    for response in results.values():
        assert response.json()["error"]["code"] == "forbidden"
        assert b"alice's file" not in response.content
    assert requests.get(bob, timeout=10).content == b"bob's file"
