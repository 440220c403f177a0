"""WebhookDispatcher against real HTTP receivers: headers, signatures, Smooch's retry policy, fairness."""

import resource
import time

import pytest

from smoochrelay.store import RelayStore, WebhookJob
from smoochrelay.webhooks import WebhookDispatcher, sign, verify
from tests.helpers.receiver import Receiver


@pytest.fixture
def store(tmp_path):
    s = RelayStore(str(tmp_path / "relay.sqlite3"))
    yield s
    s.close()


@pytest.fixture
def rx():
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def make_dispatcher(store):
    started = []

    def make(**kwargs):
        kwargs.setdefault("backoff", 0.05)
        dispatcher = WebhookDispatcher(store, **kwargs)
        dispatcher.start()
        started.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in started:
        dispatcher.stop()


def _jobs(hook_id, lanes, per_lane):
    return [WebhookJob(hook_id, f"lane{lane}", "message:appUser", {"lane": lane, "n": n})
            for n in range(per_lane) for lane in range(lanes)]


def _wait_stats(store, predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = store.stats()
        if predicate(stats):
            return stats
        time.sleep(0.02)
    raise AssertionError(f"stats never matched: {store.stats()}")


def _assert_lane_order(requests):
    """Per lane, every delivery of job n happens before any delivery of job n+1."""
    last_seen: dict[int, int] = {}
    for request in requests:
        body = request.json
        lane, n = body["lane"], body["n"]
        assert n >= last_seen.get(lane, -1), f"lane {lane}: job {n} after job {last_seen[lane]}"
        last_seen[lane] = n


def test_sign_and_verify():
    now = 1_700_000_000
    signature = sign("s3cret", now, '{"a":1}')
    assert signature.startswith("v1=") and len(signature) == 3 + 64
    assert verify("s3cret", now, b'{"a":1}', signature, now=now + 10)
    assert not verify("s3cret", now, b'{"a":2}', signature, now=now)
    assert not verify("other", now, b'{"a":1}', signature, now=now)
    assert not verify("s3cret", now, b'{"a":1}', signature, now=now + 301)
    assert not verify("s3cret", "junk", b'{"a":1}', signature)


def test_headers_signature_and_body(store, rx, make_dispatcher):
    hook = store.create_webhook(rx.url + "/hook", ["message"])
    store.enqueue([WebhookJob(hook.id, "c1", "message:appUser", {"trigger": "message:appUser", "text": "é"})])
    make_dispatcher()
    request = rx.wait_for(lambda reqs: len(reqs) == 1)[0]
    assert request.method == "POST" and request.path == "/hook"
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-API-Key") == hook.secret
    assert verify(hook.secret, request.header("X-Smooch-Relay-Timestamp"), request.body,
                  request.header("X-Smooch-Relay-Signature"))
    assert request.json == {"trigger": "message:appUser", "text": "é"}
    _wait_stats(store, lambda s: s["webhook_pending"] == 0)


def test_503_then_recovery_keeps_lane_order(store, rx, make_dispatcher):
    hook = store.create_webhook(rx.url + "/hook", ["*"])
    rx.respond(503, times=4)
    store.enqueue(_jobs(hook.id, lanes=3, per_lane=6))
    make_dispatcher(max_attempts=10)
    _wait_stats(store, lambda s: s["webhook_pending"] == 0 and s["webhook_dead"] == 0)
    requests = rx.requests
    assert len(requests) == 18 + 4
    _assert_lane_order(requests)
    assert {(r.json["lane"], r.json["n"]) for r in requests} == {(lane, n) for lane in range(3) for n in range(6)}


def test_hang_past_timeout_then_recovery(store, rx, make_dispatcher):
    hook = store.create_webhook(rx.url + "/hook", ["*"])
    rx.respond(200, delay=5, times=1)
    store.enqueue(_jobs(hook.id, lanes=1, per_lane=2))
    make_dispatcher(timeout=0.5)
    requests = rx.wait_for(lambda reqs: len(reqs) >= 3, timeout=15)
    _wait_stats(store, lambda s: s["webhook_pending"] == 0)
    assert [r.json["n"] for r in requests] == [0, 0, 1]
    assert requests[1].t - requests[0].t >= 0.45


def test_refused_connections_then_recovery(store, rx, make_dispatcher):
    hook = store.create_webhook(rx.url + "/hook", ["*"])
    rx.refuse()
    store.enqueue(_jobs(hook.id, lanes=2, per_lane=3))
    make_dispatcher(max_attempts=50, backoff=0.02, max_backoff=0.1)
    time.sleep(0.5)
    assert store.stats()["webhook_pending"] == 6
    rx.listen()
    _wait_stats(store, lambda s: s["webhook_pending"] == 0, timeout=15)
    assert store.stats()["webhook_dead"] == 0
    _assert_lane_order(rx.requests)
    assert len(rx.requests) == 6


def test_400_is_not_retried(store, rx, make_dispatcher):
    hook = store.create_webhook(rx.url + "/hook", ["*"])
    rx.respond(400, times=1)
    store.enqueue(_jobs(hook.id, lanes=1, per_lane=2))
    dispatcher = make_dispatcher()
    _wait_stats(store, lambda s: s["webhook_pending"] == 0)
    time.sleep(0.3)
    assert [r.json["n"] for r in rx.requests] == [0, 1]
    [dead] = dispatcher.dead_letters()
    assert dead["attempts"] == 1 and dead["last_error"] == "HTTP 400" and dead["webhook_id"] == hook.id


def test_dead_letters_then_redeliver(store, rx, make_dispatcher):
    hook = store.create_webhook(rx.url + "/hook", ["*"])
    rx.respond(500)
    store.enqueue(_jobs(hook.id, lanes=1, per_lane=1))
    dispatcher = make_dispatcher(max_attempts=3)
    _wait_stats(store, lambda s: s["webhook_dead"] == 1)
    assert rx.count == 3
    assert dispatcher.dead_letters()[0]["last_error"] == "HTTP 500"
    rx.respond(200)
    assert dispatcher.redeliver() == 1
    rx.wait_for(lambda reqs: len(reqs) == 4)
    _wait_stats(store, lambda s: s["webhook_dead"] == 0 and s["webhook_pending"] == 0)
    assert dispatcher.dead_letters() == []


def test_slow_target_does_not_delay_fast_target(store, make_dispatcher):
    with Receiver() as slow, Receiver() as fast:
        slow.respond(200, delay=3)
        slow_hook = store.create_webhook(slow.url + "/hook", ["*"])
        fast_hook = store.create_webhook(fast.url + "/hook", ["*"])
        make_dispatcher(workers=4)
        store.enqueue(_jobs(slow_hook.id, lanes=10, per_lane=2))
        slow.wait_for(lambda reqs: len(reqs) >= 2, timeout=5)
        started = time.monotonic()
        store.enqueue(_jobs(fast_hook.id, lanes=5, per_lane=10))
        fast.wait_for(lambda reqs: len(reqs) == 50, timeout=10)
        elapsed = time.monotonic() - started
        assert elapsed < 2.5, f"fast target took {elapsed:.2f}s behind a slow one"
        assert slow.count == 2  # the slow target holds at most its share of the workers
        _assert_lane_order(fast.requests)


def test_huge_response_body_is_not_read(store, rx, make_dispatcher):
    hook = store.create_webhook(rx.url + "/hook", ["*"])
    rx.respond(200, body_size=512 * 2**20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store.enqueue(_jobs(hook.id, lanes=1, per_lane=3))
    make_dispatcher()
    _wait_stats(store, lambda s: s["webhook_pending"] == 0, timeout=15)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"memory grew by {grown_mb:.0f} MB"
    assert rx.count == 3


def test_redirect_loop_is_not_followed(store, rx, make_dispatcher):
    hook = store.create_webhook(rx.url + "/hook", ["*"])
    rx.respond(302, redirect=rx.url + "/hook")
    store.enqueue(_jobs(hook.id, lanes=1, per_lane=1))
    dispatcher = make_dispatcher(max_attempts=2)
    _wait_stats(store, lambda s: s["webhook_dead"] == 1)
    time.sleep(0.2)
    assert rx.count == 2
    assert dispatcher.dead_letters()[0]["last_error"] == "HTTP 302"


def test_deleting_a_webhook_drops_its_jobs(store, rx, make_dispatcher):
    keep = store.create_webhook(rx.url + "/keep", ["*"])
    drop = store.create_webhook(rx.url + "/drop", ["*"])
    rx.respond(503, path="/drop", times=1000)
    store.enqueue(_jobs(drop.id, lanes=2, per_lane=5))
    make_dispatcher(max_attempts=100, backoff=0.05, max_backoff=0.05)
    rx.wait_for(lambda reqs: len(reqs) >= 2)
    assert store.delete_webhook(drop.id)
    assert store.stats()["webhook_pending"] == 0
    store.enqueue(_jobs(keep.id, lanes=1, per_lane=1))
    rx.wait_for(lambda reqs: any(r.path == "/keep" for r in reqs))
    time.sleep(0.3)
    dropped = [r for r in rx.requests if r.path == "/drop"]
    assert {r.json["n"] for r in dropped} == {0}
