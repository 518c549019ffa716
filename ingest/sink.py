"""The database sink: batches from the disk buffer to InfluxDB v2, back-off on outages, bisection of rejects."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ingest.buffer import DiskBuffer
from qinghe.config import InfluxConfig
from qinghe.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 1.0


class PointWriter(Protocol):
    """Writes a batch of line-protocol points; raises RetryableError or PermanentError."""

    def write(self, lines: Sequence[str]) -> None:
        """Write every line or raise."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def classify_http(status: int, detail: str, retry_after_s: float | None = None) -> RetryableError | PermanentError:
    """Map an HTTP status of a failed write to retryable (keep the data, try later) or permanent."""
    if status in (408, 429) or status >= 500:
        return RetryableError(f"database busy or failing: HTTP {status} {detail}", retry_after_s)
    if status in (401, 403, 404):
        # Wrong token, org or bucket: the points are fine and a config fix makes them writable.
        return RetryableError(f"database refused us (check token/org/bucket): HTTP {status} {detail}", retry_after_s)
    return PermanentError(f"database rejected the points: HTTP {status} {detail}")


class InfluxWriter:
    """influxdb-client's write API, one synchronous request per batch (batches come from the disk buffer).

    The client's own background batching keeps batches in memory and reports failures later, so it
    cannot promise "deleted from the buffer only after the database accepted it"; we batch ourselves.
    """

    def __init__(self, config: InfluxConfig) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision

        self.config = config
        self._precision: WritePrecision = WritePrecision.MS  # type: ignore[assignment]  # a str constant
        self._client = InfluxDBClient(
            url=config.url,
            token=config.token.get_secret_value(),
            org=config.org,
            timeout=config.timeout_ms,
            enable_gzip=config.gzip,
            retries=0,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: Sequence[str]) -> None:
        """POST the lines to /api/v2/write; raise RetryableError or PermanentError on failure."""
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        body = "\n".join(lines)
        try:
            self._api.write(self.config.bucket, self.config.org, record=body, write_precision=self._precision)
        except ApiException as exc:
            status = int(exc.status or 0)
            detail = _body_text(exc.body) or str(exc.reason or "")
            raise classify_http(status, detail, _retry_after(exc.headers)) from None
        except (HTTPError, OSError) as exc:
            raise RetryableError(f"database unreachable at {self.config.url}: {type(exc).__name__}") from None

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()  # type: ignore[no-untyped-call]


def _body_text(body: object) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return str(body or "").strip()[:300]


