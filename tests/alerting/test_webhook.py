"""Webhooks: HMAC-SHA256 signature, retry with backoff, permanent failures to the dead-letter topic."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from alerting.config import WebhookConfig, WebhooksConfig
from alerting.store import AlertingStore
from alerting.webhook import WebhookWorker, backoff_s, sign, verify
from qinghe.clock import FakeClock
from qinghe.codec import decode
from qinghe.contracts import ActionSpec, Alert, AlertKind, DeadLetter
from qinghe.localservers import free_port
from qinghe.topics import Topics
from tests.alerting.conftest import HttpSink
from tests.alerting.helpers import Harness, signal

SECRET = "s3cret-for-tests"


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"kind":"opened"}'
    expected = hmac.new(SECRET.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET.encode(), 1_800_000_000, body) == f"t=1800000000,v1={expected}"
    header = sign(SECRET.encode(), 1_800_000_000, body)
    assert verify(SECRET.encode(), header, body, now=1_800_000_100)
    assert not verify(SECRET.encode(), header, body + b" ", now=1_800_000_100)
    assert not verify(b"other", header, body, now=1_800_000_100)
    assert not verify(SECRET.encode(), header, body, now=1_800_001_000)  # replayed too late
    assert not verify(SECRET.encode(), "garbage", body, now=1_800_000_000)


def test_backoff_doubles_and_caps() -> None:
    endpoint = WebhookConfig(name="w", url="http://127.0.0.1/x", secret=SECRET, backoff_initial_s=2, backoff_max_s=10)
    assert [backoff_s(endpoint, n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


def _harness(tmp_path: Path, url: str, **endpoint: object) -> Harness:
    hook = {"name": "city", "url": url, "secret": SECRET, "backoff_initial_s": 1, "max_attempts": 3, **endpoint}
    return Harness(tmp_path, {"webhooks": {"endpoints": [hook]}})


def _worker(h: Harness) -> WebhookWorker:
    return WebhookWorker(h.config.webhooks, h.store, h.clock, Topics("qh"))


def test_rule_webhook_action_delivers_every_alert_signed(tmp_path: Path, http_sink: HttpSink) -> None:
    h = _harness(tmp_path, f"{http_sink.url}/hook")
    h.send(signal(actions=(ActionSpec("webhook", "city"),)))
    h.advance(60)  # breach + escalation
    worker = _worker(h)
    assert worker.run_once() == 3
    requests = http_sink.wait(3)
    kinds = [decode(Alert, r.body).kind for r in requests]
    assert kinds == [AlertKind.OPENED, AlertKind.SLA_BREACHED, AlertKind.ESCALATED]
    for req in requests:
        assert verify(SECRET.encode(), req.headers["X-Qinghe-Signature"], req.body, now=h.clock.now())
        assert req.headers["X-Qinghe-Delivery"].endswith(".city")
        assert req.headers["X-Qinghe-Event"] == decode(Alert, req.body).kind.value
    assert h.store.pending_deliveries() == 0


def test_failed_delivery_is_retried_with_backoff_then_succeeds(tmp_path: Path, http_sink: HttpSink) -> None:
    http_sink.replies += [(503, b""), (500, b"")]
    h = _harness(tmp_path, http_sink.url)
    h.send(signal(actions=(ActionSpec("webhook", "city"),)))
    worker = _worker(h)
    worker.run_once()  # 503
    assert worker.run_once() == 0  # not due yet (1 s backoff)
    h.clock.advance(1)
    worker.run_once()  # 500
    h.clock.advance(1.5)
    assert worker.run_once() == 0  # second backoff is 2 s
    h.clock.advance(0.5)
    worker.run_once()  # 200
    requests = http_sink.wait(3)
    assert len({r.headers["X-Qinghe-Delivery"] for r in requests}) == 1  # one delivery id across retries
    assert h.store.pending_deliveries() == 0


@pytest.mark.parametrize(("status", "attempts"), [(400, 1), (500, 3)])
def test_permanent_failure_or_exhausted_attempts_go_to_the_dead_letter_topic(
    tmp_path: Path, http_sink: HttpSink, status: int, attempts: int
) -> None:
    http_sink.default = (status, b"")
    h = _harness(tmp_path, http_sink.url)
    h.send(signal(actions=(ActionSpec("webhook", "city"),)))
    worker = _worker(h)
    for _ in range(5):
        worker.run_once()
        h.clock.advance(10)
    assert len(http_sink.requests) == attempts
    assert h.store.pending_deliveries() == 0
    (entry,) = h.store.outbox_entries("/deadletter/")
    assert entry.topic == "qh/v1/deadletter/alerting"
    letter = decode(DeadLetter, entry.payload)
    assert f"HTTP {status}" in letter.reason
    assert json.loads(letter.payload)["kind"] == "opened"  # the original body, kept verbatim


def test_endpoint_down_keeps_the_delivery_for_later(tmp_path: Path) -> None:
    h = _harness(tmp_path, f"http://127.0.0.1:{free_port()}/hook", max_attempts=10, timeout_s=1)
    h.send(signal(actions=(ActionSpec("webhook", "city"),)))
    worker = _worker(h)
    worker.run_once()
    assert h.store.pending_deliveries() == 1
    ((_id, attempts, error),) = h.store.deliveries()
    assert attempts == 1
    assert "connection failed" in error


def test_deliveries_survive_a_restart(tmp_path: Path, http_sink: HttpSink) -> None:
    h = _harness(tmp_path, http_sink.url)
    h.send(signal(actions=(ActionSpec("webhook", "city"),)))
    h.store.close()
    store = AlertingStore(tmp_path / "alerting.db")
    worker = WebhookWorker(h.config.webhooks, store, FakeClock(h.clock.now()), Topics("qh"))
    worker.run_once()
    assert decode(Alert, http_sink.wait(1)[0].body).kind is AlertKind.OPENED


def test_allowlist_is_enforced_in_config_and_at_send_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in allow_hosts"):
        WebhooksConfig.model_validate({"endpoints": [{"name": "x", "url": "http://10.0.0.1/h", "secret": "s"}]})
    h = _harness(tmp_path, "http://localhost:1/h")
    # a config whose allowlist no longer has the host (e.g. edited): the worker refuses to send
    narrowed = WebhooksConfig.model_validate(
        {"allow_hosts": ["localhost"], "endpoints": [{"name": "city", "url": "http://localhost:1/h", "secret": "s"}]}
    )
    h.send(signal(actions=(ActionSpec("webhook", "city"),)))
    worker = WebhookWorker(narrowed.model_copy(update={"allow_hosts": ["127.0.0.1"]}), h.store, h.clock, Topics("qh"))
    worker.run_once()
    (entry,) = h.store.outbox_entries("/deadletter/")
    assert "allowlist" in decode(DeadLetter, entry.payload).reason


def test_always_webhooks_and_kind_filters(tmp_path: Path, http_sink: HttpSink) -> None:
    hook = {"name": "ops", "url": http_sink.url, "secret": SECRET, "kinds": ["sla_breached"]}
    h = Harness(tmp_path, {"webhooks": {"endpoints": [hook], "always": ["ops"]}})
    h.send(signal())
    h.advance(60)
    _worker(h).run_once()
    assert [decode(Alert, r.body).kind for r in http_sink.wait(1)] == [AlertKind.SLA_BREACHED]
