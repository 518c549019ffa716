"""Closed-loop parking enforcement: warning, grace, complied or violation, explained by the history."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from alerting.voice.desk import Delivery, DeliveryStatus
from qinghe.central_config import CameraRefConfig
from qinghe.contracts import ActionSpec, AlertKind, Colour, Evidence, IncidentState, RuleSignal, SignalStatus
from tests.alerting.helpers import Harness, signal

T0 = 1_800_000_000.0
CAMERAS = {"cam1": CameraRefConfig(id="cam1", speaker_id="spk1")}
ACTIONS = (
    ActionSpec(
        "voice", "", "浙A·12345，此处禁止停车，请立即驶离", {"repeat": 2, "expires_s": 120, "plate": "浙A·12345"}
    ),
    ActionSpec("grace", "", "", {"grace_s": 180, "violation_colour": "orange"}),
)
BEFORE = Evidence(ref="qh/v1/camera/cam1/snapshot/ev1-before", role="before", ts=T0 - 30, event_id="ev1")
AFTER = Evidence(ref="qh/v1/camera/cam1/snapshot/ev1-after", role="after", ts=T0 + 190, event_id="ev1")


def warning(evidence: tuple[Evidence, ...] = (BEFORE,)) -> RuleSignal:
    return signal(
        key="park:cam1:7",
        rule_id="no-parking",
        incident_type="illegal_parking",
        colour=Colour.YELLOW,
        camera_id="cam1",
        actions=ACTIONS,
        evidence=evidence,
        explain={"plate": "浙A·12345"},
    )


def actions_of(h: Harness) -> list[str]:
    return [e.action for e in h.only().incident.history]


def test_vehicle_leaves_within_grace_complied_and_closed(tmp_path: Path) -> None:
    h = Harness(tmp_path, cameras=CAMERAS)
    sent = h.send(warning())
    (task,) = sent.dispatch
    assert task.speaker_id == "spk1"
    assert task.text == "浙 A 一二三四五，此处禁止停车，请立即驶离"
    h.advance(100)
    h.send(
        signal(key="park:cam1:7", rule_id="no-parking", incident_type="illegal_parking", status=SignalStatus.RESOLVED)
    )
    record = h.only()
    assert record.incident.state is IncidentState.CLOSED
    assert record.incident.outcome == "complied"
    assert record.incident.colour is Colour.YELLOW
    assert actions_of(h) == ["opened", "grace_started", "voice_requested", "complied", "closed"]
    assert "100 s after the warning" in record.incident.history[3].note
    h.advance(1000, step=100)
    assert AlertKind.SLA_BREACHED not in h.kinds()
    assert h.store.rule_stats()["no-parking"]["complied"] == 1


def test_still_parked_after_grace_is_a_violation_with_before_and_after_evidence(tmp_path: Path) -> None:
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(warning())
    h.advance(179)
    assert h.only().incident.outcome is None
    h.advance(1)
    record = h.only()
    assert record.incident.outcome == "violation"
    assert record.incident.colour is Colour.ORANGE
    assert actions_of(h)[-2:] == ["violation", "colour_changed"]
    h.advance(10)
    h.send(warning(evidence=(BEFORE, AFTER)))  # the edge's violation update
    roles = {e.role for e in h.only().incident.evidence}
    assert roles == {"before", "after"}
    assert h.only().incident.colour is Colour.ORANGE  # the rule's yellow does not lower a violation
    h.send(
        signal(key="park:cam1:7", rule_id="no-parking", incident_type="illegal_parking", status=SignalStatus.RESOLVED)
    )
    assert h.only().incident.outcome == "violation"
    assert h.only().incident.state is IncidentState.RESOLVED


def test_edge_violation_update_ends_grace_early(tmp_path: Path) -> None:
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(warning())
    h.advance(60)
    h.send(warning(evidence=(BEFORE, AFTER)))
    record = h.only()
    assert record.incident.outcome == "violation"
    assert record.grace is not None
    assert record.grace.status.value == "violation"
    h.advance(200)
    assert actions_of(h).count("violation") == 1


def test_violation_rebases_clocks_to_the_raised_colour(tmp_path: Path) -> None:
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(warning())
    h.advance(180)  # violation: orange, acknowledge within 60 s from now
    h.advance(60)
    breach = [a for a in h.alerts() if a.kind is AlertKind.SLA_BREACHED]
    assert len(breach) == 1
    assert breach[0].colour is Colour.ORANGE


def test_grace_survives_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(warning())
    h.clock.advance(200)
    h.restart()
    h.tick()
    assert h.only().incident.outcome == "violation"


def test_voice_without_a_speaker_is_recorded(tmp_path: Path) -> None:
    h = Harness(tmp_path)  # no camera registry: no speaker to derive
    h.send(warning())
    assert "voice_failed" in actions_of(h)
    assert "no usable target" in h.only().incident.history[actions_of(h).index("voice_failed")].note


def test_episode_is_explainable_from_history_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(warning())
    h.advance(2)
    h.delivered(h.only().id + ".w1", _played())
    h.advance(200)
    notes = " | ".join(f"{e.action}: {e.note}" for e in h.only().incident.history)
    for words in ("grace 180 s", "spk1", "一二三四五", "played", "still parked", "yellow -> orange"):
        assert words in notes


def _played() -> Delivery:
    return Delivery(DeliveryStatus.PLAYED, "WAV written to /tmp/x.wav")


def test_rule_raising_to_the_violation_colour_ends_grace(tmp_path: Path) -> None:
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(warning())
    h.advance(30)
    h.send(replace(warning(), signal_id="orange-update", colour=Colour.ORANGE))  # the edge's violation phase
    record = h.only()
    assert record.incident.outcome == "violation"
    assert record.incident.colour is Colour.ORANGE
    assert [e.action for e in record.incident.history].count("colour_changed") == 1


def test_camera_incidents_are_routed_by_the_cameras_district_zone(tmp_path: Path) -> None:
    cameras = {
        "cam1": CameraRefConfig(
            id="cam1", speaker_id="spk1", zones=["tianzhu-street"], location={"lat": 30.25, "lon": 119.75}
        )
    }
    config = {"responders": {"teams": [{"id": "zhongdui-1", "zones": ["tianzhu-street"]}, {"id": "duty-team"}]}}
    h = Harness(tmp_path, config=config, cameras=cameras)
    h.send(replace(warning(), zone="no_parking_east"))
    incident = h.only().incident
    assert incident.zone == "tianzhu-street"
    assert incident.explain["camera_zone"] == "no_parking_east"
    assert incident.location is not None
    assert (incident.location.lat, incident.location.lon) == (30.25, 119.75)
    assert incident.assignee == "zhongdui-1"


def test_a_signal_already_in_a_district_zone_is_left_alone(tmp_path: Path) -> None:
    cameras = {"cam1": CameraRefConfig(id="cam1", speaker_id="spk1", zones=["tianzhu-street", "baolong-plaza"])}
    h = Harness(tmp_path, cameras=cameras)
    h.send(replace(warning(), zone="baolong-plaza"))
    incident = h.only().incident
    assert incident.zone == "baolong-plaza"
    assert "camera_zone" not in incident.explain


def settled_warning(settle_s: float) -> RuleSignal:
    grace = ActionSpec("grace", "", "", {"grace_s": 180, "settle_s": settle_s, "violation_colour": "orange"})
    return replace(warning(), actions=(ACTIONS[0], grace))


def test_a_departure_confirmed_during_the_settle_time_is_complied(tmp_path: Path) -> None:
    # the edge confirms a departure only after the vehicle has been unseen for a while: its `end` may
    # arrive after the grace deadline although the vehicle left within grace
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(settled_warning(30))
    h.advance(195)
    assert h.only().incident.outcome is None
    h.send(
        signal(key="park:cam1:7", rule_id="no-parking", incident_type="illegal_parking", status=SignalStatus.RESOLVED)
    )
    assert h.only().incident.outcome == "complied"
    assert "awaited 30 s more" in h.only().incident.history[1].note


def test_without_an_edge_verdict_the_violation_comes_after_the_settle_time(tmp_path: Path) -> None:
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(settled_warning(30))
    h.advance(209)
    assert h.only().incident.outcome is None
    h.advance(1)
    assert h.only().incident.outcome == "violation"
    assert actions_of(h).count("violation") == 1
