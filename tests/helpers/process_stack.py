"""The real product as separate OS processes: `python -m sandbox` and `errbot -c config_template.py`
configured only through environment variables, plus an in-process webhook receiver (the business).

    stack = ProcessStack(tmp_path)            # picks free ports, a data dir under tmp_path
    stack.start_sandbox(); stack.start_bot()  # returns once the API answers and the bot polls
    stack.add_webhook(["message:appUser"])
    stack.push_text(555, "hi")                # through the sandbox's /control API
    stack.kill_bot()                          # SIGKILL: no shutdown code runs
    stack.start_bot()                         # same data dir, same ports
    stack.stop()

Nothing here reaches into the processes: everything goes over HTTP, as in production.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.helpers.receiver import Receiver

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
TOKEN = "424242:AAFakeTokenForTheProcessTests-abcdefgh"
ADMIN_ID = 1000
APP_ID = "procapp"
KEY_ID = "app_prockey"
KEY_SECRET = "process-key-secret-0123456789abcdef"


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Any, timeout: float, message: str, interval: float = 0.05) -> None:
    """Poll condition() until truthy, or AssertionError(message)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(interval)


class ProcessStack:
    """A sandbox process, a bot process (restartable, killable) and a receiver."""

    def __init__(self, workdir: pathlib.Path, *, env: dict[str, str] | None = None,
                 enforce_limits: bool = False) -> None:
        self.workdir = pathlib.Path(workdir)
        self.data_dir = self.workdir / "data"
        self.sandbox_port = free_port()
        self.http_port = free_port()
        self.enforce_limits = enforce_limits
        self.extra_env = dict(env or {})
        self.receiver = Receiver()
        self.sandbox_proc: subprocess.Popen | None = None
        self.bot_proc: subprocess.Popen | None = None
        self.bot_runs = 0
        self.http = requests.Session()
        self.http.trust_env = False

    # --- addresses -------------------------------------------------------------------------------

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api(self) -> str:
        return f"{self.http_url}/v1.1/apps/{APP_ID}"

    @property
    def auth(self) -> tuple[str, str]:
        return KEY_ID, KEY_SECRET

    # --- processes -------------------------------------------------------------------------------

    def start_sandbox(self) -> None:
        """`python -m sandbox` on a free port with the bot's token; returns once /control answers."""
        args = [sys.executable, "-m", "sandbox", "--port", str(self.sandbox_port), "--token", TOKEN]
        if self.enforce_limits:
            args.append("--enforce-limits")
        with open(self.workdir / "sandbox.out", "ab") as log:
            self.sandbox_proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._control_up(), 20, "the sandbox process never answered")

    def _control_up(self) -> bool:
        if self.sandbox_proc is not None and self.sandbox_proc.poll() is not None:
            raise AssertionError(f"the sandbox exited with {self.sandbox_proc.returncode}")
        try:
            return self.http.get(f"{self.sandbox_url}/control/state", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def bot_env(self, **overrides: str) -> dict[str, str]:
        """The environment the bot runs with (config_template.py reads only these)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "TELEGRAM_", "STRIPE_"))}
        env.update({
            "TELEGRAM_TOKEN": TOKEN,
            "TELEGRAM_API_URL": self.sandbox_url,
            "TELEGRAM_POLL_TIMEOUT": "1",
            "RELAY_ADMINS": str(ADMIN_ID),
            "RELAY_DATA_DIR": str(self.data_dir),
            "RELAY_HTTP_HOST": "127.0.0.1",
            "RELAY_HTTP_PORT": str(self.http_port),
            "RELAY_APP_ID": APP_ID,
            "RELAY_API_KEY_ID": KEY_ID,
            "RELAY_API_KEY_SECRET": KEY_SECRET,
            "RELAY_WEBHOOK_TIMEOUT": "5",
            "RELAY_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def spawn_bot(self, **env: str) -> subprocess.Popen:
        """Start `errbot -c config_template.py` without waiting; output goes to bot-<n>.out."""
        self.bot_runs += 1
        with open(self.workdir / f"bot-{self.bot_runs}.out", "wb") as out:
            self.bot_proc = subprocess.Popen(
                [str(VENV_BIN / "errbot"), "-c", str(ROOT / "config_template.py")],
                cwd=self.workdir, env=self.bot_env(**env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.bot_proc

    def bot_output(self, run: int | None = None) -> str:
        """What the bot process printed (stdout and stderr) in its run number `run` (default: last)."""
        path = self.workdir / f"bot-{run or self.bot_runs}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_bot(self, timeout: float = 60, **env: str) -> None:
        """Start the bot and wait until its API answers and it has polled Telegram."""
        proc = self.spawn_bot(**env)
        polls_before = len(self.sandbox_requests("getUpdates"))

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the bot exited with {proc.returncode}:\n{self.bot_output()[-3000:]}")
            try:
                if self.http.get(f"{self.http_url}/v1.1/openapi.json", timeout=2).status_code != 200:
                    return False
            except requests.RequestException:
                return False
            return len(self.sandbox_requests("getUpdates")) > polls_before

        wait_until(up, timeout, f"the bot never came up:\n{self.bot_output()[-3000:]}", interval=0.2)

    def kill_bot(self) -> None:
        """SIGKILL the bot process (no cleanup code runs) and reap it."""
        proc = self.bot_proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_bot(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        proc = self.bot_proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        """Stop everything this stack started."""
        self.kill_bot()
        if self.sandbox_proc is not None and self.sandbox_proc.poll() is None:
            self.sandbox_proc.terminate()
            try:
                self.sandbox_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.sandbox_proc.kill()
                self.sandbox_proc.wait(10)
        self.receiver.stop()
        self.http.close()

    # --- the sandbox's control API -------------------------------------------------------------

    def control(self, name: str, **body: Any) -> Any:
        """POST /control/<name> with a JSON body; the result."""
        response = self.http.post(f"{self.sandbox_url}/control/{name}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def push_text(self, user_id: int, text: str, **user: str) -> dict:
        """A Telegram user writes to the bot."""
        return self.control("push", kind="text", user_id=user_id, text=text, **user)

    def sandbox_requests(self, method: str | None = None, chat_id: int | None = None) -> list[dict]:
        """Bot API requests the sandbox recorded."""
        params = {k: v for k, v in (("method", method), ("chat_id", chat_id)) if v is not None}
        try:
            response = self.http.get(f"{self.sandbox_url}/control/requests", params=params, timeout=30)
        except requests.RequestException:
            return []
        return response.json()["result"] if response.status_code == 200 else []

    def sent(self, chat_id: int | None = None) -> list[dict]:
        """Messages the sandbox accepted from the bot (Telegram Message dicts)."""
        params = {"chat_id": chat_id} if chat_id is not None else {}
        return self.http.get(f"{self.sandbox_url}/control/sent", params=params, timeout=30).json()["result"]

    def sandbox_state(self) -> dict:
        """pending_updates, offset_acknowledged, enforce_limits."""
        return self.http.get(f"{self.sandbox_url}/control/state", timeout=10).json()["result"]

    # --- the relay's API -----------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """An authenticated API call; path relative to the app."""
        kwargs.setdefault("auth", self.auth)
        kwargs.setdefault("timeout", 15)
        return self.http.request(method, f"{self.api}{path}", **kwargs)

    def add_webhook(self, triggers: list[str]) -> dict:
        """A webhook to the receiver; returns the webhook object (with its secret)."""
        response = self.request("POST", "/webhooks", json={"target": self.receiver.url + "/hook",
                                                           "triggers": triggers})
        assert response.status_code == 201, response.text
        return response.json()["webhook"]


@pytest.fixture
def process_stack(tmp_path: pathlib.Path) -> Iterator[ProcessStack]:
    """A started sandbox process and a receiver; start the bot with .start_bot(). Everything stops at teardown."""
    running = ProcessStack(tmp_path)
    running.start_sandbox()
    try:
        yield running
    finally:
        running.stop()
