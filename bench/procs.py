"""Starting and watching the benchmark's processes: the receiver, the relay (Errbot) and the baseline."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ERRBOT = str(Path(PY).with_name("errbot"))
TOKEN = "123456:BENCH-token-abcdefghijklmnopqrstuv"
APP_ID = "benchapp"
KEY_ID = "app_benchkey"
KEY_SECRET = "bench-key-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s: {what}")
        time.sleep(interval)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc (Linux)."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    values[key] = int(value.split()[0]) / 1024
    except OSError:
        return float("nan"), float("nan")
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, all threads (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM (a graceful stop for the relay and for PTB's run_polling), SIGKILL if it does not exit."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Http:
    """A keep-alive JSON client on one connection (one per thread)."""

    def __init__(self, base: str, auth: tuple[str, str] | None = None, timeout: float = 30) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: object = None) -> object:
        status, data = self.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status} {data[:200]!r}")
        return json.loads(data) if data else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class _Measured:
    """A benchmarked process: its pid, RSS and CPU time, read from /proc."""

    proc: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> tuple[float, float]:
        return rss_mb(self.proc.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


class ReceiverProcess:
    """bench.receiver in its own process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([PY, "-m", "bench.receiver", "--port", "0"], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            raise RuntimeError(f"the receiver did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        self.http = Http(self.url)

    def count(self) -> int:
        return self.http.json("GET", "/_count")["count"]  # type: ignore[index]

    def dump(self) -> list[list]:
        return self.http.json("GET", "/_dump")["arrivals"]  # type: ignore[index]

    def reset(self) -> None:
        self.http.json("POST", "/_reset")

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(5)


class RelayProcess(_Measured):
    """Our product as in production: `errbot -c config_template.py`, durability on, its own process."""

    def __init__(self, sandbox_url: str, receiver_url: str, *, pacing: bool = False,
                 triggers: tuple[str, ...] = ("message:appUser",)) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="relay-bench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_API_URL": sandbox_url,
               "RELAY_DATA_DIR": self.data_dir, "RELAY_HTTP_PORT": str(self.port),
               "RELAY_API_KEY_ID": KEY_ID, "RELAY_API_KEY_SECRET": KEY_SECRET, "RELAY_APP_ID": APP_ID,
               "TELEGRAM_PACING": "on" if pacing else "off", "RELAY_LOG_LEVEL": "WARNING",
               "RELAY_LOG_FILE": os.path.join(self.data_dir, "errbot.log")}
        self.log = open(os.path.join(self.data_dir, "stdout.log"), "w")
        self.proc = subprocess.Popen([ERRBOT, "-c", str(ROOT / "config_template.py")], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.api = Http(self.url, auth=(KEY_ID, KEY_SECRET))
        try:
            wait_until(self._api_up, 60, "the relay's API did not come up")
            self.api.json("POST", f"/v1.1/apps/{APP_ID}/webhooks",
                          {"target": receiver_url + "/hook", "triggers": list(triggers)})
        except BaseException:
            self.stop()
            raise

    def _api_up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the relay exited with {self.proc.returncode}; see {self.data_dir}")
        try:
            return self.api.request("GET", "/v1.1/openapi.json")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.api.close()
        stop_process(self.proc, 10)
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class BaselineProcess(_Measured):
    """bench.baseline (PTB polling + requests) in its own process."""

    def __init__(self, sandbox_url: str, receiver_url: str) -> None:
        self.proc = subprocess.Popen([PY, "-m", "bench.baseline", "--token", TOKEN, "--api-url", sandbox_url,
                                      "--webhook", receiver_url + "/hook"], cwd=ROOT)

    def stop(self) -> None:
        stop_process(self.proc, 10)
