"""RulesService on a real Mosquitto: events in, signals out, dedupe, dead letters, hot reload, restart."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qinghe.central_config import CentralConfig, load_central_config
from qinghe.clock import FakeClock
from qinghe.codec import decode, encode
from qinghe.config import BrokerConfig
from qinghe.contracts import EventType, ObjectEvent, RuleSignal, SignalStatus, SnapshotRef
from qinghe.localservers import LocalMosquitto
from rules.service import RulesService
from tests.support import Collector

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent / "data"
T0 = 1_772_413_200.0

PARKING = textwrap.dedent("""\
    rules:
      - id: parking
        type: illegal_parking
        events: {analytic: illegal_parking}
        per: episode
        tiers:
          - {colour: orange, when: {event: {phase: violation}}}
          - {colour: yellow, when: {event: {phase: warning}}}
        actions: [{kind: voice, text: "{plate}，请驶离"}, {kind: grace, grace: 2m}]
      - id: air
        type: air_pollution
        readings: {kind: air}
        value: pm25
        for: 5m
        tiers: [{colour: yellow, above: 75}]
        resolve: {below: 60}
    """)


def make_config(tmp_path: Path, broker: BrokerConfig, rules_text: str = PARKING) -> CentralConfig:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_text, encoding="utf-8")
    base = load_central_config(DATA / "central.yaml")
    settings = base.rules.model_copy(update={"files": [str(rules)], "reload_interval_s": 1.0, "stats_interval_s": 1.0})
    return base.model_copy(update={"broker": broker, "state_dir": str(tmp_path / "state"), "rules": settings})


def parking_event(event_id: str, phase: str, kind: str = "update", t: float = T0) -> ObjectEvent:
    return ObjectEvent(
        event_id=event_id, seq=1, edge_id="box", camera_id="cam-north-gate", type=EventType(kind),
        analytic="illegal_parking", label="car", zone="no_parking_east", track_id=1, score=0.9,
        box=(0.1, 0.1, 0.2, 0.2), dwell_s=60.0, ts=t, phase=phase, episode_id="ep-1", plate="浙A12345",
        snapshots=(SnapshotRef(f"qh/v1/camera/cam-north-gate/snapshot/{event_id}", "before", t),),
    )  # fmt: skip


def signals(collector: Collector) -> list[RuleSignal]:
    return [decode(RuleSignal, m.payload) for m in collector.on("qh/v1/rules/signal/")]


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at T0 (a Monday morning in 2026)."""
    return FakeClock(T0)


@pytest.fixture
def service(tmp_path: Path, broker_config: BrokerConfig, clock: FakeClock) -> Iterator[RulesService]:
    svc = RulesService(make_config(tmp_path, broker_config), tmp_path, clock)
    svc.start()
    yield svc
    svc.stop()


def test_camera_events_in_signals_out_and_replays_deduplicated(
    service: RulesService, collector: Collector, mosquitto: LocalMosquitto
) -> None:
    warning = parking_event("ev-1", "warning")
    topic = "qh/v1/camera/cam-north-gate/event"
    collector.bus.publish(topic, encode(warning)).wait(5)
    collector.bus.publish(topic, encode(warning)).wait(5)  # the edge outbox replays it
    collector.bus.publish(topic, encode(parking_event("ev-2", "violation"))).wait(5)
    got = collector.wait_for(lambda ms: len([m for m in ms if "/rules/signal/" in m.topic]) >= 2)
    del got
    out = signals(collector)
    assert [(s.status, s.colour.value, s.explain["transition"]) for s in out] == [
        (SignalStatus.FIRING, "yellow", "opened"), (SignalStatus.FIRING, "orange", "escalated"),
    ]  # fmt: skip
    opened = out[0]
    assert [a.kind for a in opened.actions] == ["voice", "grace"]
    assert opened.actions[0].target == "spk-north-gate"
    assert opened.evidence[0].ref == "qh/v1/camera/cam-north-gate/snapshot/ev-1"
    assert service.engine.counters["events_duplicate"] == 1
    assert collector.on("qh/v1/rules/signal/parking")


