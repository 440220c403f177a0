"""The backend's HTTP server (tgbackend.webserver): started from WEBSERVER_CONFIG, keep-alive, clear refusals,
and a stop that lets requests in progress answer."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
from flask import Flask

from tests.helpers.backend_bot import wait_until
from tests.helpers.relay_stack import free_port
from tgbackend.webserver import Webserver, WebserverSettings

pytest_plugins = ["tests.helpers.backend_fixtures"]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def slow_app() -> tuple[Flask, threading.Event, threading.Event]:
    """A Flask app with /fast and /slow; /slow answers once `release` is set and flags `entered` on arrival."""
    app = Flask("webserver-test")
    entered, release = threading.Event(), threading.Event()

    @app.route("/fast")
    def fast() -> str:
        return "fast"

    @app.route("/slow")
    def slow() -> str:
        entered.set()
        release.wait(10)
        return "slow done"

    return app, entered, release


def test_backend_serves_webserver_config_once_plugins_are_active_even_without_token(bot_factory):
    port = free_port()
    running = bot_factory(token=None, extra_config={"WEBSERVER_CONFIG": {"HOST": "127.0.0.1", "PORT": port,
                                                                          "SSL": None}})
    wait_until(lambda: listening(port), 15, "the web server did not start from WEBSERVER_CONFIG")
    assert running.backend.telegram_status()["webserver"] == f"listening on 127.0.0.1:{port}"
    running.stop()
    assert not listening(port), "the port stayed open after the bot stopped"


def test_tls_in_webserver_config_is_refused_with_what_to_do(bot_factory, caplog):
    port = free_port()
    running = bot_factory(token=None, extra_config={"WEBSERVER_CONFIG": {
        "HOST": "127.0.0.1", "PORT": port, "SSL": {"enabled": True, "certificate": "c.pem", "key": "k.pem"}}})
    wait_until(lambda: "not serving" in running.backend.telegram_status()["webserver"], 15, "no refusal reported")
    status = running.backend.telegram_status()["webserver"]
    assert "reverse proxy" in status and str(port) in status
    assert any("web server did not start" in r.getMessage() for r in caplog.records)
    assert not listening(port)


def test_a_taken_port_is_reported_not_raised(bot_factory):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = bot_factory(token=None, extra_config={"WEBSERVER_CONFIG": {"HOST": "127.0.0.1", "PORT": port}})
        wait_until(lambda: "not serving" in running.backend.telegram_status()["webserver"], 15,
                   "the taken port was not reported")
        assert "Address already in use" in running.backend.telegram_status()["webserver"]
        assert running.thread.is_alive()


@pytest.mark.parametrize("config, problem", [
    ({"HOST": "127.0.0.1", "PORT": "3141"}, "PORT"),
    ({"HOST": "127.0.0.1", "PORT": 70000}, "PORT"),
    ({"HOST": "127.0.0.1", "PORT": 3141, "THREADS": 0}, "THREADS"),
    ({"HOST": "127.0.0.1", "PORT": 3141, "MAX_BODY_BYTES": True}, "MAX_BODY_BYTES"),
])
def test_bad_settings_name_the_key(config, problem):
    with pytest.raises(ValueError, match=problem):
        WebserverSettings.from_config(config)


def _can_bind_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def _get(host: str, port: int) -> bytes:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", "/fast")
        return connection.getresponse().read()
    finally:
        connection.close()


@pytest.mark.skipif(not _can_bind_ipv6(), reason="no IPv6 on this machine")
@pytest.mark.parametrize("host", ["::", "*"])
def test_wildcard_hosts_answer_on_ipv4_and_ipv6_and_stop_cleanly(slow_app, host):
    app, _, _ = slow_app
    server = Webserver(app, WebserverSettings(host=host, port=free_port(), threads=2))
    server.start()
    try:
        assert _get("127.0.0.1", server.port) == b"fast"
        assert _get("::1", server.port) == b"fast"
    finally:
        server.stop()
    assert not listening(server.port)
    with pytest.raises(OSError):
        _get("::1", server.port)


def test_stop_twice_and_stop_after_the_server_thread_died(slow_app):
    app, _, _ = slow_app
    server = Webserver(app, WebserverSettings(host="127.0.0.1", port=0, threads=2))
    server.start()
    server.stop()
    server.stop()  # a second call does nothing (it must not write to closed descriptors)
    never_started = Webserver(app, WebserverSettings(host="127.0.0.1", port=0, threads=2))
    assert listening(never_started.port)  # bound and listening, no loop thread
    never_started.stop()
    assert not listening(never_started.port)


def test_connections_are_kept_alive(slow_app):
    app, _, _ = slow_app
    server = Webserver(app, WebserverSettings(host="127.0.0.1", port=0, threads=2))
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        peers = set()
        for attempt in range(5):
            connection.request("GET", "/fast")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"fast"), attempt
            assert not response.will_close, f"request {attempt}: the server asked to close: {response.headers}"
            peers.add(connection.sock.getsockname())
        assert len(peers) == 1, f"each request needed a new connection: {peers}"
        assert response.getheader("Server") is None, response.headers
        connection.close()
    finally:
        server.stop()


def test_stop_lets_a_request_in_progress_answer_then_refuses_connections(slow_app):
    app, entered, release = slow_app
    server = Webserver(app, WebserverSettings(host="127.0.0.1", port=0, threads=2))
    server.start()
    answer: dict[str, object] = {}

    def call_slow() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/slow")
        response = connection.getresponse()
        answer["status"], answer["body"] = response.status, response.read()

    caller = threading.Thread(target=call_slow)
    caller.start()
    assert entered.wait(5), "the slow request never reached the app"
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    wait_until(lambda: not listening(server.port), 5, "the server kept accepting after stop()")
    time.sleep(0.2)
    assert stopper.is_alive(), "stop() returned before the request in progress had answered"
    release.set()
    stopper.join(10)
    caller.join(10)
    assert answer == {"status": 200, "body": b"slow done"}
    assert not stopper.is_alive()
