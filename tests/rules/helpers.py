"""Builders for rules tests: a small registry, rule sets from YAML text, inputs, and timeline runs."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Iterable
from pathlib import Path

from qinghe.contracts import EventType, GeoPoint, ObjectEvent, RuleSignal, SensorKind, SensorReading, SnapshotRef
from rules.engine import Engine, Input
from rules.loader import RuleSet, load_rules
from rules.registry import CameraInfo, Registry, SensorInfo

T0 = 1_772_413_200.0  # 2026-03-02T09:00:00+08:00, a Monday (a working day)
MIN = 60.0

REGISTRY = Registry.of(
    [
        SensorInfo("a1", "air", "z1", GeoPoint(30.2500, 119.7200), 60.0, frozenset({"school"}), "North gate air"),
        SensorInfo("a2", "air", "z1", GeoPoint(30.2510, 119.7210), 60.0),
        SensorInfo("a3", "air", "z2", GeoPoint(30.3000, 119.8000), 60.0),
        SensorInfo("s1", "smoke", "z2", GeoPoint(30.3001, 119.8001), 30.0),
        SensorInfo("n1", "noise", "z1", GeoPoint(30.2502, 119.7202), 60.0),
        SensorInfo("w1", "water_level", "z3", GeoPoint(30.2600, 119.7300), 60.0),
        SensorInfo("r1", "rain", "z3", GeoPoint(30.2601, 119.7301), 60.0),
    ],
    [
        CameraInfo("c1", "road_warden", ("z1",), GeoPoint(30.2501, 119.7201), "spk-1"),
        CameraInfo("c2", "ar_tower", ("z2",), GeoPoint(30.3002, 119.8002)),
        CameraInfo("c3", "thermal", ("z2",), GeoPoint(30.3003, 119.8003)),
    ],
)

_counter = itertools.count()


def rules_from(text: str, tmp_path: Path, registry: Registry = REGISTRY, name: str = "rules.yaml") -> RuleSet:
    """Write YAML text to a file and load it (ConfigError on problems)."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules([path], registry)


def reading(sensor: str, t: float, **values: float) -> SensorReading:
    """A validated reading of a sensor of REGISTRY."""
    return reading_of(sensor, t, values)


def reading_of(sensor: str, t: float, values: dict[str, float], registry: Registry = REGISTRY) -> SensorReading:
    """A validated reading of a registered sensor."""
    info = registry.sensors[sensor]
    floats = {k: float(v) for k, v in values.items()}
    return SensorReading(sensor, SensorKind(info.kind), info.zone, t, floats, None, info.location)


def event(
    camera: str,
    t: float,
    analytic: str,
    kind: str = "start",
    *,
    episode: str | None = None,
    phase: str | None = None,
    outcome: str | None = None,
    plate: str | None = None,
    label: str = "object",
    event_id: str | None = None,
    snapshots: tuple[str, ...] | list[str] = (),
    registry: Registry = REGISTRY,
) -> ObjectEvent:
    """A camera event (event ids are unique unless given)."""
    cam = registry.cameras[camera]
    event_id = event_id or f"e{next(_counter)}"
    refs = tuple(SnapshotRef(f"qh/v1/camera/{camera}/snapshot/{event_id}-{role}", role, t) for role in snapshots)
    return ObjectEvent(
        event_id=event_id, seq=0, edge_id="edge", camera_id=camera, type=EventType(kind), analytic=analytic,
        label=label, zone=cam.zones[0] if cam.zones else "", track_id=1, score=0.9, box=(0.1, 0.1, 0.2, 0.2),
        dwell_s=0.0, ts=t, episode_id=episode, snapshots=refs, phase=phase, outcome=outcome, plate=plate,
    )  # fmt: skip


def series(
    sensor: str, field: str, values: Iterable[float | None], start: float = T0, step: float = MIN
) -> list[tuple[float, Input]]:
    """A reading every `step` seconds; None leaves a gap."""
    return [
        (start + i * step, reading_of(sensor, start + i * step, {field: v}))
        for i, v in enumerate(values)
        if v is not None
    ]


def run(ruleset: RuleSet, timeline: Iterable[tuple[float, Input]], until: float | None = None,
        registry: Registry = REGISTRY, engine: Engine | None = None) -> list[RuleSignal]:  # fmt: skip
    """Feed a timeline (sorted by time, stable) through an engine; advance to `until` at the end."""
    engine = engine or Engine(ruleset, registry)
    out: list[RuleSignal] = []
    items = sorted(timeline, key=lambda item: item[0])
    for t, item in items:
        out += engine.step(item, t)
    if until is not None:
        out += engine.advance(until)
    return out


def brief(signals: Iterable[RuleSignal], start: float = T0) -> list[tuple[float, str, str, str]]:
    """(minutes after start, rule, status, colour) of each signal."""
    return [(round((s.ts - start) / MIN, 3), s.rule_id, s.status.value, s.colour.value) for s in signals]
