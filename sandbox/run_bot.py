"""`make run`: start the relay. With no TELEGRAM_TOKEN it runs the whole flow locally first.

Sandbox mode starts the Telegram simulator (a chat page where you play the Telegram user), a demo
"business" that prints every webhook it receives, and the bot, with an API key and a webhook
provisioned, then prints what to try. With TELEGRAM_TOKEN set it simply runs Errbot on Telegram.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config_template.py"
SANDBOX_TOKEN = "123456789:SANDBOX-not-a-real-telegram-token-0000"
DEMO_ADMIN_ID = "1000"
DEMO_KEY_ID = "app_demo"
DEMO_KEY_SECRET = "demo-secret-change-me"


class _PrintingReceiver(BaseHTTPRequestHandler):
    """The demo business: prints each webhook call so you can watch events arrive."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.end_headers()
        try:
            event = json.loads(body)
        except ValueError:
            return
        print(f"\n[business] webhook {event.get('trigger')}:\n{json.dumps(event, indent=2)[:2000]}\n", flush=True)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the printed events are the output."""


def _provision_webhook(api: str, receiver_url: str) -> None:
    """Once the API answers, register the demo receiver as a webhook (unless one exists)."""
    auth = (DEMO_KEY_ID, DEMO_KEY_SECRET)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            existing = requests.get(f"{api}/webhooks", auth=auth, timeout=5)
            if existing.status_code == 200:
                if not existing.json()["webhooks"]:
                    requests.post(f"{api}/webhooks", auth=auth, timeout=5,
                                  json={"target": receiver_url, "triggers": ["*"]})
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)


def _sandbox_mode() -> None:
    """Start the simulator and the demo business, and point the bot at them through the environment."""
    sandbox_port = int(os.environ.get("SANDBOX_PORT", "8081"))
    sandbox = Sandbox(host="127.0.0.1", port=sandbox_port)
    sandbox.start()
    sandbox.add_bot(SANDBOX_TOKEN, username="relay_sandbox_bot", first_name="Relay Sandbox")
    receiver = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("DEMO_RECEIVER_PORT", "8082"))),
                                   _PrintingReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True, name="demo-business").start()
    receiver_url = f"http://127.0.0.1:{receiver.server_address[1]}/webhook"

    env = os.environ
    env["TELEGRAM_TOKEN"] = SANDBOX_TOKEN
    env["TELEGRAM_API_URL"] = sandbox.url
    env.setdefault("RELAY_DATA_DIR", str(ROOT / "data" / "sandbox"))
    env.setdefault("RELAY_ADMINS", DEMO_ADMIN_ID)
    env.setdefault("RELAY_APP_ID", "demoapp")
    env.setdefault("RELAY_API_KEY_ID", DEMO_KEY_ID)
    env.setdefault("RELAY_API_KEY_SECRET", DEMO_KEY_SECRET)
    host = env.get("RELAY_HTTP_HOST", "127.0.0.1")
    port = env.get("RELAY_HTTP_PORT", "3141")
    api = f"http://{host}:{port}/v1.1/apps/{env['RELAY_APP_ID']}"
    threading.Thread(target=_provision_webhook, args=(api, receiver_url), daemon=True).start()

    print(f"""
No TELEGRAM_TOKEN set: running the local sandbox (nothing reaches Telegram).

  1. Chat as a Telegram user:   open {sandbox.url}/  (user id {env['RELAY_ADMINS'].split(',')[0]} is an admin:
                                try !relay status; any other id is a customer)
  2. Watch the business side:   every webhook is printed below as [business] ...
  3. Reply as the business:
       curl -u {env['RELAY_API_KEY_ID']}:{env['RELAY_API_KEY_SECRET']} -H 'content-type: application/json' \\
         {api}/appusers/<appUser _id from a webhook>/messages \\
         -d '{{"role": "appMaker", "type": "text", "text": "Hello from *support*",
              "actions": [{{"type": "postback", "text": "Talk to a human", "payload": "HUMAN"}},
                          {{"type": "link", "text": "Docs", "uri": "https://example.com"}}]}}'
  API: {api}   OpenAPI: http://{host}:{port}/v1.1/openapi.json
  To run on Telegram instead: TELEGRAM_TOKEN=<token from @BotFather> make run
""", flush=True)


def main() -> None:
    """Run Errbot with the repository's config template (and the sandbox when there is no token)."""
    if not os.environ.get("TELEGRAM_TOKEN"):
        _sandbox_mode()
    from errbot.cli import main as errbot_main

    sys.argv = ["errbot", "-c", str(CONFIG)]
    errbot_main()


if __name__ == "__main__":
    main()
