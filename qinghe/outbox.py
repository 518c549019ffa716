"""Durable store-and-forward outbox: SQLite (WAL) rows published in order, deleted only after PUBACK."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from qinghe.bus import MqttBus, PublishHandle

log = logging.getLogger(__name__)

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
"""


class PumpLoop:
    """The thread behind an outbox: calls `pump` when woken (or every 50 ms) until stopped. A failing
    pump is logged and retried: the rows it did not publish are still on disk."""

    def __init__(self, pump: Callable[[], object], name: str) -> None:
        self.wake = threading.Event()
        self._pump = pump
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(0.05)
            self.wake.clear()
            try:
                self._pump()
            except Exception:  # keep pumping; the rows are still on disk
                log.exception("%s pump failed", self._name)

    def flush(self, depth: Callable[[], int], timeout_s: float, connected: Callable[[], bool] = lambda: True) -> bool:
        """Pump until `depth()` is 0 or `timeout_s` passes (or `connected()` turns false); whether it emptied."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._pump()
            if depth() == 0:
                return True
            if time.monotonic() >= deadline or not connected():
                return False
            self.wake.wait(0.02)
            self.wake.clear()

    def stop(self) -> None:
        """Stop the thread (waits up to 5 s for it)."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message waiting to be published."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


def open_sqlite(path: Path | str) -> sqlite3.Connection:
    """Open a SQLite database in WAL mode, safe across a process crash (synchronous=NORMAL)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Outbox:
    """Messages are committed to disk before publishing and deleted only once the broker acked them.

    After a broker outage paho resends what it holds; after a restart every row still on disk is
    published again, in the original order. Consumers deduplicate by message id.
    """

    def __init__(self, path: Path | str, bus: MqttBus, *, max_inflight: int = 500) -> None:
        self._db = open_sqlite(path)
        self._db.executescript(OUTBOX_SCHEMA)
        self._bus = bus
        self._max_inflight = max_inflight
        self._lock = threading.Lock()
        self._cursor = 0  # highest row id handed to the bus in this process
        self._inflight: dict[int, PublishHandle] = {}
        self._loop = PumpLoop(self.pump, "outbox")
        self._wake = self._loop.wake
        bus.on_published(lambda _mid: self._wake.set())
        bus.on_connection_change(lambda _up: self._wake.set())

    def put(self, entry: OutboxEntry) -> None:
        """Commit one message to disk; it will be published by the pump."""
        self.put_many((entry,))

    def put_many(self, entries: Iterable[OutboxEntry]) -> None:
        """Commit several messages in one transaction, in order."""
        rows = [(e.topic, e.payload, e.qos, int(e.retain)) for e in entries]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO outbox(topic, payload, qos, retain) VALUES (?,?,?,?)", rows)
            self._db.execute("COMMIT")
        self._wake.set()

    def depth(self) -> int:
        """Messages on disk not yet acknowledged by the broker."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def pump(self) -> int:
        """Delete acknowledged rows and hand the next rows to the bus; returns rows acknowledged."""
        with self._lock:
            done = [row_id for row_id, handle in self._inflight.items() if handle.is_published()]
            if done:
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in done])
                for row_id in done:
                    del self._inflight[row_id]
            room = self._max_inflight - len(self._inflight)
            if room > 0:
                self._hand_over(room)
        return len(done)

    def _hand_over(self, room: int) -> None:
        rows = self._db.execute(
            "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (self._cursor, room),
        ).fetchall()
        for row_id, topic, payload, qos, retain in rows:
            self._inflight[row_id] = self._bus.publish(topic, bytes(payload), qos=qos, retain=bool(retain))
            self._cursor = row_id

    # ----- background pump -------------------------------------------------------------------------
    def start(self) -> None:
        """Run the pump in a daemon thread until `stop()`."""
        self._loop.start()

    def flush(self, timeout_s: float) -> bool:
        """Pump until the outbox is empty or `timeout_s` passes; returns whether it emptied."""
        return self._loop.flush(self.depth, timeout_s)

    def stop(self) -> None:
        """Stop the pump thread and close the database (rows not yet acked stay on disk)."""
        self._loop.stop()
        with self._lock:
            self._db.close()
