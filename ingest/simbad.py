"""Malformed and invalid sensor messages for `simulate --bad-fraction`: one of every rejection class in turn."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ingest.simmodels import TO_REPORTED, SimSensor
from qinghe.sensors import KINDS
from qinghe.timefmt import to_rfc3339

# class name -> the rejection code ingest gives it (documented in docs/ingest.md)
BAD_CLASSES: dict[str, str] = {
    "malformed_json": "malformed_json",
    "not_utf8": "malformed_json",
    "not_object": "not_object",
    "unknown_sensor": "unknown_sensor",
    "missing_values": "missing_values",
    "missing_field": "missing_field",
    "unknown_field": "unknown_field",
    "string_value": "non_numeric",
    "boolean_value": "non_numeric",
    "nan_value": "not_finite",
    "infinite_value": "not_finite",
    "out_of_range": "out_of_range",
    "missing_ts": "missing_timestamp",
    "unparseable_ts": "bad_timestamp",
    "future_ts": "future_timestamp",
    "stale_ts": "stale_timestamp",
    "oversized": "oversized",
    "bad_seq": "bad_seq",
    "unknown_key": "unknown_key",
    "duplicate_seq": "duplicate",
}
CLASS_ORDER: tuple[str, ...] = tuple(BAD_CLASSES)


@dataclass(frozen=True, slots=True)
class BadMessage:
    """One invalid message: where it goes, its bytes, and which class it exercises."""

    topic: str
    payload: bytes
    bad_class: str


def _dump(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def make_bad(
    bad_class: str,
    sensor: SimSensor,
    topic: str,
    good: dict[str, object],
    *,
    now: float,
    previous: bytes | None,
    max_payload_bytes: int,
) -> BadMessage | None:
    """Turn a good reading `good` of `sensor` into a message of `bad_class` (None if impossible now).

    `previous` is the sensor's last valid payload, replayed verbatim for `duplicate_seq`.
    """
    values = dict(good["values"])  # type: ignore[call-overload]
    first = next(iter(KINDS[sensor.kind].required()))

    def with_values(**changes: object) -> bytes:
        return _dump({**good, "values": {**values, **changes}})

    def with_doc(**changes: object) -> bytes:
        return _dump({**good, **changes})

    payloads: dict[str, object] = {
        "malformed_json": lambda: with_doc()[:-3] + b",,}",
        "not_utf8": lambda: b'{"ts": "\xff\xfe", "values": {}}',
        "not_object": lambda: json.dumps([values]).encode(),
        "missing_values": lambda: _dump({k: v for k, v in good.items() if k != "values"}),
        "missing_field": lambda: _dump({**good, "values": {k: v for k, v in values.items() if k != first}}),
        "unknown_field": lambda: with_values(bogus=1.0),
        "string_value": lambda: with_values(**{first: "35.2"}),
        "boolean_value": lambda: with_values(**{first: True}),
        "nan_value": lambda: with_doc().replace(_field_text(first, values[first]), f'"{first}":NaN'.encode()),
        "infinite_value": lambda: with_doc().replace(
            _field_text(first, values[first]), f'"{first}":-Infinity'.encode()
        ),
        "out_of_range": lambda: with_values(**{first: _out_of_range(sensor, first)}),
        "missing_ts": lambda: _dump({k: v for k, v in good.items() if k != "ts"}),
        "unparseable_ts": lambda: with_doc(ts="yesterday at noon"),
        "future_ts": lambda: with_doc(ts=to_rfc3339(now + 86400.0)),
        "stale_ts": lambda: with_doc(ts=int((now - 400 * 86400.0) * 1000)),
        "oversized": lambda: with_doc(note="x" * (max_payload_bytes + 64)),
        "bad_seq": lambda: with_doc(seq=-5),
        "unknown_key": lambda: with_doc(battery=3.7),
    }
    if bad_class == "unknown_sensor":
        return BadMessage(topic.replace(f"/{sensor.sensor_id}/", "/no-such-sensor-9/"), with_doc(), bad_class)
    if bad_class == "duplicate_seq":
        return BadMessage(topic, previous, bad_class) if previous is not None else None
    build = payloads[bad_class]
    return BadMessage(topic, build(), bad_class)  # type: ignore[operator]


def _field_text(name: str, value: object) -> bytes:
    return f'"{name}":{json.dumps(value)}'.encode()


def _out_of_range(sensor: SimSensor, name: str) -> float:
    spec = KINDS[sensor.kind].fields[name]
    canonical = spec.high * 3 + 100.0
    unit = sensor.units.get(name, spec.unit)
    convert = TO_REPORTED.get((spec.unit, unit)) if unit != spec.unit else None
    return round(convert(canonical) if convert is not None else canonical, 3)
