"""Durable rules state: the engine checkpoint (one row per rule instance, saved incrementally) and the ids
of camera events already processed (SQLite)."""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qinghe.outbox import open_sqlite
from rules.checkpoint import Batch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_state (
    id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    rule_id TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (rule_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_events (event_id TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_events_ts ON seen_events(ts);
"""


class StateStore:
    """One SQLite file: the engine checkpoint and the seen-event table.

    The checkpoint is the engine's snapshot without instances (`engine_state`) plus one row per instance
    (`instances`), so a save writes only what changed. Checkpoints written by earlier versions (one
    compressed blob in `checkpoint`) are still read, and replaced by the first incremental save. Saves use
    their own connection, so the event table's writes never join a checkpoint's transaction.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = open_sqlite(self.path)
        self._db.executescript(_SCHEMA)
        self._saves = open_sqlite(self.path)
        self._lock = threading.Lock()

    def save_changes(
        self, batches: Sequence[Batch], meta: dict[str, Any], saved_at: float, *, replace: bool = False
    ) -> int:
        """Apply a checkpoint's batches in order and replace the engine state, in one transaction (with
        `replace`, the batches hold every instance and the saved ones are dropped first); returns the
        instance rows written."""
        state = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            db = self._saves
            db.execute("BEGIN")
            try:
                if replace:
                    db.execute("DELETE FROM instances")
                for batch in batches:
                    db.executemany("DELETE FROM instances WHERE rule_id = ?", [(r,) for r in batch.dropped_rules])
                    db.executemany("DELETE FROM instances WHERE rule_id = ? AND key = ?", batch.dropped)
                    db.executemany("INSERT OR REPLACE INTO instances(rule_id, key, data) VALUES (?, ?, ?)", batch.rows)
                db.execute(
                    "INSERT OR REPLACE INTO engine_state(id, saved_at, data) VALUES (1, ?, ?)", (saved_at, state)
                )
                db.execute("DELETE FROM checkpoint")  # an older version's blob, superseded now
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return sum(len(b.rows) for b in batches)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint as {"engine": snapshot, "saved_at", "legacy"}, or None."""
        with self._lock:
            row = self._db.execute("SELECT saved_at, data FROM engine_state WHERE id = 1").fetchone()
            if row is None:
                return self._load_legacy()
            engine: dict[str, Any] = json.loads(row[1])
            instances: dict[str, list[Any]] = {}
            for rule_id, data in self._db.execute("SELECT rule_id, data FROM instances"):
                instances.setdefault(rule_id, []).append(json.loads(data))
        engine["instances"] = instances
        return {"engine": engine, "saved_at": float(row[0]), "legacy": False}

    def _load_legacy(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT data FROM checkpoint WHERE id = 1").fetchone()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(zlib.decompress(row[0]))
        data["legacy"] = True
        return data

    def connection(self) -> sqlite3.Connection:
        """The shared connection (for EventDedupe)."""
        return self._db

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._saves.close()
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
