"""Grouping, inhibition (offline camera, higher colour), silences and maintenance windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerting.model import Silence
from qinghe.contracts import AlertKind, CameraState, CameraStatus, Colour, SignalStatus, SourceRef
from tests.alerting.helpers import Harness, signal

T0 = 1_800_000_000.0


def cam_event(camera: str, event_id: str) -> SourceRef:
    return SourceRef(kind="event", id=event_id, ts=T0, camera_id=camera, summary="smoke")


def reading(sensor: str) -> SourceRef:
    return SourceRef(kind="reading", id=sensor, ts=T0, sensor_id=sensor, summary="smoke=1")


def test_one_fire_seen_by_two_cameras_and_a_sensor_is_one_incident(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(key="fire:cam1", rule_id="fire-cam", sources=(cam_event("cam1", "e1"),), camera_id="cam1"))
    h.clock.advance(20)
    h.send(signal(key="fire:cam2", rule_id="fire-cam", sources=(cam_event("cam2", "e2"),), camera_id="cam2"))
    h.clock.advance(20)
    h.send(signal(key="smoke:s1", rule_id="smoke-sensor", sources=(reading("s1"),), colour=Colour.ORANGE))
    record = h.only()
    assert {(s.kind, s.id) for s in record.incident.sources} == {("event", "e1"), ("event", "e2"), ("reading", "s1")}
    assert set(record.members) == {"fire:cam1", "fire:cam2", "smoke:s1"}
    assert h.kinds().count(AlertKind.OPENED) == 1
    assert [e.action for e in record.incident.history].count("grouped") == 2


def test_grouped_incident_resolves_only_when_every_source_has(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(key="a", rule_id="ra"))
    h.send(signal(key="b", rule_id="rb"))
    h.send(signal(key="a", rule_id="ra", status=SignalStatus.RESOLVED))
    assert h.only().active
    h.send(signal(key="b", rule_id="rb", status=SignalStatus.RESOLVED))
    assert h.only().incident.outcome == "auto_resolved"
    assert not h.only().active


def test_grouping_window_type_zone_and_excluded_types(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"routing": {"grouping": {"window_s": 60}}})
    h.send(signal(key="a"))
    h.clock.advance(61)
    h.send(signal(key="b"))  # too late: its own incident
    h.send(signal(key="c", zone="z2"))  # other zone
    h.send(signal(key="d", incident_type="dumping"))  # other type
    h.send(signal(key="p1", incident_type="illegal_parking"))
    h.send(signal(key="p2", incident_type="illegal_parking"))  # parking never groups: one car, one incident
    assert h.kinds().count(AlertKind.OPENED) == 6


def test_group_takes_the_highest_colour(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(key="a", colour=Colour.YELLOW))
    h.send(signal(key="b", colour=Colour.ORANGE))
    assert h.only().incident.colour is Colour.ORANGE
    assert h.kinds()[-1] is AlertKind.COLOUR_CHANGED


def test_offline_camera_suppresses_its_detections_until_it_returns(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.core.on_camera_status("cam1", CameraStatus(CameraState.OFFLINE, T0, 0.0, "rtsp timeout"), T0)
    h.send(signal(key="k", camera_id="cam1", incident_type="dumping"))
    h.send(signal(key="other", camera_id="cam2", incident_type="dumping", zone="z9"))
    assert [r.camera_id for r in h.core.state.records.values()] == ["cam2"]
    assert "camera cam1 is offline" in h.core.state.suppressed["k"].reason
    assert h.store.suppressed_count() == 1
    h.core.on_camera_status("cam1", CameraStatus(CameraState.ONLINE, T0 + 5, 10.0), T0 + 5)
    h.advance(2)
    assert sorted(r.camera_id or "" for r in h.core.state.records.values()) == ["cam1", "cam2"]
    assert h.core.state.suppressed == {}
    assert h.store.suppressed_count() == 0


def test_suppressed_signal_that_resolves_is_forgotten(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.core.on_camera_status("cam1", CameraStatus(CameraState.OFFLINE, T0, 0.0), T0)
    h.send(signal(key="k", camera_id="cam1"))
    h.send(signal(key="k", camera_id="cam1", status=SignalStatus.RESOLVED))
    h.core.on_camera_status("cam1", CameraStatus(CameraState.ONLINE, T0, 10.0), T0)
    h.advance(2)
    assert h.core.state.records == {}
    assert h.store.suppressed_count() == 0


def test_suppressed_signals_expire_after_retention(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"routing": {"suppressed_retention_s": 600}})
    h.core.on_camera_status("cam1", CameraStatus(CameraState.OFFLINE, T0, 0.0), T0)
    h.send(signal(key="k", camera_id="cam1"))
    h.advance(601)
    assert h.core.state.suppressed == {}
    assert h.store.suppressed_count() == 0


def test_red_incident_inhibits_lower_signals_with_the_same_cause(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"routing": {"grouping": {"enabled": False}}})
    h.send(signal(key="fire", colour=Colour.RED, sources=(cam_event("cam1", "e1"),)))
    h.send(signal(key="smoke", rule_id="smoke", colour=Colour.YELLOW, sources=(reading("s1"),)))
    h.send(signal(key="water", rule_id="water", incident_type="standing_water", colour=Colour.YELLOW))
    red = next(r for r in h.core.state.records.values() if r.incident.colour is Colour.RED)
    assert {r.incident.type for r in h.core.state.records.values()} == {"smoke_fire", "standing_water"}
    assert ("reading", "s1") in {(s.kind, s.id) for s in red.incident.sources}
    assert red.incident.history[-1].action == "inhibited"
    assert h.core.state.suppressed["smoke"].reason.startswith(f"inhibited by {red.id}")
    h.send(signal(key="fire", status=SignalStatus.RESOLVED))
    h.advance(2)  # the inhibitor is gone: the held-back signal opens its own incident
    assert sorted(r.incident.colour.value for r in h.core.state.records.values() if r.active) == ["yellow", "yellow"]


def test_config_silence_and_runtime_silence_with_expiry(tmp_path: Path) -> None:
    ends = datetime.fromtimestamp(T0, UTC) + timedelta(hours=1)
    config = {"silences": [{"id": "works", "matchers": {"zone": "z1"}, "ends_at": ends, "reason": "road works"}]}
    h = Harness(tmp_path, config)
    h.send(signal(key="a", zone="z1"))
    assert h.core.state.records == {}
    assert "silence works: road works" in h.core.state.suppressed["a"].reason
    h.core.add_silence(Silence("s2", {"type": "dump*"}, T0, T0 + 60, "cleanup crew", "ops"))
    h.send(signal(key="b", zone="z2", incident_type="dumping"))
    assert h.core.state.records == {}
    h.advance(61)  # runtime silence over: b opens
    assert [r.incident.zone for r in h.core.state.records.values()] == ["z2"]
    h.advance(3600, step=600)  # config silence over: a opens too
    assert sorted(r.incident.zone for r in h.core.state.records.values()) == ["z1", "z2"]
    assert "works" not in h.core.state.silences


def test_expire_silence_releases_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.core.add_silence(Silence("s1", {"rule_id": "r1"}, T0, T0 + 86400, "testing", "ops"))
    h.send(signal(key="a"))
    h.core.expire_silence("s1", h.clock.now())
    h.advance(1)
    assert len(h.core.state.records) == 1


def test_maintenance_window_suppresses_only_inside_its_hours(tmp_path: Path) -> None:
    # T0 is 2027-01-15 16:00 in Asia/Shanghai (a Friday)
    window = {"id": "night", "matchers": {"camera_id": "cam*"}, "start": "15:30", "end": "16:30", "reason": "cleaning"}
    h = Harness(tmp_path, {"maintenance": [window]})
    h.send(signal(key="a", camera_id="cam1"))
    assert h.core.state.records == {}
    h.advance(1800, step=300)
    assert len(h.core.state.records) == 1
    closed_day = {**window, "id": "weekend", "days": ["sat", "sun"]}
    h2 = Harness(tmp_path / "2", {"maintenance": [closed_day]})
    h2.send(signal(key="a", camera_id="cam1"))
    assert len(h2.core.state.records) == 1


def test_runtime_silences_survive_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.store.commit(h.core.add_silence(Silence("s1", {"zone": "z1"}, T0, T0 + 600, "drill", "ops")))
    h.restart()
    assert h.core.state.silences["s1"].reason == "drill"
    h.send(signal(key="a"))
    assert h.core.state.records == {}


def test_bad_notify_targets_and_speakers_are_recorded_not_published(tmp_path: Path) -> None:
    from qinghe.contracts import ActionSpec

    h = Harness(tmp_path)
    actions = (ActionSpec("notify", "ops/+/x"), ActionSpec("notify", "ops/night"), ActionSpec("voice", "spk/1"))
    h.send(signal(actions=actions))
    notes = {e.action: e.note for e in h.only().incident.history}
    assert "cannot be a topic" in notes["action_problem"]
    assert "no usable target" in notes["voice_failed"]
    assert [e.topic for e in h.topics("/notify/ops")] == ["qh/v1/notify/ops/night"]


def test_expiring_a_config_silence_survives_a_restart(tmp_path: Path) -> None:
    ends = datetime.fromtimestamp(T0, UTC) + timedelta(hours=1)
    config = {"silences": [{"id": "works", "matchers": {"zone": "z1"}, "ends_at": ends, "reason": "road works"}]}
    h = Harness(tmp_path, config)
    h.store.commit(h.core.expire_silence("works", h.clock.now()))
    h.restart()
    h.send(signal(key="a", zone="z1"))
    assert len(h.core.state.records) == 1
