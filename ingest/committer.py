"""Group commit: take what has queued, commit it in one transaction, then acknowledge those messages."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingest.buffer import DiskBuffer
from ingest.dedup import DedupState
from ingest.validate import Accepted, Outcome, Redelivered, Rejection
from qinghe.bus import InboundMessage
from qinghe.contracts import SensorReading

log = logging.getLogger(__name__)

Work = tuple[InboundMessage, int, Outcome]  # message, connection generation at receipt, validation outcome
DeadLetterWriter = Callable[[Sequence[tuple[InboundMessage, Rejection]]], None]  # commits durably or raises
ReadingHook = Callable[[SensorReading], None]
AckMany = Callable[[Sequence[InboundMessage]], None]  # acknowledges a batch (one socket write)


@dataclass(slots=True)
class CommitStats:
    """Counters of what the committer did."""

    stored: int = 0
    rejected: int = 0
    redelivered: int = 0
    commits: int = 0
    acked: int = 0
    stale_acks_skipped: int = 0
    commit_failures: int = 0


class Committer:
    """One worker thread between the MQTT network thread and the disk.

    Each round it drains the queue (up to `max_batch`), commits the valid readings and the dead letters,
    and only then acknowledges the messages, so a crash at any point leaves every message either
    committed or still unacknowledged at the broker. Acks of messages received on an earlier
    connection are skipped: the broker redelivers those (DUP) and the redelivery is acknowledged.
    """

    def __init__(
        self,
        buffer: DiskBuffer,
        dead_letters: DeadLetterWriter,
        ack: AckMany,
        generation: Callable[[], int],
        *,
        on_reading: ReadingHook | None = None,
        on_committed: Callable[[], None] | None = None,
        committed: DedupState | None = None,
        max_batch: int = 5000,
        max_rows: int = 5_000_000,
        retry_s: float = 0.5,
        linger_s: float = 0.001,
    ) -> None:
        self.buffer = buffer
        # The dedup state of what is on disk: it trails the validator's, which has seen messages
        # that are still queued. Only this one may be persisted, or a crash would leave redelivered
        # messages looking like duplicates of readings that were never stored.
        self.committed = committed if committed is not None else DedupState(buffer.load_dedup())
        self._dead_letters = dead_letters
        self._ack = ack
        self._generation = generation
        self._on_reading = on_reading
        self._on_committed = on_committed
        self.max_batch = max_batch
        self.max_rows = max_rows
        self.retry_s = retry_s
        self.linger_s = linger_s
        self.stats = CommitStats()
        self._items: deque[Work | None] = deque()
        self._idle = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, message: InboundMessage, generation: int, outcome: Outcome) -> None:
        """Queue a validated message (called on the network thread, in arrival order).

        A deque append is atomic; the worker is woken only when it sleeps, so a busy stream costs
        no lock or wake-up per message and batches grow by themselves.
        """
        self._items.append((message, generation, outcome))
        if self._idle:
            self._wake.set()

    def pending(self) -> int:
        """Messages queued and not yet committed."""
        return len(self._items)

    def start(self) -> None:
        """Run the commit loop in a thread."""
        self._thread = threading.Thread(target=self._run, name="ingest-commit", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Commit and acknowledge everything already queued, then stop."""
        self._items.append(None)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._stop.set()
                self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            batch, last = self._take()
            if batch:
                try:
                    self.commit(batch)
                except Exception:  # never reached in normal operation: commit() retries until stopped
                    log.exception("commit of %d messages failed; they stay unacknowledged", len(batch))
            if last:
                return

    def _take(self) -> tuple[list[Work], bool]:
        items = self._items
        if not items:
            time.sleep(self.linger_s)  # under load more arrive meanwhile: bigger batches, fewer wake-ups
        while not items:
            self._idle = True
            if not items:  # re-check after announcing idleness: a submit in between sets the event
                self._wake.wait()
            self._idle = False
            self._wake.clear()
        batch: list[Work] = []
        pop = items.popleft
        while items and len(batch) < self.max_batch:
            item = pop()
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def commit(self, batch: Sequence[Work]) -> None:
        """Commit one batch durably, then acknowledge it and hand the readings on."""
        lines: list[str] = []
        rejected: list[tuple[InboundMessage, Rejection]] = []
        readings: list[SensorReading] = []
        check = self.committed.check
        for message, _gen, outcome in batch:
            if type(outcome) is Accepted:
                reading = outcome.reading
                lines.append(outcome.line)
                if check(reading.sensor_id, reading.seq, reading.ts) is not None:
                    log.error("dedup replica disagrees about %s seq %s", reading.sensor_id, reading.seq)
                readings.append(reading)
            elif type(outcome) is Rejection:
                rejected.append((message, outcome))
        windows = {r.sensor_id: self.committed.snapshot(r.sensor_id) for r in readings}
        dedup = {sensor: snap for sensor, snap in windows.items() if snap is not None}
        self._wait_for_room()
        if not self._durably(lambda: self.buffer.append(lines, dedup), "disk buffer"):
            return
        if rejected and not self._durably(lambda: self._dead_letters(rejected), "dead-letter outbox"):
            return
        self._ack_all(batch)
        self.stats.commits += 1
        self.stats.stored += len(lines)
        self.stats.rejected += len(rejected)
        self.stats.redelivered += sum(1 for _m, _g, o in batch if type(o) is Redelivered)
        if lines and self._on_committed is not None:
            self._on_committed()
        if self._on_reading is not None:
            self._hand_on(readings)

    def _durably(self, action: Callable[[], None], what: str) -> bool:
        """Run a commit until it succeeds; False only if stopping (messages stay unacknowledged)."""
        while True:
            try:
                action()
                return True
            except Exception as exc:  # disk full, I/O error: keep the batch, never ack it unstored
                self.stats.commit_failures += 1
                log.error("commit to the %s failed (%s); retrying in %.1f s", what, exc, self.retry_s)
            if self._stop.wait(self.retry_s):
                return False

    def _wait_for_room(self) -> None:
        if self.buffer.depth < self.max_rows:
            return
        log.warning("disk buffer full (%d points): not acknowledging until the database catches up", self.buffer.depth)
        while self.buffer.depth >= self.max_rows and not self._stop.wait(0.2):
            pass

    def _ack_all(self, batch: Sequence[Work]) -> None:
        current = self._generation()
        fresh = [message for message, gen, _outcome in batch if gen == current]
        if fresh:
            self._ack(fresh)
        self.stats.acked += len(fresh)
        self.stats.stale_acks_skipped += len(batch) - len(fresh)

    def _hand_on(self, readings: Sequence[SensorReading]) -> None:
        hook = self._on_reading
        assert hook is not None
        for reading in readings:
            try:
                hook(reading)
            except Exception:  # a rules bug must not stop ingest
                log.exception("on_reading hook failed for sensor %s", reading.sensor_id)


def wait_until(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
    """Poll `predicate` until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True