def test_bad_events_are_dead_lettered_with_the_reason(service: RulesService, collector: Collector) -> None:
    collector.bus.publish("qh/v1/camera/cam-north-gate/event", b'{"event_id": "x"}').wait(5)
    wrong = encode(parking_event("ev-9", "warning")).replace(b"cam-north-gate", b"cam-other")
    collector.bus.publish("qh/v1/camera/cam-north-gate/event", wrong).wait(5)
    collector.wait_for(lambda ms: len([m for m in ms if m.topic == "qh/v1/deadletter/rules"]) >= 2)
    letters = [json.loads(m.payload) for m in collector.on("qh/v1/deadletter/rules")]
    assert "seq: Field required" in letters[0]["reason"]
    assert letters[0]["payload"] == '{"event_id": "x"}'
    assert "does not match the topic's camera" in letters[1]["reason"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"box": (0.1, 0.1, 1.4, 0.2)}, "is not normalised to 0..1"),
        ({"box": (0.5, 0.1, 0.2, 0.2)}, "x2 < x1"),
        ({"score": 1.5}, "score 1.5 is outside 0..1"),
        ({"dwell_s": -3.0}, "dwell_s -3.0 is negative"),
    ],
)
def test_events_with_impossible_numbers_are_rejected(change: dict[str, object], reason: str) -> None:
    from dataclasses import replace

    from rules.inputs import Rejected, decode_event

    good = parking_event("ev-1", "warning")
    assert decode_event("cam-north-gate", encode(good)) == good
    decoded = decode_event("cam-north-gate", encode(replace(good, **change)))  # type: ignore[arg-type]
    assert isinstance(decoded, Rejected)
    assert reason in decoded.reason


