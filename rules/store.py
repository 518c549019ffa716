"""Durable rules state: the engine checkpoint and the ids of camera events already processed (SQLite)."""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

from qinghe.outbox import open_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_events (event_id TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_events_ts ON seen_events(ts);
"""


class StateStore:
    """One SQLite file: the latest engine checkpoint (compressed JSON) and the seen-event table."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = open_sqlite(self.path)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def save_checkpoint(self, data: dict[str, Any], saved_at: float) -> int:
        """Replace the checkpoint; returns its compressed size in bytes."""
        blob = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 3)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO checkpoint(id, saved_at, data) VALUES (1, ?, ?)", (saved_at, blob))
        return len(blob)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, or None."""
        with self._lock:
            row = self._db.execute("SELECT data FROM checkpoint WHERE id = 1").fetchone()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(zlib.decompress(row[0]))
        return data

    def connection(self) -> sqlite3.Connection:
        """The shared connection (for EventDedupe)."""
        return self._db

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class EventDedupe:
    """Camera event ids already processed: bounded, TTL-evicted, persisted (edge outboxes replay)."""

    def __init__(self, store: StateStore, ttl_s: float, max_entries: int) -> None:
        self._db = store.connection()
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()
        rows = self._db.execute(
            "SELECT event_id, ts FROM seen_events ORDER BY ts DESC LIMIT ?", (max_entries,)
        ).fetchall()
        for event_id, ts in reversed(rows):
            self._seen[event_id] = float(ts)

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, event_id: str) -> bool:
        """Was this event id processed within the TTL?"""
        with self._lock:
            return event_id in self._seen

    def first_time(self, event_id: str, now: float) -> bool:
        """Record the id; True if it was not seen within the TTL (so the event should be processed)."""
        with self._lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = now
            self._db.execute("INSERT OR REPLACE INTO seen_events(event_id, ts) VALUES (?, ?)", (event_id, now))
            self._evict(now)
            return True

    def _evict(self, now: float) -> None:
        horizon = now - self.ttl_s
        dropped: list[tuple[str]] = []
        while self._seen:
            event_id, ts = next(iter(self._seen.items()))
            if ts > horizon and len(self._seen) <= self.max_entries:
                break
            self._seen.popitem(last=False)
            dropped.append((event_id,))
        if dropped:
            self._db.executemany("DELETE FROM seen_events WHERE event_id = ?", dropped)
