"""The pure validator: (topic, payload, now) + registry -> an accepted reading or a precise rejection."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ingest.dedup import DedupState
from ingest.lineproto import encode_line, epoch_ms
from ingest.registry import SensorProfile
from qinghe.contracts import SensorReading
from qinghe.timefmt import to_rfc3339

ALLOWED_KEYS = frozenset({"ts", "values", "seq", "v"})
_MAX_SEQ = 2**63 - 1
_MIN_PLAUSIBLE_TS = 946_684_800.0  # 2000-01-01: anything earlier is a unit mistake, not a reading


class Reason(StrEnum):
    """Why a message was rejected; the code starts every dead letter's reason."""

    OVERSIZED = "oversized"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_SENSOR = "unknown_sensor"
    MALFORMED_JSON = "malformed_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_KEY = "unknown_key"
    MISSING_VALUES = "missing_values"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    NON_NUMERIC = "non_numeric"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    MISSING_TIMESTAMP = "missing_timestamp"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_SEQ = "bad_seq"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected message: a reason code and a human-readable detail."""

    reason: Reason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid, new reading in canonical units, with its line-protocol form."""

    reading: SensorReading
    line: str


@dataclass(frozen=True, slots=True)
class Redelivered:
    """A broker redelivery (DUP flag) of a reading already accepted: acknowledge it, store nothing."""

    sensor_id: str
    detail: str


Outcome = Accepted | Rejection | Redelivered


@dataclass(frozen=True, slots=True)
class Limits:
    """Size and time tolerances (from IngestConfig)."""

    max_payload_bytes: int = 16 * 1024
    max_future_skew_s: float = 300.0
    max_age_s: float = 30 * 86400.0


class _Reject(Exception):  # noqa: N818 - internal control flow, never escapes this module
    def __init__(self, reason: Reason, detail: str) -> None:
        self.rejection = Rejection(reason, detail)


