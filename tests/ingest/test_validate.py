"""The validator core: every rejection reason, unit conversion, timestamps, dedup and redelivery."""

from __future__ import annotations

import json
import math

import pytest

from ingest.validate import Accepted, Limits, Reason, Redelivered, Rejection
from qinghe.contracts import GeoPoint, SensorKind
from tests.ingest.helpers import NOW, NOW_MS, make_validator, payload, topic

# (case, topic, payload, expected reason, words the detail must contain)
REJECTIONS: list[tuple[str, str, bytes, Reason, tuple[str, ...]]] = [
    ("oversized", topic("aq-1"), b"{" + b" " * 20000 + b"}", Reason.OVERSIZED, ("20002 bytes", "16384")),
    ("bad topic", "qh/v1/sensor/aq-1/status", payload(), Reason.BAD_TOPIC, ("qh/v1/sensor/",)),
    ("unknown sensor", topic("nobody"), payload(), Reason.UNKNOWN_SENSOR, ("'nobody'", "registry")),
    ("malformed JSON", topic("aq-1"), b'{"ts": 1, "values": {', Reason.MALFORMED_JSON, ("line 1",)),
    ("empty payload", topic("aq-1"), b"", Reason.MALFORMED_JSON, ("Expecting value",)),
    ("not UTF-8", topic("aq-1"), b'{"ts": "\xff"}', Reason.MALFORMED_JSON, ("not UTF-8",)),
    ("deep nesting", topic("aq-1"), b"[" * 5000 + b"]" * 5000, Reason.MALFORMED_JSON, ("JSON",)),
    ("array", topic("aq-1"), b"[1, 2]", Reason.NOT_OBJECT, ("array",)),
    ("number", topic("aq-1"), b"42", Reason.NOT_OBJECT, ("number",)),
    ("unknown key", topic("aq-1"), payload(battery=3.7), Reason.UNKNOWN_KEY, ("'battery'",)),
    ("no values", topic("aq-1"), json.dumps({"ts": NOW_MS}).encode(), Reason.MISSING_VALUES, ("values",)),
    ("values not object", topic("aq-1"), b'{"ts": 1, "values": [35.2]}', Reason.MISSING_VALUES, ("array",)),
    ("empty values", topic("aq-1"), payload(values={}), Reason.MISSING_FIELD, ("'pm25'",)),
    ("required missing", topic("aq-1"), payload(values={"pm10": 40}), Reason.MISSING_FIELD, ("'pm25'", "air")),
    ("unknown field", topic("aq-1"), payload(values={"pm25": 1, "co2": 400}), Reason.UNKNOWN_FIELD, ("'co2'", "pm10")),
    ("field of another kind", topic("noise-1"), payload(values={"pm25": 3}), Reason.UNKNOWN_FIELD, ("noise",)),
    ("string value", topic("aq-1"), payload(values={"pm25": "35"}), Reason.NON_NUMERIC, ("pm25", "string")),
    ("boolean value", topic("aq-1"), payload(values={"pm25": True}), Reason.NON_NUMERIC, ("boolean",)),
    ("null value", topic("aq-1"), payload(values={"pm25": None}), Reason.NON_NUMERIC, ("null",)),
    ("object value", topic("aq-1"), payload(values={"pm25": {"v": 1}}), Reason.NON_NUMERIC, ("object",)),
    ("NaN literal", topic("aq-1"), b'{"ts": %d, "values": {"pm25": NaN}}' % NOW_MS, Reason.NOT_FINITE, ("nan",)),
    ("Infinity", topic("aq-1"), b'{"ts": %d, "values": {"pm25": Infinity}}' % NOW_MS, Reason.NOT_FINITE, ("inf",)),
    ("-Infinity", topic("aq-1"), b'{"ts": %d, "values": {"pm25": -Infinity}}' % NOW_MS, Reason.NOT_FINITE, ("inf",)),
    ("above range", topic("aq-1"), payload(values={"pm25": 1500}), Reason.OUT_OF_RANGE, ("pm25=1500", "0..1000")),
    ("below range", topic("noise-1"), payload(values={"laeq": -3}), Reason.OUT_OF_RANGE, ("laeq=-3", "0..150")),
    (
        "huge integer",
        topic("aq-1"),
        b'{"ts": %d, "values": {"pm25": 1%s}}' % (NOW_MS, b"0" * 400),
        Reason.OUT_OF_RANGE,
        (),
    ),
    (
        "range after conversion",
        topic("aq-mg"),
        payload(values={"pm25": 1.5}),
        Reason.OUT_OF_RANGE,
        ("reported 1.5 mg/m3",),
    ),
    ("optional out of range", topic("aq-1"), payload(values={"pm25": 1, "o3": 5000}), Reason.OUT_OF_RANGE, ("o3",)),
    ("no ts", topic("aq-1"), json.dumps({"values": {"pm25": 1}}).encode(), Reason.MISSING_TIMESTAMP, ("ts",)),
    ("null ts", topic("aq-1"), payload(ts=None), Reason.MISSING_TIMESTAMP, ("ts",)),
    ("prose ts", topic("aq-1"), payload(ts="yesterday"), Reason.BAD_TIMESTAMP, ("'yesterday'",)),
    ("ts without zone", topic("aq-1"), payload(ts="2027-01-15T08:00:00"), Reason.BAD_TIMESTAMP, ("timezone",)),
    ("boolean ts", topic("aq-1"), payload(ts=True), Reason.BAD_TIMESTAMP, ("boolean",)),
    ("absurd ts", topic("aq-1"), payload(ts=1e300), Reason.BAD_TIMESTAMP, ("epoch-milliseconds",)),
    ("future ts", topic("aq-1"), payload(ts=NOW_MS + 3_600_000), Reason.FUTURE_TIMESTAMP, ("3600 s in the future",)),
    ("microseconds", topic("aq-1"), payload(ts=NOW_MS * 1000), Reason.FUTURE_TIMESTAMP, ("microseconds",)),
    ("stale ts", topic("aq-1"), payload(ts=NOW_MS - 40 * 86_400_000), Reason.STALE_TIMESTAMP, ("old",)),
    ("seconds not ms", topic("aq-1"), payload(ts=int(NOW)), Reason.STALE_TIMESTAMP, ("epoch seconds",)),
    ("negative seq", topic("aq-1"), payload(seq=-1), Reason.BAD_SEQ, ("-1",)),
    ("fractional seq", topic("aq-1"), payload(seq=1.5), Reason.BAD_SEQ, ("1.5",)),
    ("string seq", topic("aq-1"), payload(seq="7"), Reason.BAD_SEQ, ("string",)),
    ("boolean seq", topic("aq-1"), payload(seq=True), Reason.BAD_SEQ, ("boolean",)),
]


