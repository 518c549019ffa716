"""Receiving-side deduplication by message id (event_id): bounded, with a TTL, optionally persisted.

The edge outbox delivers at least once (a replay after a lost PUBACK or a restart resends what the
broker may already have). A consumer asks `seen(event_id, now)`: False the first time (and the id is
remembered), True for every repeat within the TTL. At most `capacity` ids are held; the oldest are
forgotten first. With a path, ids survive a restart of the consumer (SQLite WAL).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

from qinghe.outbox import open_sqlite


class EventDeduper:
    """Remembers ids for `ttl_s` seconds, at most `capacity` of them; thread-safe."""

    def __init__(self, path: Path | str | None = None, capacity: int = 100_000, ttl_s: float = 7 * 24 * 3600.0) -> None:
        if capacity < 1 or ttl_s <= 0:
            raise ValueError("capacity must be >= 1 and ttl_s > 0")
        self.capacity, self.ttl_s = capacity, ttl_s
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = open_sqlite(path)
            self._db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, ts REAL NOT NULL)")
            rows = self._db.execute("SELECT id, ts FROM seen ORDER BY ts DESC LIMIT ?", (capacity,)).fetchall()
            for key, ts in reversed(rows):
                self._ids[str(key)] = float(ts)
        self.duplicates = 0

    def state_size(self) -> int:
        """Ids held in memory."""
        return len(self._ids)

    def seen(self, key: str, now: float) -> bool:
        """True if `key` was seen within the TTL (a duplicate); otherwise remember it and return False."""
        with self._lock:
            self._expire(now)
            if key in self._ids:
                self.duplicates += 1
                return True
            self._ids[key] = now
            evicted: list[str] = []
            while len(self._ids) > self.capacity:
                evicted.append(self._ids.popitem(last=False)[0])
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO seen(id, ts) VALUES (?, ?)", (key, now))
                if evicted:
                    self._db.executemany("DELETE FROM seen WHERE id = ?", [(k,) for k in evicted])
            return False

    def _expire(self, now: float) -> None:
        cutoff = now - self.ttl_s
        expired = False
        while self._ids:
            ts = next(iter(self._ids.values()))
            if ts > cutoff:
                break
            self._ids.popitem(last=False)
            expired = True
        if expired and self._db is not None:
            self._db.execute("DELETE FROM seen WHERE ts <= ?", (cutoff,))

    def close(self) -> None:
        """Close the database (if any)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
