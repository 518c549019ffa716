"""Wire encoding: round trips, timestamps, versions and readable rejection reasons."""

from __future__ import annotations

import base64
import json

import pytest

from qinghe.codec import MAX_PAYLOAD_BYTES, dead_letter, decode, encode
from qinghe.contracts import (
    ActionSpec,
    Alert,
    AlertKind,
    CameraState,
    CameraStatus,
    Colour,
    CommandAction,
    EventType,
    Evidence,
    GeoPoint,
    HistoryEntry,
    Incident,
    IncidentCommand,
    IncidentState,
    ObjectEvent,
    RuleSignal,
    SignalStatus,
    SlaClock,
    SlaClockName,
    SnapshotRef,
    SourceRef,
    VoiceWarning,
)
from qinghe.errors import PayloadError
from qinghe.timefmt import parse_timestamp, to_rfc3339

T0 = 1_800_000_000.25


def _incident() -> Incident:
    return Incident(
        id="inc-1",
        type="air_quality",
        colour=Colour.ORANGE,
        state=IncidentState.ACKNOWLEDGED,
        opened_at=T0,
        updated_at=T0 + 30,
        zone="qinghu-north",
        rule_id="pm25",
        dedup_key="pm25:aq-01",
        message="PM2.5 152 ug/m3",
        location=GeoPoint(30.25, 119.75),
        sources=(SourceRef("reading", "aq-01", T0, "pm25=152", sensor_id="aq-01"),),
        sla=(SlaClock(SlaClockName.ACKNOWLEDGE, T0, T0 + 60, met_at=T0 + 30),),
        history=(HistoryEntry(T0 + 30, "ack", "zhang", IncidentState.ACKNOWLEDGED, Colour.ORANGE),),
        evidence=(Evidence("qh/v1/camera/c1/snapshot/e1", "before", T0, "e1"),),
        explain={"threshold": 150.0, "value": 152.0, "window": "5m"},
    )


MESSAGES: list[object] = [
    _incident(),
    Alert("a-1", AlertKind.OPENED, "inc-1", "air_quality", Colour.ORANGE, IncidentState.OPEN, T0, _incident()),
    CameraStatus(CameraState.DEGRADED, T0, 3.5, "fps collapsed"),
    ObjectEvent(
        "e1",
        7,
        "edge-1",
        "c1",
        EventType.START,
        "illegal_parking",
        "car",
        "gate",
        3,
        0.9,
        (0.1, 0.2, 0.3, 0.4),
        61.0,
        T0,
        plate="浙A12345",
        snapshots=(SnapshotRef("t", "before", T0),),
    ),
    IncidentCommand(action=CommandAction.ACK, by="li", ts=T0, note="on my way"),
    VoiceWarning("w1", "spk-1", "浙A一二三四五，此处禁止停车", "inc-1", 2, T0 + 120),
    RuleSignal(
        "s1",
        "pm25",
        "pm25:aq-01",
        "air_quality",
        SignalStatus.FIRING,
        Colour.RED,
        T0,
        "m",
        "z",
        actions=(ActionSpec("voice", "spk-1", "{plate}", {"repeat": 2}),),
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: object) -> None:
    assert decode(type(message), encode(message)) == message


def test_timestamps_are_rfc3339_on_the_wire() -> None:
    doc = json.loads(encode(_incident()))
    assert doc["opened_at"] == "2027-01-15T08:00:00.250Z"
    assert doc["v"] == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-01-15T08:00:00.250Z", T0),
        ("2027-01-15T16:00:00.250+08:00", T0),
        (1_800_000_000_250, T0),
        (1_800_000_000_250.0, T0),
    ],
)
def test_timestamps_accept_rfc3339_and_epoch_ms(value: object, expected: float) -> None:
    assert parse_timestamp(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2027-01-15T08:00:00", "no timezone"),
        ("yesterday", "not an RFC 3339"),
        (True, "boolean"),
        (None, "got NoneType"),
    ],
)
def test_bad_timestamps_say_why(value: object, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_timestamp(value)


def test_rfc3339_formatting_keeps_milliseconds() -> None:
    assert to_rfc3339(0.001) == "1970-01-01T00:00:00.001Z"


def test_newer_wire_version_is_rejected_not_guessed() -> None:
    doc = json.loads(encode(_incident()))
    doc["v"] = 2
    with pytest.raises(PayloadError, match="unsupported wire version v=2"):
        decode(Incident, json.dumps(doc))


def test_malformed_json_and_missing_fields_have_readable_reasons() -> None:
    with pytest.raises(PayloadError, match="malformed JSON"):
        decode(IncidentCommand, b'{"action": ')
    with pytest.raises(PayloadError, match="by: Field required"):
        decode(IncidentCommand, b'{"action": "ack", "ts": 1}')
    with pytest.raises(PayloadError, match="action: Input should be"):
        decode(IncidentCommand, b'{"action": "explode", "by": "x", "ts": 1}')


def test_oversized_payload_is_rejected_before_parsing() -> None:
    with pytest.raises(PayloadError, match="over the"):
        decode(IncidentCommand, b" " * (MAX_PAYLOAD_BYTES + 1))


def test_dead_letter_keeps_binary_payload_as_base64() -> None:
    raw = b"\xff\xd8\x00binary"
    letter = dead_letter("qh/v1/sensor/x/reading", raw, "malformed JSON", T0, "ingest")
    assert letter.encoding == "base64"
    assert base64.b64decode(letter.payload) == raw
    text = dead_letter("t", "温度".encode(), "r", T0, "ingest")
    assert (text.encoding, text.payload) == ("text", "温度")


def test_colour_ranks_and_raises_within_bounds() -> None:
    assert [c.rank for c in Colour] == [0, 1, 2, 3]
    assert Colour.YELLOW.raised() is Colour.ORANGE
    assert Colour.RED.raised() is Colour.RED
    assert Colour.BLUE.raised(-1) is Colour.BLUE


@pytest.mark.parametrize(
    ("met_at", "breached_at", "deadline", "met"),
    [
        (None, None, 60.0, None),  # still counting
        (30.0, None, 60.0, True),  # met on time
        (None, 60.0, 60.0, False),  # missed
        (70.0, 60.0, 60.0, False),  # met late, after the breach was recorded
        (70.0, None, 60.0, False),  # met late, before the breach was recorded (service was down)
        (None, None, None, None),  # no clock for this colour
        (30.0, None, None, True),
    ],
)
def test_sla_clock_says_whether_it_was_met_on_the_wire(
    met_at: float | None, breached_at: float | None, deadline: float | None, met: bool | None
) -> None:
    clock = SlaClock(SlaClockName.ACKNOWLEDGE, 0.0, deadline, met_at=met_at, breached_at=breached_at)
    assert clock.met is met
    assert json.loads(encode(clock))["met"] is met
    claimed = json.loads(encode(clock)) | {"met": not met}
    assert decode(SlaClock, json.dumps(claimed)).met is met  # derived, never taken from the payload
