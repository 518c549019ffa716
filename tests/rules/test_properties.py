"""Hypothesis properties of the engine: hysteresis, no double firing, tick and restart invariance, replay = live."""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qinghe.bus import InboundMessage
from qinghe.central_config import CentralConfig
from qinghe.clock import FakeClock
from qinghe.codec import encode
from qinghe.contracts import ObjectEvent, RuleSignal, SensorReading, SignalStatus
from rules.engine import Engine, Input
from rules.loader import RuleSet, load_rules
from rules.recording import Record
from rules.registry import Registry
from rules.replay import replay
from rules.service import RulesService
from tests.rules.helpers import REGISTRY, T0, event, reading

RULES = textwrap.dedent("""\
    rules:
      - id: air
        type: air_pollution
        readings: {kind: air}
        value: pm25
        for: 2m
        tiers: [{colour: red, above: 250}, {colour: orange, above: 150}, {colour: yellow, above: 75}]
        resolve: {below: 60, for: 1m}
        keep_firing_for: 1m
        gap: {after: 3m}
        flapping: {window: 20m, cycles: 3, settle: 5m}
      - id: zone
        type: air_zone
        readings: {kind: air}
        per: zone
        value: avg(pm25, 5m)
        tiers: [{colour: yellow, above: 100}]
        resolve: {below: 80}
      - id: parking
        type: illegal_parking
        events: {analytic: illegal_parking}
        per: episode
        tiers: [{colour: orange, when: {event: {phase: violation}}}, {colour: yellow, when: {event: {phase: warning}}}]
    """)

_RULESET: RuleSet | None = None


