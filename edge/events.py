"""From EventDrafts to ObjectEvents: unique ids, per-camera sequence numbers, snapshots, into the outbox.

Every event and its snapshots are committed to the durable outbox in one transaction, snapshots
first, so a consumer that sees an event can already fetch its pictures. Snapshot topics:
`camera/{id}/snapshot/{event_id}` for the draft's first role, `camera/{id}/snapshot/{event_id}.{role}`
for each further role; the event lists them all in `snapshots` and the first in `snapshot`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from detectors.core import EventDraft, Frame
from edge.config import SnapshotConfig
from edge.snapshots import FrameRing, SnapshotStore, render
from qinghe.codec import encode
from qinghe.contracts import ObjectEvent, SnapshotRef
from qinghe.outbox import Outbox, OutboxEntry, open_sqlite
from qinghe.topics import Topics

log = logging.getLogger(__name__)

Polygon = Sequence[tuple[float, float]]


class SeqStore:
    """Per-camera event sequence numbers in SQLite: strictly increasing, never reused across restarts.

    A crash between taking a number and committing the event can skip a number; it never repeats one.
    """

    def __init__(self, path: Path | str) -> None:
        self._db = open_sqlite(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS seq (camera_id TEXT PRIMARY KEY, last INTEGER NOT NULL)")
        self._lock = threading.Lock()

    def next(self, camera_id: str) -> int:
        """The next number for `camera_id` (1 for its first event), committed before it is returned."""
        with self._lock:
            self._db.execute(
                "INSERT INTO seq(camera_id, last) VALUES (?, 1) ON CONFLICT(camera_id) DO UPDATE SET last = last + 1",
                (camera_id,),
            )
            row = self._db.execute("SELECT last FROM seq WHERE camera_id = ?", (camera_id,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


@dataclass(frozen=True, slots=True)
class FrameContext:
    """What the publisher may draw from: the analysed frame, the camera's ring, its zones."""

    frame: Frame | None
    ring: FrameRing | None
    zones: Mapping[str, Polygon]
    before_s: float = 10.0


def new_event_id() -> str:
    """A random 32-hex-digit id (uuid4)."""
    return uuid.uuid4().hex


class EventPublisher:
    """Turns drafts into ObjectEvents and snapshots, committed to the outbox (thread-safe)."""

    def __init__(
        self,
        edge_id: str,
        topics: Topics,
        outbox: Outbox,
        *,
        seq: SeqStore,
        store: SnapshotStore | None,
        snapshots: SnapshotConfig,
        id_factory: Callable[[], str] = new_event_id,
    ) -> None:
        self.edge_id, self.topics, self.outbox, self.seq = edge_id, topics, outbox, seq
        self.store, self.settings, self._new_id = store, snapshots, id_factory
        self._lock = threading.Lock()
        self.published = 0
        self.snapshot_failures = 0

    def publish(
        self, camera_id: str, drafts: Sequence[EventDraft], ts: float, context: FrameContext
    ) -> list[ObjectEvent]:
        """Build, store and enqueue one ObjectEvent per draft; returns the events."""
        events: list[ObjectEvent] = []
        for draft in drafts:
            event_id = self._new_id()
            entries, refs = self._snapshots(camera_id, event_id, draft, ts, context)
            with self._lock:
                seq = self.seq.next(camera_id)
                event = _event(
                    draft, event_id=event_id, seq=seq, edge_id=self.edge_id, camera_id=camera_id, ts=ts, refs=refs
                )
                entries.append(OutboxEntry(self.topics.camera_event(camera_id), encode(event), qos=1))
                self.outbox.put_many(entries)
                self.published += 1
            events.append(event)
            log.info(
                "event %s %s %s/%s track %s seq %s",
                draft.type.value,
                draft.analytic,
                camera_id,
                draft.zone,
                draft.track_id,
                seq,
            )
        return events

    def _snapshots(
        self, camera_id: str, event_id: str, draft: EventDraft, ts: float, context: FrameContext
    ) -> tuple[list[OutboxEntry], tuple[SnapshotRef, ...]]:
        entries: list[OutboxEntry] = []
        refs: list[SnapshotRef] = []
        for i, role in enumerate(dict.fromkeys(draft.snapshot_roles)):
            picked = _pick_frame(role, draft, ts, context)
            if picked is None:
                continue
            frame_ts, frame = picked
            try:
                data = render(
                    frame,
                    draft.box,
                    f"{draft.label} {draft.score:.2f}",
                    zone=context.zones.get(draft.zone) if self.settings.draw_zones else None,
                    crop=self.settings.crop,
                    max_width=self.settings.max_width,
                    quality=self.settings.quality,
                )
            except ValueError:
                self.snapshot_failures += 1
                log.exception("snapshot %s of event %s could not be drawn", role, event_id)
                continue
            name = event_id if i == 0 else f"{event_id}.{role}"
            topic = self.topics.camera_snapshot(camera_id, name)
            entries.append(OutboxEntry(topic, data, qos=1))
            refs.append(SnapshotRef(topic=topic, role=role, ts=frame_ts))
            if self.store is not None:
                self.store.save(f"{camera_id}/{name}.jpg", data)
        return entries, tuple(refs)


def _pick_frame(role: str, draft: EventDraft, ts: float, context: FrameContext) -> tuple[float, Frame] | None:
    """The frame a role shows: `before` from the ring (`before_ts` attribute or before_s ago),
    `appeared` from the ring at `appeared_ts` if given, anything else the analysed frame."""
    wanted = draft.attributes.get("before_ts") if role == "before" else draft.attributes.get(f"{role}_ts")
    if role == "before" and not isinstance(wanted, int | float):
        wanted = ts - context.before_s
    if isinstance(wanted, int | float) and context.ring is not None and float(wanted) < ts:
        found = context.ring.before(float(wanted))
        if found is not None:
            return found
    if context.frame is None:
        return None
    return ts, context.frame


def _event(
    draft: EventDraft,
    *,
    event_id: str,
    seq: int,
    edge_id: str,
    camera_id: str,
    ts: float,
    refs: tuple[SnapshotRef, ...],
) -> ObjectEvent:
    box = (float(draft.box[0]), float(draft.box[1]), float(draft.box[2]), float(draft.box[3]))
    return ObjectEvent(
        event_id=event_id,
        seq=seq,
        edge_id=edge_id,
        camera_id=camera_id,
        type=draft.type,
        analytic=draft.analytic,
        label=draft.label,
        zone=draft.zone,
        track_id=draft.track_id,
        score=round(float(draft.score), 4),
        box=box,
        dwell_s=round(float(draft.dwell_s), 3),
        ts=ts,
        plate=draft.plate,
        plate_confidence=draft.plate_confidence,
        snapshot=refs[0].topic if refs else None,
        snapshots=refs,
        phase=draft.phase,
        outcome=draft.outcome,
        episode_id=draft.episode_id,
        attributes=dict(draft.attributes),
    )
