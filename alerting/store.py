"""Durable alerting state in one SQLite file (WAL): incidents, voice warnings, silences, suppressed signals,
seen signal ids, camera states, per-rule counters, webhook deliveries and the outbox, all written in the
same transaction as the state change that produced them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerting.core import CoreState
from alerting.emit import Changes
from alerting.model import RECORD, SILENCE, SUPPRESSED, VOICE, IncidentRecord, dump
from qinghe.codec import encode
from qinghe.outbox import OUTBOX_SCHEMA, OutboxEntry, open_sqlite

_SCHEMA = (
    OUTBOX_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, colour TEXT NOT NULL, state TEXT NOT NULL, zone TEXT NOT NULL,
    rule_id TEXT NOT NULL, team TEXT NOT NULL, opened_at REAL NOT NULL, updated_at REAL NOT NULL,
    archived_at REAL, outcome TEXT, doc BLOB NOT NULL, ext BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_archived ON incidents(archived_at);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents(opened_at);
CREATE TABLE IF NOT EXISTS voice (warning_id TEXT PRIMARY KEY, incident_id TEXT NOT NULL, task BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, silence BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS suppressed (dedup_key TEXT PRIMARY KEY, rule_id TEXT NOT NULL, reason TEXT NOT NULL,
    entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS seen (signal_id TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_ts ON seen(ts);
CREATE TABLE IF NOT EXISTS cameras (camera_id TEXT PRIMARY KEY, state TEXT NOT NULL, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rule_stats (day TEXT NOT NULL, rule_id TEXT NOT NULL, name TEXT NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (day, rule_id, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS webhooks (delivery_id TEXT PRIMARY KEY, webhook TEXT NOT NULL, event TEXT NOT NULL,
    body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, created_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS webhooks_next ON webhooks(next_at);
"""
)


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A webhook delivery waiting for its next attempt."""

    delivery_id: str
    webhook: str
    event: str
    body: bytes
    attempts: int
    created_at: float


class AlertingStore:
    """The SQLite file; `commit` writes one core step (state + outbox rows) atomically."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self._db = open_sqlite(self.path)
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # ----- writes ------------------------------------------------------------------------------------
    def commit(self, changes: Changes, next_seq: int | None = None) -> None:
        """Persist a core step and its outbox rows in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write(changes, next_seq)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _write(self, ch: Changes, next_seq: int | None) -> None:
        db = _Skipper(self._db)
        db.executemany(
            "INSERT OR REPLACE INTO incidents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [_incident_row(r, ch.docs.get(r.id)) for r in ch.incidents.values()],
        )
        db.executemany(
            "INSERT OR REPLACE INTO voice VALUES (?,?,?)",
            [(t.warning_id, t.incident_id, dump(VOICE, t)) for t in ch.voice.values()],
        )
        db.executemany("DELETE FROM voice WHERE warning_id = ?", [(w,) for w in ch.voice_removed])
        db.executemany(
            "INSERT OR REPLACE INTO silences VALUES (?,?)",
            [(s.id, dump(SILENCE, s)) for s in ch.silences.values()],
        )
        db.executemany("DELETE FROM silences WHERE id = ?", [(s,) for s in ch.silences_removed])
        db.executemany(
            "INSERT OR REPLACE INTO suppressed VALUES (?,?,?,?)",
            [(k, e.signal.rule_id, e.reason, dump(SUPPRESSED, e)) for k, e in ch.suppressed.items()],
        )
        db.executemany("DELETE FROM suppressed WHERE dedup_key = ?", [(k,) for k in ch.suppressed_removed])
        db.executemany("INSERT OR REPLACE INTO seen VALUES (?,?)", ch.seen)
        if ch.seen_evict_before is not None:
            self._db.execute("DELETE FROM seen WHERE ts < ?", (ch.seen_evict_before,))
        db.executemany("INSERT OR REPLACE INTO cameras VALUES (?,?,?)", [(k, s, t) for k, (s, t) in ch.cameras.items()])
        db.executemany(
            "INSERT INTO rule_stats VALUES (?,?,?,?) ON CONFLICT(day, rule_id, name) DO UPDATE SET n = n + excluded.n",
            [(day, rule, name, n) for (day, rule), counts in ch.stats.items() for name, n in counts.items()],
        )
        meta = dict(ch.meta)
        if next_seq is not None:
            meta["next_seq"] = str(next_seq)
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)", list(meta.items()))
        db.executemany(
            "INSERT OR IGNORE INTO webhooks(delivery_id, webhook, event, body, next_at, created_at) "
            "VALUES (?,?,?,?,?,?)",
            [(j.delivery_id, j.webhook, j.event, j.body, j.created_at, j.created_at) for j in ch.webhooks],
        )
        db.executemany(
            "INSERT INTO outbox(topic, payload, qos, retain) VALUES (?,?,?,?)",
            [(e.topic, e.payload, e.qos, int(e.retain)) for e in ch.outbox],
        )

    def put_outbox(self, entries: list[OutboxEntry]) -> None:
        """Queue messages that carry no state change (dead letters, speaker commands)."""
        self.commit(Changes(outbox=list(entries)))

    def purge(self, archived_before: float, day_before: str = "") -> int:
        """Delete incidents archived before `archived_before` and rule counters of days before `day_before`."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM incidents WHERE archived_at IS NOT NULL AND archived_at < ?", (archived_before,)
            )
            self._db.execute("DELETE FROM rule_stats WHERE day < ?", (day_before,))
            return cursor.rowcount

    # ----- reads -------------------------------------------------------------------------------------
    def load(self) -> CoreState:
        """Everything the core needs after a restart (unarchived incidents, timers, routing state)."""
        with self._lock:
            db = self._db
            state = CoreState()
            for doc, ext in db.execute("SELECT doc, ext FROM incidents WHERE archived_at IS NULL"):
                record = _record(doc, ext)
                state.records[record.id] = record
            state.voice = {w: VOICE.validate_json(b) for w, b in db.execute("SELECT warning_id, task FROM voice")}
            state.silences = {i: SILENCE.validate_json(b) for i, b in db.execute("SELECT id, silence FROM silences")}
            state.suppressed = {
                k: SUPPRESSED.validate_json(b) for k, b in db.execute("SELECT dedup_key, entry FROM suppressed")
            }
            state.seen = dict(db.execute("SELECT signal_id, ts FROM seen").fetchall())
            state.cameras = {c: (s, t) for c, s, t in db.execute("SELECT camera_id, state, since FROM cameras")}
            row = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
            state.next_seq = int(row[0]) if row else 1
            return state

    def records(self, *, include_archived: bool = True, since: float | None = None) -> Iterator[IncidentRecord]:
        """Stored incidents (for reports), oldest first."""
        query = "SELECT doc, ext FROM incidents WHERE (? OR archived_at IS NULL) AND opened_at >= ? ORDER BY opened_at"
        with self._lock:
            rows = self._db.execute(query, (int(include_archived), since or 0.0)).fetchall()
        for doc, ext in rows:
            yield _record(doc, ext)

    def record(self, incident_id: str) -> IncidentRecord | None:
        """One stored incident, archived or not."""
        with self._lock:
            row = self._db.execute("SELECT doc, ext FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return _record(row[0], row[1]) if row else None

    def rule_stats(self, since_day: str = "") -> dict[str, dict[str, int]]:
        """Per-rule counters summed over days >= `since_day` (YYYY-MM-DD)."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT rule_id, name, SUM(n) FROM rule_stats WHERE day >= ? GROUP BY rule_id, name", (since_day,)
            ).fetchall()
        for rule_id, name, n in rows:
            out.setdefault(rule_id, {})[name] = int(n)
        return out

    def suppressed_count(self) -> int:
        """Signals currently held back."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM suppressed").fetchone()[0])

    def outbox_depth(self) -> int:
        """Rows not yet acknowledged by the broker."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def outbox_after(self, row_id: int, limit: int) -> list[tuple[int, OutboxEntry]]:
        """Outbox rows with id > `row_id`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (row_id, limit)
            ).fetchall()
        return [(int(i), OutboxEntry(t, bytes(p), int(q), bool(r))) for i, t, p, q, r in rows]

    def outbox_delete(self, row_ids: list[int]) -> None:
        """Forget rows the broker acknowledged."""
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in row_ids])

    def outbox_entries(self, topic_contains: str = "") -> list[OutboxEntry]:
        """Messages still waiting for the broker (diagnostics and tests)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT topic, payload, qos, retain FROM outbox WHERE instr(topic, ?) > 0 ORDER BY id",
                (topic_contains,),
            ).fetchall()
        return [OutboxEntry(t, bytes(p), int(q), bool(r)) for t, p, q, r in rows]

    def deliveries(self) -> list[tuple[str, int, str]]:
        """Webhook deliveries not yet done: (delivery id, attempts so far, last error)."""
        with self._lock:
            rows = self._db.execute("SELECT delivery_id, attempts, last_error FROM webhooks ORDER BY created_at")
            return [(str(d), int(a), str(e)) for d, a, e in rows.fetchall()]

    # ----- webhook queue -----------------------------------------------------------------------------
    def due_deliveries(self, now: float, limit: int = 50) -> list[PendingDelivery]:
        """Webhook deliveries whose next attempt is due, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT delivery_id, webhook, event, body, attempts, created_at FROM webhooks "
                "WHERE next_at <= ? ORDER BY next_at, created_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [PendingDelivery(d, w, e, bytes(b), int(a), float(c)) for d, w, e, b, a, c in rows]

    def next_delivery_at(self) -> float | None:
        """When the next webhook attempt is due."""
        with self._lock:
            row = self._db.execute("SELECT MIN(next_at) FROM webhooks").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def delivery_done(self, delivery_id: str) -> None:
        """Delivered: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM webhooks WHERE delivery_id = ?", (delivery_id,))

    def delivery_retry(self, delivery_id: str, attempts: int, next_at: float, error: str) -> None:
        """A failed attempt: try again at `next_at`."""
        with self._lock:
            self._db.execute(
                "UPDATE webhooks SET attempts = ?, next_at = ?, last_error = ? WHERE delivery_id = ?",
                (attempts, next_at, error[:500], delivery_id),
            )

    def delivery_give_up(self, delivery_id: str, dead_letter: OutboxEntry) -> None:
        """Give up: delete the delivery and queue its dead letter in the same transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM webhooks WHERE delivery_id = ?", (delivery_id,))
            self._db.execute(
                "INSERT INTO outbox(topic, payload, qos, retain) VALUES (?,?,?,?)",
                (dead_letter.topic, dead_letter.payload, dead_letter.qos, int(dead_letter.retain)),
            )
            self._db.execute("COMMIT")

    def pending_deliveries(self) -> int:
        """Webhook deliveries not yet done."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM webhooks").fetchone()[0])


class _Skipper:
    """Runs executemany only when there are rows (most steps touch few tables)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def executemany(self, sql: str, rows: list[Any]) -> None:
        """Execute `sql` for every row, if any."""
        if rows:
            self.db.executemany(sql, rows)


def _record(doc: bytes, ext: bytes) -> IncidentRecord:
    """An incident record from its public document and the rest of the record."""
    data = json.loads(ext)
    data["incident"] = json.loads(doc)
    return RECORD.validate_python(data)


def _incident_row(record: IncidentRecord, doc: bytes | None) -> tuple[object, ...]:
    inc = record.incident
    return (
        inc.id,
        inc.type,
        inc.colour.value,
        inc.state.value,
        inc.zone,
        inc.rule_id,
        record.team,
        inc.opened_at,
        inc.updated_at,
        record.archived_at,
        inc.outcome,
        doc if doc is not None else encode(inc),
        RECORD.dump_json(record, exclude={"incident"}),
    )