@pytest.mark.parametrize(
    ("topic_", "data", "reason", "words"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_every_rejection_has_its_own_reason_and_a_readable_detail(
    topic_: str, data: bytes, reason: Reason, words: tuple[str, ...]
) -> None:
    outcome = make_validator().check(topic_, data, NOW)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.reason is reason, str(outcome)
    assert str(outcome).startswith(f"{reason.value}: ")
    for word in words:
        assert word in outcome.detail, outcome.detail


def test_every_reason_is_exercised_by_the_table() -> None:
    covered = {r[3] for r in REJECTIONS} | {Reason.DUPLICATE}  # duplicates: tests below
    assert covered == set(Reason)


def test_size_is_checked_before_parsing() -> None:
    limits = Limits(max_payload_bytes=300)
    outcome = make_validator(limits).check(topic("aq-1"), b"not json at all " * 20, NOW)
    assert isinstance(outcome, Rejection)
    assert outcome.reason is Reason.OVERSIZED


def test_a_valid_reading_is_enriched_from_the_registry() -> None:
    outcome = make_validator().check(topic("aq-1"), payload({"pm25": 35.2, "pm10": 50}, seq=4), NOW)
    assert isinstance(outcome, Accepted)
    reading = outcome.reading
    assert (reading.sensor_id, reading.kind, reading.zone, reading.seq) == ("aq-1", SensorKind.AIR, "north gate", 4)
    assert reading.ts == NOW
    assert reading.values == {"pm25": 35.2, "pm10": 50.0}
    assert reading.location == GeoPoint(30.25, 119.75)
    assert outcome.line == r"air,kind=air,sensor=aq-1,zone=north\ gate pm25=35.2,pm10=50.0 1800000000000"


@pytest.mark.parametrize(
    ("sensor", "values", "canonical"),
    [
        ("aq-mg", {"pm25": 0.0352}, {"pm25": 35.2}),
        ("wl-cm", {"level": 123.0}, {"level": 1.23}),
        ("wq-1", {"ph": 7.1, "cod": 20.0}, {"ph": 7.1, "cod": 20.0}),
        ("rain-in", {"rate": 1.0}, {"rate": 25.4}),
        ("th-f", {"temp_max": 212.0, "temp_avg": 20.0}, {"temp_max": 100.0, "temp_avg": 20.0}),
        ("th-k", {"temp_max": 273.15}, {"temp_max": 0.0}),
        ("smoke-1", {"smoke": 0}, {"smoke": 0.0}),
    ],
)
def test_units_are_converted_to_canonical(sensor: str, values: dict[str, float], canonical: dict[str, float]) -> None:
    outcome = make_validator().check(topic(sensor), payload(values), NOW)
    assert isinstance(outcome, Accepted), outcome
    assert outcome.reading.values.keys() == canonical.keys()
    for name, expected in canonical.items():
        assert math.isclose(outcome.reading.values[name], expected, abs_tol=1e-9), name


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (NOW_MS, NOW),
        (NOW_MS + 123, NOW + 0.123),
        ("2027-01-15T08:00:00Z", NOW),
        ("2027-01-15T16:00:00.250+08:00", NOW + 0.25),
        (float(NOW_MS), NOW),
        (NOW_MS + 299_000, NOW + 299),  # inside the default 300 s skew
    ],
)
def test_timestamps_in_every_accepted_form(ts: object, expected: float) -> None:
    outcome = make_validator().check(topic("aq-1"), payload(ts=ts), NOW)
    assert isinstance(outcome, Accepted), outcome
    assert math.isclose(outcome.reading.ts, expected, abs_tol=1e-6)


