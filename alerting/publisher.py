"""Publishes the store's outbox rows through the service's MQTT bus: in order, deleted only after the
broker's PUBACK, replayed after a restart. It shares the store's connection and lock, so publishing
never contends with state commits at the SQLite level (no busy-wait sleeps on the hot path)."""

from __future__ import annotations

import logging
import threading
from collections import deque

from alerting.store import AlertingStore
from qinghe.bus import MqttBus, PublishHandle
from qinghe.outbox import PumpLoop

log = logging.getLogger(__name__)


class StorePublisher:
    """The alerting outbox pump (same contract as qinghe.outbox.Outbox, on the store's connection)."""

    def __init__(self, store: AlertingStore, bus: MqttBus, *, max_inflight: int = 1000) -> None:
        self.store = store
        self.bus = bus
        self.max_inflight = max_inflight
        self._lock = threading.Lock()
        self._cursor = 0  # highest row id handed to the bus by this process
        self._inflight: deque[tuple[int, PublishHandle]] = deque()
        self._loop = PumpLoop(self.pump, "alerting-outbox")
        self._wake = self._loop.wake
        # Not woken on every PUBACK: the service pumps after each commit, and this thread sweeps every
        # 50 ms; waking per PUBACK costs a thread switch per message under load.
        bus.on_connection_change(lambda _up: self._wake.set())

    def pump(self) -> int:
        """Delete rows the broker acknowledged (oldest first) and hand new rows to the bus."""
        with self._lock:
            done: list[int] = []
            while self._inflight and self._inflight[0][1].is_published():
                done.append(self._inflight.popleft()[0])
            if done:
                self.store.outbox_delete(done)
            room = self.max_inflight - len(self._inflight)
            if room > 0:
                for row_id, entry in self.store.outbox_after(self._cursor, room):
                    handle = self.bus.publish(entry.topic, entry.payload, qos=entry.qos, retain=entry.retain)
                    self._inflight.append((row_id, handle))
                    self._cursor = row_id
            return len(done)

    def start(self) -> None:
        """Pump in a daemon thread (PUBACKs, reconnects, and rows committed by other threads)."""
        self._loop.start()

    def flush(self, timeout_s: float) -> bool:
        """Pump until every row is acknowledged or `timeout_s` passes; returns whether it emptied."""
        return self._loop.flush(self.store.outbox_depth, timeout_s, lambda: self.bus.connected)

    def stop(self) -> None:
        """Stop the pump thread (unacknowledged rows stay on disk for the next start)."""
        self._loop.stop()
