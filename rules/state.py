"""Per-instance state: the inputs an instance has seen and where its state machine stands (checkpointable)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from qinghe.codec import decode, encode
from qinghe.contracts import Colour, Evidence, GeoPoint, ObjectEvent, SensorKind, SensorReading, SourceRef
from rules.series import AnySeries, series_from_json

MAX_EVENTS = 10_000  # per instance, for count windows
MAX_SOURCES = 12
MAX_EVIDENCE = 20


class Phase(StrEnum):
    """Where an instance's lifecycle stands."""

    INACTIVE = "inactive"
    FIRING = "firing"


@dataclass(slots=True)
class Env:
    """What conditions may read besides the instance: the time and camera health."""

    now: float
    cameras: dict[str, str] = field(default_factory=dict)  # camera_id -> online | degraded | offline


def episode_of(event: ObjectEvent) -> str:
    """The episode an event belongs to (its episode_id, else camera/analytic/track)."""
    return event.episode_id or f"{event.camera_id}/{event.analytic}/{event.track_id}"


class Instance:
    """One rule instance (one key, e.g. one sensor or one parking episode)."""

    __slots__ = (
        "boost",
        "camera_id",
        "colour",
        "cycles",
        "dirty",
        "episodes",
        "events",
        "evidence",
        "flapping",
        "gap",
        "key",
        "labels",
        "last_active",
        "last_input",
        "latest_event",
        "location_key",
        "opened_at",
        "phase",
        "raw_clear_since",
        "readings",
        "resolve_since",
        "seen",
        "series",
        "sources",
        "step_since",
        "tier",
        "true_since",
        "unknown",
        "unknown_since",
        "wake_at",
    )  # fmt: skip

    def __init__(self, key: tuple[str, ...], labels: dict[str, str], tiers: int, now: float) -> None:
        self.key = key
        self.labels = labels
        self.camera_id: str | None = labels.get("camera")
        self.location_key: tuple[str, str] | None = None  # ("sensor"|"camera", id) for correlation and location
        # inputs
        self.series: dict[str, AnySeries] = {}
        self.seen: dict[str, float] = {}  # series -> last arrival time
        self.gap: dict[str, float] = {}  # series -> silence that makes it unknown
        self.last_input = now
        self.latest_event: ObjectEvent | None = None
        self.episodes: dict[str, ObjectEvent] = {}
        self.events: deque[ObjectEvent] | None = None  # created on the first event (most instances have none)
        self.sources: dict[str, SourceRef] = {}  # camera events (and correlated sources)
        self.readings: dict[str, SensorReading] = {}  # newest reading per contributing sensor
        self.evidence: dict[str, Evidence] = {}
        # state machine
        self.phase = Phase.INACTIVE
        self.tier: int | None = None  # index of the tier that set the colour
        self.colour: Colour | None = None  # colour as last signalled (with boost)
        self.boost = 0
        self.true_since: list[float | None] = [None] * tiers
        self.step_since: float | None = None
        self.resolve_since: float | None = None
        self.last_active: float | None = None
        self.opened_at: float | None = None
        self.unknown = False
        self.unknown_since: float | None = None
        self.flapping = False
        self.cycles: deque[float] | None = None  # fire/resolve cycles, only for rules with `flapping`
        self.raw_clear_since: float | None = None
        self.wake_at: float | None = None
        self.dirty = False  # changed since it was last checkpointed (the engine keeps the list)

    def add_source(self, ref: SourceRef) -> bool:
        """Remember a contributing reading or event (newest per id); True if the id is new."""
        new = ref.id not in self.sources
        self.sources.pop(ref.id, None)
        self.sources[ref.id] = ref
        while len(self.sources) > MAX_SOURCES:
            del self.sources[next(iter(self.sources))]
        return new

    def log_event(self, event: ObjectEvent, horizon: float) -> None:
        """Keep an event for count windows, dropping those older than `horizon`."""
        if self.events is None:
            self.events = deque(maxlen=MAX_EVENTS)
        events = self.events
        while events and events[0].ts <= horizon:
            events.popleft()
        events.append(event)

    def record_cycle(self, now: float, window_s: float) -> int:
        """Note a fire/resolve cycle at `now`; returns the cycles within the window."""
        if self.cycles is None:
            self.cycles = deque(maxlen=64)
        cycles = self.cycles
        cycles.append(now)
        while cycles and cycles[0] <= now - window_s:
            cycles.popleft()
        return len(cycles)

    def last_cycle(self) -> float | None:
        """When the latest cycle ended."""
        return self.cycles[-1] if self.cycles else None

    def add_reading(self, reading: SensorReading) -> None:
        """Remember the newest reading of a contributing sensor (bounded)."""
        readings = self.readings
        if reading.sensor_id not in readings and len(readings) >= MAX_SOURCES:
            del readings[next(iter(readings))]
        readings[reading.sensor_id] = reading

    def add_evidence(self, items: list[Evidence]) -> bool:
        """Remember snapshot evidence; True if any item is new."""
        new = False
        for item in items:
            if item.ref not in self.evidence:
                self.evidence[item.ref] = item
                new = True
        while len(self.evidence) > MAX_EVIDENCE:
            del self.evidence[next(iter(self.evidence))]
        return new

    def reset_episode(self) -> None:
        """Forget the state of the last incident (after it resolved); its tier and colour stay for the record."""
        self.boost = 0
        self.opened_at = None
        self.resolve_since = None
        self.step_since = None
        self.flapping = False
        self.raw_clear_since = None

    # ----- checkpoint ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Checkpoint form (plain JSON types); fields at their initial value are left out (a checkpoint
        serializes thousands of instances, most of them quiet)."""
        data: dict[str, Any] = {
            "key": list(self.key), "labels": self.labels, "last_input": self.last_input, "phase": self.phase.value,
            "true_since": self.true_since,
        }  # fmt: skip
        if self.camera_id is not None:
            data["camera_id"] = self.camera_id
        if self.location_key is not None:
            data["location_key"] = list(self.location_key)
        if self.series:
            data["series"] = {k: s.to_json() for k, s in self.series.items()}
            data["seen"], data["gap"] = self.seen, self.gap
        if self.readings:
            data["readings"] = [_reading_json(r) for r in self.readings.values()]
        if self.latest_event is not None or self.episodes or self.events or self.sources or self.evidence:
            data["latest_event"] = _event_json(self.latest_event)
            data["episodes"] = {k: _event_json(e) for k, e in self.episodes.items()}
            data["events"] = [_event_json(e) for e in self.events or ()]
            data["sources"] = [encode(s).decode() for s in self.sources.values()]
            data["evidence"] = [encode(e).decode() for e in self.evidence.values()]
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.colour is not None:
            data["colour"] = self.colour.value
        if self.boost or self.unknown or self.flapping or self.cycles:
            data.update(boost=self.boost, unknown=self.unknown, flapping=self.flapping, cycles=list(self.cycles or ()))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], tiers: int) -> Instance:
        """Inverse of to_json (also of its earlier form, which wrote every field); the tier timers are
        resized if the rule's tiers changed."""
        inst = cls(tuple(data["key"]), dict(data["labels"]), tiers, float(data["last_input"]))
        inst.camera_id = data.get("camera_id")
        location = data.get("location_key")
        inst.location_key = (location[0], location[1]) if location else None
        inst.series = {k: series_from_json(v) for k, v in data.get("series", {}).items()}
        inst.seen, inst.gap = dict(data.get("seen", {})), dict(data.get("gap", {}))
        inst.latest_event = _event_from(data.get("latest_event"))
        inst.episodes = {k: e for k, v in data.get("episodes", {}).items() if (e := _event_from(v)) is not None}
        for raw in data.get("events", ()):
            if (event := _event_from(raw)) is not None:
                inst.log_event(event, float("-inf"))
        inst.sources = {s.id: s for s in (decode(SourceRef, raw) for raw in data.get("sources", ()))}
        inst.readings = {r.sensor_id: r for r in map(_reading_from, data.get("readings", ()))}
        inst.evidence = {e.ref: e for e in (decode(Evidence, raw) for raw in data.get("evidence", ()))}
        inst.phase = Phase(data["phase"])
        tier = data.get("tier")
        inst.tier = tier if tier is None or tier < tiers else tiers - 1
        inst.colour = Colour(data["colour"]) if data.get("colour") else None
        inst.boost = int(data.get("boost", 0))
        since = list(data["true_since"])[:tiers]
        inst.true_since = since + [None] * (tiers - len(since))
        for name in _OPTIONAL:
            if name != "tier":
                setattr(inst, name, data.get(name))
        inst.unknown, inst.flapping = bool(data.get("unknown", False)), bool(data.get("flapping", False))
        if data.get("cycles"):
            inst.cycles = deque(data["cycles"], maxlen=64)
        return inst


_OPTIONAL = ("tier", "step_since", "resolve_since", "last_active", "opened_at", "unknown_since", "raw_clear_since")


def _reading_json(r: SensorReading) -> list[Any]:
    """Compact checkpoint form of a reading: [sensor, kind, zone, ts, values, seq, [lat, lon] | null]."""
    loc = r.location
    return [r.sensor_id, r.kind.value, r.zone, r.ts, r.values, r.seq, None if loc is None else [loc.lat, loc.lon]]


def _reading_from(raw: list[Any] | str) -> SensorReading:
    """Inverse of _reading_json; checkpoints written before it hold wire-format JSON strings."""
    if isinstance(raw, str):
        return decode(SensorReading, raw)
    sensor, kind, zone, ts, values, seq, loc = raw
    location = None if loc is None else GeoPoint(float(loc[0]), float(loc[1]))
    return SensorReading(sensor, SensorKind(kind), zone, float(ts), dict(values), seq, location)


def _event_json(event: ObjectEvent | None) -> str | None:
    return None if event is None else encode(event).decode()


def _event_from(raw: str | None) -> ObjectEvent | None:
    return None if raw is None else decode(ObjectEvent, raw)
