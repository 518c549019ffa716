"""Per-sensor duplicate detection over a window of recent seqs and timestamps; pure, persisted by the buffer.

Readings may arrive out of order (a broker can deliver a live message before the backlog it restored
after a restart), so "seq <= last seq" is not a duplicate test: a late reading that was never received
must still be stored. Each sensor keeps the highest seq with a bitmap of the `SEQ_WINDOW` seqs below it,
and the last `TS_WINDOW` timestamps of readings sent without a seq.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from qinghe.timefmt import to_rfc3339

SEQ_WINDOW = 1024  # seqs remembered below the highest one
TS_WINDOW = 64  # timestamps remembered for readings without seq
_MASK = (1 << SEQ_WINDOW) - 1

Snapshot = tuple[int | None, float, bytes, bytes]  # (highest seq, newest ts, seen bitmap, recent ts)


@dataclass(slots=True)
class _Window:
    seq: int | None = None  # highest seq received
    seen: int = 0  # bit i set: seq - i was received
    ts: float = float("-inf")  # newest timestamp received
    recent: list[float] = field(default_factory=list)  # sorted timestamps of readings without seq


class DedupState:
    """Decides whether a reading was already received, and remembers it when it was not.

    With a seq: a duplicate is a seq already in the window, unless its timestamp is newer than
    anything received (a device that restarted and reset its counter); a seq older than the window
    is accepted only with such a newer timestamp. Without a seq: a duplicate is a timestamp already
    received, or one older than the last `TS_WINDOW` readings. Keys are registry sensor ids;
    `retain` evicts sensors that left the registry, and each window is bounded.
    """

    __slots__ = ("_windows",)

    def __init__(self, entries: Iterable[tuple[str, int | None, float, bytes, bytes]] = ()) -> None:
        self._windows: dict[str, _Window] = {}
        for sensor, seq, ts, seen, recent in entries:
            count = len(recent) // 8
            self._windows[sensor] = _Window(
                seq, int.from_bytes(seen, "little"), ts, list(struct.unpack(f"<{count}d", recent[: count * 8]))
            )

    def check(self, sensor_id: str, seq: int | None, ts: float) -> str | None:
        """None if the reading is new (and remember it); else why it is a duplicate."""
        window = self._windows.get(sensor_id)
        if window is None:
            window = self._windows[sensor_id] = _Window()
        reason = _check_seq(sensor_id, window, seq, ts) if seq is not None else _check_ts(sensor_id, window, ts)
        if reason is None and ts > window.ts:
            window.ts = ts
        return reason

    def snapshot(self, sensor_id: str) -> Snapshot | None:
        """The persistable state of one sensor."""
        w = self._windows.get(sensor_id)
        if w is None:
            return None
        recent = struct.pack(f"<{len(w.recent)}d", *w.recent)
        return w.seq, w.ts, w.seen.to_bytes(SEQ_WINDOW // 8, "little"), recent

    def last(self, sensor_id: str) -> tuple[int | None, float] | None:
        """The highest seq and the newest timestamp received from a sensor, if any."""
        w = self._windows.get(sensor_id)
        return (w.seq, w.ts) if w is not None else None

    def retain(self, sensor_ids: Iterable[str]) -> int:
        """Evict every sensor not in `sensor_ids` (no longer in the registry); returns how many were dropped."""
        keep = set(sensor_ids)
        gone = [sensor for sensor in self._windows if sensor not in keep]
        for sensor in gone:
            del self._windows[sensor]
        return len(gone)

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self) -> Iterator[tuple[str, int | None, float, bytes, bytes]]:
        for sensor in list(self._windows):
            snap = self.snapshot(sensor)
            assert snap is not None
            yield (sensor, *snap)


def _check_seq(sensor_id: str, w: _Window, seq: int, ts: float) -> str | None:
    if w.seq is None or seq > w.seq:
        shift = seq - w.seq if w.seq is not None else SEQ_WINDOW
        w.seen = ((w.seen << shift) | 1) & _MASK if shift < SEQ_WINDOW else 1
        w.seq = seq
        return None
    offset = w.seq - seq
    restarted = ts > w.ts  # a reused seq with a newer timestamp: the device reset its counter
    if offset < SEQ_WINDOW and not w.seen >> offset & 1:
        w.seen |= 1 << offset  # a late reading, never received: keep it
        return None
    if restarted:
        w.seq, w.seen = seq, 1
        return None
    if offset < SEQ_WINDOW:
        return f"seq {seq} of sensor {sensor_id} was already received (highest seq {w.seq})"
    return f"seq {seq} of sensor {sensor_id} is older than the last {SEQ_WINDOW} received (highest seq {w.seq})"


def _check_ts(sensor_id: str, w: _Window, ts: float) -> str | None:
    recent = w.recent
    i = bisect.bisect_left(recent, ts)
    if i < len(recent) and recent[i] == ts:
        return f"ts {to_rfc3339(ts)} of sensor {sensor_id} was already received (readings without seq)"
    if len(recent) >= TS_WINDOW and i == 0:
        return (
            f"ts {to_rfc3339(ts)} of sensor {sensor_id} is older than its last {TS_WINDOW} readings "
            "(readings without seq are deduplicated by timestamp)"
        )
    recent.insert(i, ts)
    if len(recent) > TS_WINDOW:
        del recent[0]
    return None
