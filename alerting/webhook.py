"""Webhook delivery: HMAC-SHA256 signed POSTs to allowlisted endpoints, durable retries with backoff.

Headers on every POST:
- `X-Qinghe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`
- `X-Qinghe-Delivery: <alert_id>.<webhook>` (the same on every retry; receivers deduplicate by it)
- `X-Qinghe-Event: <alert kind>`, `Content-Type: application/json`
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from alerting.config import WebhookConfig, WebhooksConfig
from alerting.store import AlertingStore, PendingDelivery
from qinghe.clock import Clock
from qinghe.codec import dead_letter, encode
from qinghe.outbox import OutboxEntry
from qinghe.topics import Topics

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Qinghe-Signature"
DELIVERY_HEADER = "X-Qinghe-Delivery"
EVENT_HEADER = "X-Qinghe-Event"
_RETRYABLE_STATUS = frozenset({408, 425, 429})
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""An opener that never uses proxy settings from the environment (targets are loopback/allowlisted)."""


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value: `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance_s: float = 300.0) -> bool:
    """Check a signature header (for receivers and tests): right HMAC and a timestamp within tolerance."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance_s and hmac.compare_digest(expected, parts.get("v1", ""))


def backoff_s(endpoint: WebhookConfig, attempts: int) -> float:
    """Delay before the next attempt after `attempts` failures: exponential, capped."""
    return float(min(endpoint.backoff_initial_s * 2 ** max(0, attempts - 1), endpoint.backoff_max_s))


@dataclass(frozen=True, slots=True)
class PostResult:
    """One HTTP attempt's outcome."""

    ok: bool
    retryable: bool
    detail: str


def post(endpoint: WebhookConfig, allow_hosts: list[str], delivery: PendingDelivery, now: float) -> PostResult:
    """POST one signed delivery; never raises for network or HTTP errors."""
    host = urlsplit(endpoint.url).hostname or ""
    if host not in allow_hosts:
        return PostResult(False, False, f"host {host!r} is not in the webhook allowlist")
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(endpoint.secret.get_secret_value().encode(), int(now), delivery.body),
        DELIVERY_HEADER: delivery.delivery_id,
        EVENT_HEADER: delivery.event,
        "User-Agent": "qinghe-alerting/1",
    }
    request = urllib.request.Request(endpoint.url, data=delivery.body, headers=headers, method="POST")
    try:
        with DIRECT.open(request, timeout=endpoint.timeout_s) as response:
            return PostResult(True, False, f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        retryable = exc.code >= 500 or exc.code in _RETRYABLE_STATUS
        return PostResult(False, retryable, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return PostResult(False, True, f"connection failed: {reason}")


class WebhookWorker:
    """Delivers queued webhook rows until they succeed, fail permanently or run out of attempts."""

    def __init__(self, config: WebhooksConfig, store: AlertingStore, clock: Clock, topics: Topics) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.topics = topics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """New deliveries were queued."""
        self._wake.set()

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="alerting-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current attempt (queued rows stay on disk)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep delivering; rows are still on disk
                log.exception("webhook worker failed")
            next_at = self.store.next_delivery_at()
            wait = 1.0 if next_at is None else min(1.0, max(0.0, next_at - self.clock.now()))
            self._wake.wait(wait)
            self._wake.clear()

    def run_once(self) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        due = self.store.due_deliveries(self.clock.now())
        for delivery in due:
            if self._stop.is_set():
                break
            self._attempt(delivery)
        return len(due)

    def _attempt(self, delivery: PendingDelivery) -> None:
        endpoint = self.config.endpoint(delivery.webhook)
        if endpoint is None:
            self._give_up(delivery, f"webhook {delivery.webhook!r} is no longer configured")
            return
        now = self.clock.now()
        result = post(endpoint, self.config.allow_hosts, delivery, now)
        attempts = delivery.attempts + 1
        if result.ok:
            log.debug("webhook %s delivered %s (%s)", delivery.webhook, delivery.delivery_id, result.detail)
            self.store.delivery_done(delivery.delivery_id)
        elif result.retryable and attempts < endpoint.max_attempts:
            delay = backoff_s(endpoint, attempts)
            log.info("webhook %s: %s; retry %d in %.1f s", delivery.webhook, result.detail, attempts, delay)
            self.store.delivery_retry(delivery.delivery_id, attempts, now + delay, result.detail)
        else:
            self._give_up(delivery, f"{result.detail} after {attempts} attempt(s)")

    def _give_up(self, delivery: PendingDelivery, reason: str) -> None:
        log.warning("webhook %s: giving up on %s: %s", delivery.webhook, delivery.delivery_id, reason)
        letter = dead_letter(
            f"webhook/{delivery.webhook}",
            delivery.body,
            f"webhook {delivery.webhook}: {reason}",
            self.clock.now(),
            "alerting",
        )
        self.store.delivery_give_up(
            delivery.delivery_id, OutboxEntry(self.topics.deadletter("alerting"), encode(letter))
        )