class Validator:
    """Checks raw sensor messages against the registry and each kind's fields, units and ranges.

    Holds the dedup state, so call it from one thread, in message order.
    """

    def __init__(
        self,
        registry: Mapping[str, SensorProfile],
        topic_root: str,
        limits: Limits = Limits(),
        dedup: DedupState | None = None,
        *,
        lines: bool = True,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.dedup = dedup if dedup is not None else DedupState()
        self.lines = lines  # False: Accepted.line is left empty (a consumer that stores nothing)
        self._head = f"{topic_root}/sensor/"
        self._tail = "/reading"

    def check(self, topic: str, payload: bytes, now: float, dup: bool = False) -> Outcome:
        """Validate one message received at `now`; `dup` is the MQTT DUP flag (a broker redelivery)."""
        try:
            profile = self._profile(topic, payload)
            doc = _parse(payload)
            values = _values(profile, doc)
            ts = self._timestamp(doc.get("ts"), now)
            seq = _seq(doc.get("seq"))
        except _Reject as exc:
            return exc.rejection
        duplicate = self.dedup.check(profile.sensor_id, seq, ts)
        if duplicate is not None:
            return Redelivered(profile.sensor_id, duplicate) if dup else Rejection(Reason.DUPLICATE, duplicate)
        reading = SensorReading(profile.sensor_id, profile.kind, profile.zone, ts, values, seq, profile.location)
        return Accepted(reading, encode_line(profile.line_prefix, values, epoch_ms(ts)) if self.lines else "")

    def _profile(self, topic: str, payload: bytes) -> SensorProfile:
        size = len(payload)
        if size > self.limits.max_payload_bytes:
            raise _Reject(
                Reason.OVERSIZED, f"payload is {size} bytes, over the {self.limits.max_payload_bytes} byte limit"
            )
        if not (topic.startswith(self._head) and topic.endswith(self._tail)):
            raise _Reject(Reason.BAD_TOPIC, f"topic {topic!r} is not {self._head}<sensor_id>{self._tail}")
        sensor_id = topic[len(self._head) : -len(self._tail)]
        profile = self.registry.get(sensor_id)
        if profile is None:
            raise _Reject(Reason.UNKNOWN_SENSOR, f"sensor {sensor_id!r} is not in the sensor registry")
        return profile

    def _timestamp(self, raw: object, now: float) -> float:
        ts = _parse_ts(raw)
        if ts > now + self.limits.max_future_skew_s:
            hint = " (looks like epoch microseconds; send milliseconds)" if ts > now * 100 else ""
            raise _Reject(
                Reason.FUTURE_TIMESTAMP,
                f"ts {_show_ts(ts)} is {ts - now:.0f} s in the future "
                f"(more than the allowed {self.limits.max_future_skew_s:g} s){hint}",
            )
        if ts < now - self.limits.max_age_s or ts < _MIN_PLAUSIBLE_TS:
            hint = " (looks like epoch seconds; send milliseconds)" if isinstance(raw, int | float) and ts < 1e7 else ""
            raise _Reject(
                Reason.STALE_TIMESTAMP,
                f"ts {_show_ts(ts)} is {now - ts:.0f} s old (older than the allowed {self.limits.max_age_s:g} s){hint}",
            )
        return ts


# the C scanner json.loads itself runs (typeshed does not declare the attribute)
_scan_json: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(payload: bytes) -> object:
    """json.loads, with a shortcut for the common case: UTF-8 text that is one JSON value, nothing around
    it. Anything else (whitespace, a BOM, other encodings, errors) goes through json.loads itself, so
    results and error messages are exactly json.loads's."""
    try:
        text = payload.decode()
        value, end = _scan_json(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
        return json.loads(payload)
    return value if end == len(text) else json.loads(payload)


def _parse(payload: bytes) -> dict[str, object]:
    try:
        doc = _loads(payload)
    except UnicodeDecodeError as exc:
        raise _Reject(Reason.MALFORMED_JSON, f"payload is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise _Reject(Reason.MALFORMED_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise _Reject(Reason.MALFORMED_JSON, f"cannot parse JSON: {exc}") from None
    if type(doc) is not dict:
        raise _Reject(Reason.NOT_OBJECT, f"payload is a JSON {_json_type(doc)}, not an object")
    if not doc.keys() <= ALLOWED_KEYS:
        unknown = sorted(str(k) for k in doc.keys() - ALLOWED_KEYS)
        raise _Reject(
            Reason.UNKNOWN_KEY, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: ts, values, seq, v"
        )
    return doc


def _values(profile: SensorProfile, doc: dict[str, object]) -> dict[str, float]:
    raw_values = doc.get("values")
    if raw_values is None:
        raise _Reject(Reason.MISSING_VALUES, 'no `values` object (expected e.g. {"values": {"pm25": 35.2}})')
    if type(raw_values) is not dict:
        raise _Reject(
            Reason.MISSING_VALUES, f"`values` must be an object of field: number, got a JSON {_json_type(raw_values)}"
        )
    out: dict[str, float] = {}
    for name, raw in raw_values.items():
        rule = profile.fields.get(name)
        if rule is None:
            known = ", ".join(profile.fields)
            raise _Reject(Reason.UNKNOWN_FIELD, f"{profile.kind.value} sensors have no field {name!r} (known: {known})")
        kind = type(raw)
        if kind is float:
            if not math.isfinite(raw):
                raise _Reject(Reason.NOT_FINITE, f"{name} is {raw}, not a finite number")
            value: float = raw
        elif kind is int:
            value = _int_to_float(name, raw)
        else:
            raise _Reject(Reason.NON_NUMERIC, f"{name} must be a number, got {_json_type(raw)} {_short(raw)}")
        if rule.convert is not None:
            value = rule.convert(value)
        spec = rule.spec
        if not spec.low <= value <= spec.high:
            reported = f" (reported {raw} {rule.unit})" if rule.convert is not None else ""
            raise _Reject(
                Reason.OUT_OF_RANGE,
                f"{name}={value:g} {spec.unit}{reported} is outside the physical range "
                f"{spec.low:g}..{spec.high:g} {spec.unit}",
            )
        out[name] = value
    for name in profile.required:
        if name not in out:
            raise _Reject(Reason.MISSING_FIELD, f"required field {name!r} of {profile.kind.value} sensors is missing")
    return out


def _int_to_float(name: str, raw: object) -> float:
    try:
        return float(raw)  # type: ignore[arg-type]
    except OverflowError:
        raise _Reject(Reason.OUT_OF_RANGE, f"{name} is an integer too large to be a measurement") from None


def _parse_ts(raw: object) -> float:
    if raw is None:
        raise _Reject(Reason.MISSING_TIMESTAMP, "no `ts` (an RFC 3339 string or epoch milliseconds)")
    kind = type(raw)
    if kind is str:
        try:
            parsed = datetime.fromisoformat(raw)  # type: ignore[arg-type]
        except ValueError:
            raise _Reject(Reason.BAD_TIMESTAMP, f"ts {_short(raw)} is not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise _Reject(Reason.BAD_TIMESTAMP, f"ts {_short(raw)} has no timezone offset (add Z or +08:00)")
        return parsed.timestamp()
    if kind is int or kind is float:
        try:
            ts = float(raw) / 1000.0  # type: ignore[arg-type]
        except OverflowError:
            ts = math.inf
        if not math.isfinite(ts) or abs(ts) > 1e14:
            raise _Reject(Reason.BAD_TIMESTAMP, f"ts {_short(raw)} is not a usable epoch-milliseconds value")
        return ts
    raise _Reject(Reason.BAD_TIMESTAMP, f"ts must be an RFC 3339 string or epoch milliseconds, got {_json_type(raw)}")


def _seq(raw: object) -> int | None:
    if raw is None:
        return None
    if type(raw) is not int or not 0 <= raw <= _MAX_SEQ:
        raise _Reject(Reason.BAD_SEQ, f"seq must be an integer from 0 to 2^63-1, got {_json_type(raw)} {_short(raw)}")
    return raw


def _show_ts(ts: float) -> str:
    try:
        return to_rfc3339(ts)
    except (ValueError, OverflowError, OSError):
        return f"{ts:.0f} (epoch s)"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(value: object, limit: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