def _retry_after(headers: object) -> float | None:
    getter = getattr(headers, "get", None)
    value = getter("Retry-After") if getter is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Backoff:
    """Exponential back-off with jitter: min, 2*min, ... up to max; `reset()` after a success."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s, self.max_s = min_s, max_s
        self._next = min_s
        self._rng = rng or random.Random()

    def next(self, hint_s: float | None = None) -> float:
        """The next delay (a server's Retry-After hint wins when larger)."""
        delay = min(self._next, self.max_s) * (0.8 + 0.4 * self._rng.random())
        self._next = min(self._next * 2, self.max_s)
        return max(delay, hint_s or 0.0)

    def reset(self) -> None:
        """Back to the shortest delay."""
        self._next = self.min_s


class StepResult(StrEnum):
    """What one sink step did."""

    IDLE = "idle"
    WROTE = "wrote"
    RETRY = "retry"
    SPLIT = "split"
    DEAD_LETTERED = "dead_lettered"


@dataclass(slots=True)
class SinkStats:
    """Counters for logs, stats and tests."""

    written: int = 0
    batches: int = 0
    failures: int = 0
    dead_lettered: int = 0


RejectHandler = Callable[[str, str], None]  # (line, reason) -> dead letter it (must be durable)


class SinkWorker:
    """Moves points from the disk buffer to the database.

    Rows are deleted only after the database accepted them. Retryable failures back off and retry
    the same rows; a permanently rejected batch is halved until the offending line is alone, and
    that line goes to the dead-letter handler instead of looping forever.
    """

    def __init__(
        self,
        buffer: DiskBuffer,
        writer: PointWriter,
        on_reject: RejectHandler,
        *,
        batch_size: int = 1000,
        flush_interval_s: float = 0.5,
        backoff: Backoff | None = None,
    ) -> None:
        self.buffer = buffer
        self.writer = writer
        self.on_reject = on_reject
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.stats = SinkStats()
        self._limit = batch_size
        self._retry_delay = 0.0
        self._down_since: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> StepResult:
        """Try to write the oldest batch once."""
        rows = self.buffer.peek(self._limit)
        if not rows:
            return StepResult.IDLE
        try:
            self.writer.write([line for _, line in rows])
        except PermanentError as exc:
            return self._rejected(rows, str(exc))
        except RetryableError as exc:
            self._failed(exc)
            return StepResult.RETRY
        self.buffer.delete_through(rows[-1][0])
        self._succeeded(len(rows))
        return StepResult.WROTE

    def _rejected(self, rows: list[tuple[int, str]], reason: str) -> StepResult:
        if len(rows) > 1:
            self._limit = max(1, len(rows) // 2)
            log.warning("database rejected a batch of %d points; bisecting to find the bad ones", len(rows))
            return StepResult.SPLIT
        row_id, line = rows[0]
        self.on_reject(line, reason)
        self.buffer.delete_through(row_id)
        self.stats.dead_lettered += 1
        self._limit = self.batch_size
        log.error("dead-lettered a point the database rejected: %s", reason)
        return StepResult.DEAD_LETTERED

    def _failed(self, exc: RetryableError) -> None:
        self.stats.failures += 1
        self._retry_delay = self.backoff.next(exc.retry_after_s)
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("database write failed (%s); buffering on disk and retrying", exc)
        else:
            log.debug("database write failed again (%s); retry in %.1f s", exc, self._retry_delay)

    def _succeeded(self, count: int) -> None:
        self.stats.written += count
        self.stats.batches += 1
        self._limit = min(self.batch_size, self._limit * 2)
        self.backoff.reset()
        if self._down_since is not None:
            log.info(
                "database writes recovered after %.1f s; %d points still buffered",
                time.monotonic() - self._down_since,
                self.buffer.depth,
            )
            self._down_since = None

    # ----- background thread -------------------------------------------------------------------
    def notify(self) -> None:
        """New rows were committed (called by the committer)."""
        if self.buffer.depth >= self.batch_size:
            self._wake.set()

    def start(self) -> None:
        """Run the sink loop in a thread."""
        self._thread = threading.Thread(target=self._run, name="ingest-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_flush = last_checkpoint = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_checkpoint >= CHECKPOINT_EVERY_S:
                last_checkpoint = time.monotonic()
                self._checkpoint()
            depth = self.buffer.depth
            wait_s = last_flush + self.flush_interval_s - time.monotonic()
            if depth < self.batch_size and (depth == 0 or wait_s > 0):
                self._wake.wait(wait_s if wait_s > 0 else self.flush_interval_s)
                self._wake.clear()
                continue
            last_flush = time.monotonic()
            try:
                result = self.step()
            except Exception:  # a buffer or driver bug: the rows are still on disk; log and go on
                log.exception("ingest sink step failed")
                result = StepResult.RETRY
                self._retry_delay = self.backoff.next()
            if result is StepResult.RETRY:
                self._stop.wait(self._retry_delay)
            elif result is not StepResult.WROTE:
                last_flush -= self.flush_interval_s  # bisecting: go again at once

    def _checkpoint(self) -> None:
        try:
            self.buffer.checkpoint()
        except Exception:  # the WAL just grows a little longer; the data is safe
            log.exception("checkpoint of the disk buffer failed")

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop the loop, then try to write what is buffered for up to `flush_timeout_s` (rest stays on disk)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(flush_timeout_s, 1.0) + 30)
        deadline = time.monotonic() + flush_timeout_s
        while self.buffer.depth and time.monotonic() < deadline:
            result = self.step()
            if result is StepResult.RETRY:
                break
        if self.buffer.depth:
            log.info("%d points stay in the disk buffer until the next start", self.buffer.depth)
        self.writer.close()