def test_hot_reload_swaps_good_files_and_rejects_broken_ones(
    tmp_path: Path, service: RulesService, collector: Collector, clock: FakeClock
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(PARKING.replace("above: 75", "above: 70"), encoding="utf-8")
    clock.advance(2)
    service.tick()
    status = collector.wait_for(lambda ms: any(m.topic == "qh/v1/rules/status" and json.loads(m.payload)["ok"]
                                               for m in ms))  # fmt: skip
    del status
    digest = service.watcher.status.active_digest
    rules.write_text(PARKING.replace("colour: yellow, above: 75", "colour: yellowish, above: 70"), encoding="utf-8")
    clock.advance(2)
    service.tick()
    collector.wait_for(lambda ms: any(m.topic == "qh/v1/rules/status" and not json.loads(m.payload)["ok"] for m in ms))
    bad = [json.loads(m.payload) for m in collector.on("qh/v1/rules/status") if not json.loads(m.payload)["ok"]][-1]
    assert bad["errors"] == [
        f"{rules}:15: rules[1].tiers[0].colour: Input should be 'blue', 'yellow', 'orange' or 'red'"
    ]
    assert bad["active_digest"] == digest  # the previous rules keep running
    collector.bus.publish("qh/v1/camera/cam-north-gate/event", encode(parking_event("ev-5", "warning"))).wait(5)
    collector.wait_for(lambda ms: any("/rules/signal/parking" in m.topic for m in ms))
    # the retained status says so to anyone who connects later
    late = Collector(service.config.broker.url, "qh/v1/rules/status", client_id="late").start()
    try:
        retained = late.wait_for(bool)
        assert json.loads(retained[-1].payload)["ok"] is False
    finally:
        late.stop()


def test_a_restart_keeps_pending_timers_and_open_incidents(
    tmp_path: Path, broker_config: BrokerConfig, clock: FakeClock
) -> None:
    from qinghe.contracts import SensorKind, SensorReading

    config = make_config(tmp_path, broker_config)
    out: list[RuleSignal] = []
    first = RulesService(config, tmp_path, clock, on_signal=out.append)
    first.start()
    for minute in range(3):
        clock.set(T0 + minute * 60)
        first.handle_reading(SensorReading("air-01", SensorKind.AIR, "north-gate", clock.now(), {"pm25": 90.0}))
    first.handle_event(parking_event("ev-1", "warning", t=clock.now()))
    first.stop()  # checkpoints on stop
    second = RulesService(config, tmp_path, clock, on_signal=out.append)
    second.start()
    try:
        for minute in range(3, 7):
            clock.set(T0 + minute * 60)
            second.handle_reading(SensorReading("air-01", SensorKind.AIR, "north-gate", clock.now(), {"pm25": 90.0}))
        assert second.handle_event(parking_event("ev-1", "warning")) is False  # remembered across the restart
        second.handle_event(parking_event("ev-2", "x", kind="end", t=clock.now()))
    finally:
        second.stop()
    got = [(s.rule_id, s.status.value, round(s.ts - T0)) for s in out]
    # the 5-minute timer started at 0 before the restart and fires at 5 after it; the parking
    # incident opened before the restart is resolved after it
    assert got == [("parking", "firing", 120), ("air", "firing", 300), ("parking", "resolved", 360)]


def test_readings_over_mqtt_when_running_alone(
    tmp_path: Path, broker_config: BrokerConfig, clock: FakeClock, collector: Collector
) -> None:
    service = RulesService(make_config(tmp_path, broker_config), tmp_path, clock, subscribe_readings=True)
    service.start()
    try:
        for minute in range(7):
            clock.set(T0 + minute * 60)
            body = {"ts": round(clock.now() * 1000), "values": {"pm25": 80 + minute}, "seq": minute}
            collector.bus.publish("qh/v1/sensor/air-01/reading", json.dumps(body)).wait(5)
            expected = minute + 1
            collector.wait_for(lambda _ms: service.engine.counters["readings"] == expected)  # noqa: B023
        collector.bus.publish("qh/v1/sensor/air-01/reading", b'{"ts": 1, "values": {"pm25": "high"}}').wait(5)
        collector.wait_for(lambda ms: any(m.topic == "qh/v1/deadletter/rules" for m in ms))
        collector.wait_for(lambda ms: any(m.topic == "qh/v1/rules/signal/air" for m in ms))
        clock.advance(2)
        service.tick()
        collector.wait_for(lambda ms: any(m.topic == "qh/v1/rules/stats" for m in ms))
    finally:
        service.stop()
    (fired,) = [decode(RuleSignal, m.payload) for m in collector.on("qh/v1/rules/signal/air")]
    assert round(fired.ts - T0) == 300
    stats = json.loads(collector.on("qh/v1/rules/stats")[-1].payload)
    assert stats["rules"]["air"]["fired"] == 1
    letter = json.loads(collector.on("qh/v1/deadletter/rules")[0].payload)
    assert "pm25" in letter["reason"]


def test_rules_stats_cli_reads_the_retained_stats(
    service: RulesService, collector: Collector, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from qinghe.cli import main

    service.handle_event(parking_event("ev-1", "warning"))
    clock.advance(2)
    service.tick()
    collector.wait_for(lambda ms: any(m.topic == "qh/v1/rules/stats" for m in ms))
    assert main(["rules", "stats", "--broker", service.config.broker.url, "--config", "/nonexistent"]) == 0
    assert "parking" in capsys.readouterr().out


def test_record_cli_captures_traffic(mosquitto: LocalMosquitto, collector: Collector, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    out = tmp_path / "rec.jsonl.gz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qinghe.cli", "record", "--broker", mosquitto.url, "--out", str(out), "--duration", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    for i in range(5):
        collector.bus.publish(f"qh/v1/sensor/s{i}/reading", f'{{"n": {i}}}').wait(5)
    collector.bus.publish("qh/v1/other/topic", b"ignored").wait(5)
    stdout, _ = proc.communicate(timeout=20)
    assert json.loads(stdout.strip().splitlines()[-1])["recorded"] == 5
    from rules.recording import read_recording

    assert [r.payload for r in read_recording(out)] == [f'{{"n": {i}}}'.encode() for i in range(5)]


def test_a_backlog_is_processed_in_bursts_committed_then_acknowledged(
    tmp_path: Path, broker_config: BrokerConfig, clock: FakeClock, collector: Collector
) -> None:
    config = make_config(tmp_path, broker_config, PARKING.replace("    for: 5m\n", ""))  # air fires at once
    first = RulesService(config, tmp_path, clock, subscribe_readings=True)
    first.start()  # the persistent session: the backlog queues for it while it is down
    first.stop()
    for i in range(300):
        body = {"ts": round((T0 + i) * 1000), "values": {"pm25": 90.0 if i >= 200 else 50.0}}
        payload = json.dumps(body).encode() if i != 150 else b'{"ts": 1, "values": {"pm25": "high"}}'
        collector.bus.publish("qh/v1/sensor/air-01/reading", payload)
    collector.bus.publish_and_wait("qh/v1/sensor/air-02/reading", json.dumps({"ts": round(T0 * 1000), "values": {}}))
    clock.set(T0 + 300)
    bursts: list[int] = []
    second = RulesService(config, tmp_path, clock, subscribe_readings=True)
    second.bus.on_burst_end(lambda: bursts.append(second.engine.counters["readings"]))
    second.start()
    try:
        collector.wait_for(lambda ms: len([m for m in ms if m.topic == "qh/v1/deadletter/rules"]) == 2)
        assert second.engine.counters["readings"] == 299
        (fired,) = [
            decode(RuleSignal, m.payload)
            for m in collector.wait_for(lambda ms: any(m.topic == "qh/v1/rules/signal/air" for m in ms))
            if m.topic == "qh/v1/rules/signal/air"
        ]
    finally:
        second.stop()
    assert fired.sources[0].ts == T0 + 200  # the first reading above the threshold
    assert len(set(bursts)) < 150  # many readings per burst: one commit and one acknowledgement write each
    third = RulesService(config, tmp_path, clock, subscribe_readings=True)
    third.start()
    try:
        time.sleep(1.0)
        assert third.engine.counters["readings"] == 0  # every message was acknowledged: none comes back
    finally:
        third.stop()
    letters = [json.loads(m.payload) for m in collector.on("qh/v1/deadletter/rules")]
    assert sorted(letter["reason"].split(":")[0] for letter in letters) == ["missing_field", "non_numeric"]
