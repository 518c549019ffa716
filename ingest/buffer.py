"""The disk buffer: SQLite (WAL) rows of line-protocol points plus the dedup state, committed together."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ingest.dedup import Snapshot
from qinghe.outbox import open_sqlite

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dedup (
    sensor TEXT PRIMARY KEY,
    seq INTEGER,
    ts REAL NOT NULL,
    seen BLOB NOT NULL,
    recent BLOB NOT NULL
) WITHOUT ROWID;
"""

_UPSERT = (
    "INSERT INTO dedup(sensor, seq, ts, seen, recent) VALUES (?, ?, ?, ?, ?) ON CONFLICT(sensor) DO UPDATE "
    "SET seq = excluded.seq, ts = excluded.ts, seen = excluded.seen, recent = excluded.recent"
)


class DiskBuffer:
    """Points waiting for the database, and every sensor's dedup window.

    `append` commits points and dedup state in one transaction, so after a crash the two agree:
    a reading is either stored and remembered, or neither (and the broker redelivers it).
    The sink reads with `peek` and removes rows with `delete_through` only after a successful write.
    """

    def __init__(self, path: Path | str, sync: str = "normal") -> None:
        self.path = Path(path)
        self._writer = open_sqlite(self.path)
        self._writer.executescript(_SCHEMA)
        if sync == "full":
            self._writer.execute("PRAGMA synchronous=FULL")
        # Checkpoints (which fsync) run on the sink thread via `checkpoint()`, never inside a commit
        # the committer is waiting on.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._writer.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        self._reader = open_sqlite(self.path)
        self._write_lock = threading.Lock()
        self._depth = int(self._writer.execute("SELECT COUNT(*) FROM points").fetchone()[0])

    @property
    def depth(self) -> int:
        """Points on disk not yet written to the database."""
        return self._depth

    def append(self, lines: Sequence[str], dedup: Mapping[str, Snapshot]) -> None:
        """Commit points and the dedup windows of their sensors in one transaction (raises sqlite3.Error)."""
        if not lines and not dedup:
            return
        with self._write_lock:
            db = self._writer
            db.execute("BEGIN")
            try:
                db.executemany("INSERT INTO points(line) VALUES (?)", [(line,) for line in lines])
                db.executemany(_UPSERT, [(sensor, *snapshot) for sensor, snapshot in dedup.items()])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._depth += len(lines)

    def peek(self, limit: int) -> list[tuple[int, str]]:
        """The oldest `limit` points as (row id, line), oldest first."""
        rows = self._reader.execute("SELECT id, line FROM points ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(int(row_id), str(line)) for row_id, line in rows]

    def delete_through(self, row_id: int) -> int:
        """Delete every point with id <= `row_id` (the sink wrote them); returns how many."""
        with self._write_lock:
            deleted = self._writer.execute("DELETE FROM points WHERE id <= ?", (row_id,)).rowcount
            self._depth -= deleted
        return int(deleted)

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file (PASSIVE: never blocks the committer)."""
        self._reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def load_dedup(self) -> list[tuple[str, int | None, float, bytes, bytes]]:
        """Every sensor's persisted dedup window, to rebuild the dedup state after a restart."""
        rows = self._reader.execute("SELECT sensor, seq, ts, seen, recent FROM dedup").fetchall()
        return [
            (str(sensor), None if seq is None else int(seq), float(ts), bytes(seen), bytes(recent))
            for sensor, seq, ts, seen, recent in rows
        ]

    def forget_sensors(self, keep: Iterable[str]) -> int:
        """Evict dedup state of sensors no longer in the registry; returns how many were removed."""
        keep_set = set(keep)
        gone = [(row[0],) for row in self.load_dedup() if row[0] not in keep_set]
        if gone:
            with self._write_lock:
                self._writer.executemany("DELETE FROM dedup WHERE sensor = ?", gone)
        return len(gone)

    def close(self) -> None:
        """Close both connections (rows stay on disk)."""
        with self._write_lock:
            for conn in (self._reader, self._writer):
                try:
                    conn.close()
                except sqlite3.Error:
                    log.exception("closing %s failed", self.path)