def test_duplicate_seq_is_rejected_and_a_broker_redelivery_is_not() -> None:
    v = make_validator()
    first = payload(seq=7)
    assert isinstance(v.check(topic("aq-1"), first, NOW), Accepted)
    again = v.check(topic("aq-1"), first, NOW)
    assert isinstance(again, Rejection)
    assert again.reason is Reason.DUPLICATE
    assert "seq 7" in again.detail
    assert isinstance(v.check(topic("aq-1"), first, NOW, dup=True), Redelivered)
    late = v.check(topic("aq-1"), payload(seq=6, ts=NOW_MS - 1000), NOW)
    assert isinstance(late, Accepted)  # overtaken by seq 7 on the way, never received: kept
    replay = v.check(topic("aq-1"), payload(seq=6, ts=NOW_MS - 1000), NOW)
    assert isinstance(replay, Rejection)
    assert replay.reason is Reason.DUPLICATE
    assert isinstance(v.check(topic("aq-1"), payload(seq=8, ts=NOW_MS + 1000), NOW), Accepted)


def test_a_smaller_seq_with_a_newer_timestamp_is_a_device_restart() -> None:
    v = make_validator()
    assert isinstance(v.check(topic("aq-1"), payload(seq=900), NOW), Accepted)
    restarted = v.check(topic("aq-1"), payload(seq=0, ts=NOW_MS + 5000), NOW)
    assert isinstance(restarted, Accepted)
    assert restarted.reading.seq == 0


def test_readings_without_seq_are_deduplicated_by_timestamp() -> None:
    v = make_validator()
    assert isinstance(v.check(topic("aq-1"), payload(), NOW), Accepted)
    same = v.check(topic("aq-1"), payload({"pm25": 99.0}), NOW)
    assert isinstance(same, Rejection)
    assert same.reason is Reason.DUPLICATE
    assert "without seq" in same.detail
    assert isinstance(v.check(topic("aq-1"), payload(ts=NOW_MS - 1), NOW), Accepted)  # late, never seen
    assert isinstance(v.check(topic("aq-1"), payload(ts=NOW_MS + 1), NOW), Accepted)


def test_dedup_is_per_sensor_and_rejections_do_not_advance_it() -> None:
    v = make_validator()
    assert isinstance(v.check(topic("aq-1"), payload(seq=5), NOW), Accepted)
    assert isinstance(v.check(topic("aq-mg"), payload({"pm25": 0.01}, seq=5), NOW), Accepted)
    bad = v.check(topic("noise-1"), payload({"laeq": 500}, seq=5), NOW)
    assert isinstance(bad, Rejection)
    assert isinstance(v.check(topic("noise-1"), payload({"laeq": 50}, seq=5), NOW), Accepted)