def ruleset() -> RuleSet:
    global _RULESET
    if _RULESET is None:
        folder = Path(tempfile.mkdtemp(prefix="rules-prop-"))
        (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
        _RULESET = load_rules([folder / "rules.yaml"], REGISTRY)
    return _RULESET


values = st.one_of(st.floats(0, 400, allow_nan=False), st.sampled_from([59.0, 60.0, 74.9, 75.0, 75.1, 150.0]))
steps = st.lists(
    st.tuples(st.sampled_from(["a1", "a2", "a3"]), st.integers(1, 150), values),  # sensor, seconds later, value
    min_size=1,
    max_size=120,
)
phases = st.sampled_from([("start", "dwelling"), ("update", "warning"), ("update", "violation"), ("end", None)])
events = st.lists(st.tuples(st.integers(0, 7200), st.sampled_from(["e1", "e2"]), phases), max_size=12)


def timeline(
    raw: list[tuple[str, int, float]], evs: list[tuple[int, str, tuple[str, str | None]]]
) -> list[tuple[float, Input]]:
    out: list[tuple[float, Input]] = []
    t = T0
    for sensor, gap, value in raw:
        t += gap
        out.append((t, reading(sensor, t, pm25=round(value, 3))))
    for offset, episode, (kind, phase) in evs:
        at = T0 + offset
        out.append((at, event("c1", at, "illegal_parking", kind, episode=episode, phase=phase)))
    out.sort(key=lambda item: item[0])
    return out


def feed(engine: Engine, items: list[tuple[float, Input]], ticks: list[float] = ()) -> list[RuleSignal]:  # type: ignore[assignment]
    out: list[RuleSignal] = []
    pending = sorted(ticks)
    for t, item in items:
        while pending and pending[0] < t:
            out += engine.advance(pending.pop(0))
        out += engine.step(item, t)
    return out + engine.advance(items[-1][0] + 3600 if items else T0)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_hysteresis_never_resolves_at_or_above_the_resolve_threshold(raw: list[tuple[str, int, float]]) -> None:
    signals = feed(Engine(ruleset(), REGISTRY), timeline(raw, []))
    last: dict[str, float] = {}
    items = timeline(raw, [])
    for sig in signals:
        if (
            sig.rule_id == "air"
            and sig.status is SignalStatus.RESOLVED
            and "expired" not in str(sig.explain.get("reason"))
        ):
            sensor = sig.dedup_key.split(":")[1]
            latest = [r for t, r in items if isinstance(r, SensorReading) and r.sensor_id == sensor and t <= sig.ts]
            assert latest[-1].values["pm25"] < 60, (sig.ts, latest[-1])
        last[sig.dedup_key] = sig.ts


@settings(max_examples=60, deadline=None)
@given(steps, events)
def test_an_instance_never_opens_twice_without_resolving(
    raw: list[tuple[str, int, float]], evs: list[tuple[int, str, tuple[str, str | None]]]
) -> None:
    signals = feed(Engine(ruleset(), REGISTRY), timeline(raw, evs))
    open_keys: set[str] = set()
    for sig in signals:
        transition = sig.explain["transition"]
        if transition == "opened":
            assert sig.dedup_key not in open_keys, f"{sig.dedup_key} opened twice"
            open_keys.add(sig.dedup_key)
        elif sig.status is SignalStatus.RESOLVED:
            assert sig.dedup_key in open_keys, f"{sig.dedup_key} resolved without being open"
            open_keys.discard(sig.dedup_key)
        else:
            assert sig.dedup_key in open_keys, f"{transition} for {sig.dedup_key}, which is not open"


@settings(max_examples=40, deadline=None)
@given(steps, events, st.lists(st.integers(0, 20_000), max_size=30))
def test_output_does_not_depend_on_when_the_timer_ticks(
    raw: list[tuple[str, int, float]], evs: list[tuple[int, str, tuple[str, str | None]]], ticks: list[int]
) -> None:
    items = timeline(raw, evs)
    plain = feed(Engine(ruleset(), REGISTRY), items)
    ticked = feed(Engine(ruleset(), REGISTRY), items, [T0 + t for t in ticks])
    assert [s.signal_id for s in ticked] == [s.signal_id for s in plain]


@settings(max_examples=40, deadline=None)
@given(steps, events, st.integers(0, 200))
def test_a_restart_from_a_checkpoint_changes_nothing(
    raw: list[tuple[str, int, float]], evs: list[tuple[int, str, tuple[str, str | None]]], cut: int
) -> None:
    items = timeline(raw, evs)
    cut = min(cut, len(items))
    straight = feed(Engine(ruleset(), REGISTRY), items)
    first = Engine(ruleset(), REGISTRY)
    out = [s for t, item in items[:cut] for s in first.step(item, t)]
    second = Engine(ruleset(), REGISTRY)
    if first.now is not None:
        second.restore(json.loads(json.dumps(first.snapshot())))
    out += feed(second, items[cut:]) if items[cut:] else second.advance(items[-1][0] + 3600 if items else T0)
    assert [s.signal_id for s in out] == [s.signal_id for s in straight]


def _wire(item: Input) -> tuple[str, bytes]:
    if isinstance(item, SensorReading):
        body = {"ts": round(item.ts * 1000), "values": item.values}
        return f"qh/v1/sensor/{item.sensor_id}/reading", json.dumps(body).encode()
    assert isinstance(item, ObjectEvent)
    return f"qh/v1/camera/{item.camera_id}/event", encode(item)


def _central(folder: Path) -> CentralConfig:
    sensors = [{"id": s.id, "kind": s.kind, "zone": s.zone, "expected_interval_s": s.expected_interval_s}
               for s in REGISTRY.sensors.values()]  # fmt: skip
    cameras = [
        {"id": c.id, "kind": c.kind, "zones": list(c.zones), "speaker_id": c.speaker_id}
        for c in REGISTRY.cameras.values()
    ]
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    return CentralConfig.model_validate({
        "state_dir": str(folder / "state"), "sensors": sensors, "cameras": cameras,
        "rules": {"files": [str(folder / "rules.yaml")], "reload_interval_s": 1e9, "stats_interval_s": 1e9},
        "ingest": {"max_age_s": 1e9},
    })  # fmt: skip


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, events, st.lists(st.integers(0, 20_000), max_size=20))
def test_replay_of_a_recording_equals_live_processing(
    raw: list[tuple[str, int, float]], evs: list[tuple[int, str, tuple[str, str | None]]], ticks: list[int]
) -> None:
    items = timeline(raw, evs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = _central(folder)
        clock = FakeClock(T0)
        live: list[RuleSignal] = []
        service = RulesService(config, folder, clock, on_signal=live.append)
        records: list[Record] = []
        pending = sorted(T0 + t for t in ticks)
        for t, item in items:
            while pending and pending[0] < t:
                clock.set(pending.pop(0))
                service.tick()
            clock.set(t)
            topic, payload = _wire(item)
            records.append(Record(t, topic, payload))
            service._on_message(_inbound(topic, payload))
        end = items[-1][0] + 3600
        clock.set(end)
        service.tick()
        service.store.close()
        service.outbox.stop()
        result = replay(ruleset_for(config, folder), Registry.from_central(config), config, records, until=end)
    assert [s.signal_id for s in result.signals] == [s.signal_id for s in live]


def ruleset_for(config: CentralConfig, folder: Path) -> RuleSet:
    return load_rules([folder / "rules.yaml"], Registry.from_central(config))


def _inbound(topic: str, payload: bytes) -> InboundMessage:
    return InboundMessage(topic, payload, 1, False, 0)
