"""Per-sensor duplicate detection: the last stored (seq, ts) of each sensor; pure, persisted by the buffer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from qinghe.timefmt import to_rfc3339

LastSeen = tuple[int | None, float]  # (seq or None, ts epoch seconds)


class DedupState:
    """Remembers, per sensor, the seq and timestamp of the newest accepted reading.

    A reading is a duplicate when
    - it has a seq and the last one had a seq: seq <= last seq *and* ts <= last ts (a smaller seq
      with a newer timestamp is a device restart that reset its counter, and is accepted);
    - otherwise (no seq): ts <= last ts.
    Keys are sensor ids from the registry; `retain` evicts sensors that left it.
    """

    __slots__ = ("_last",)

    def __init__(self, entries: Iterable[tuple[str, int | None, float]] = ()) -> None:
        self._last: dict[str, LastSeen] = {sensor: (seq, ts) for sensor, seq, ts in entries}

    def check(self, sensor_id: str, seq: int | None, ts: float) -> str | None:
        """None if the reading is new (and remember it); else why it is a duplicate."""
        last = self._last.get(sensor_id)
        if last is not None:
            last_seq, last_ts = last
            if seq is not None and last_seq is not None:
                if seq <= last_seq and ts <= last_ts:
                    return f"seq {seq} of sensor {sensor_id} was already received (last seq {last_seq})"
            elif ts <= last_ts:
                return (
                    f"ts {to_rfc3339(ts)} of sensor {sensor_id} is not after the last reading's "
                    f"{to_rfc3339(last_ts)} (readings without seq are deduplicated by timestamp)"
                )
        self._last[sensor_id] = (seq, ts)
        return None

    def last(self, sensor_id: str) -> LastSeen | None:
        """The newest accepted (seq, ts) of a sensor, if any."""
        return self._last.get(sensor_id)

    def retain(self, sensor_ids: Iterable[str]) -> int:
        """Evict every sensor not in `sensor_ids` (no longer in the registry); returns how many were dropped."""
        keep = set(sensor_ids)
        gone = [sensor for sensor in self._last if sensor not in keep]
        for sensor in gone:
            del self._last[sensor]
        return len(gone)

    def __len__(self) -> int:
        return len(self._last)

    def __iter__(self) -> Iterator[tuple[str, int | None, float]]:
        return ((sensor, seq, ts) for sensor, (seq, ts) in self._last.items())
