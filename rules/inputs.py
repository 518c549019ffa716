"""Decode MQTT traffic into engine inputs: readings (via the ingest validator), camera events and status."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from qinghe.central_config import CentralConfig
from qinghe.codec import decode
from qinghe.contracts import CameraState, CameraStatus, ObjectEvent, SensorKind, SensorReading
from qinghe.errors import PayloadError
from qinghe.sensors import KINDS, unit_converter
from qinghe.timefmt import parse_timestamp
from qinghe.topics import Topics
from rules.engine import CameraUpdate, Input

log = logging.getLogger(__name__)

BOX_SLACK = 1e-6  # rounding slack on a normalised box coordinate


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the rules service cannot use: why, for the dead-letter topic."""

    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message that is fine but carries nothing for the engine (a cleared retained status, a redelivery)."""

    why: str


Decoded = Input | Rejected | Ignored
ReadingCheck = Callable[[str, bytes, float, bool], "SensorReading | Rejected | Ignored"]


class InputDecoder:
    """Turns (topic, payload, now) into what the engine takes; one per service (it holds dedup state)."""

    def __init__(self, config: CentralConfig, topics: Topics) -> None:
        self.topics = topics
        self._check_reading = _reading_checker(config, topics)
        self._sensor_head = f"{topics.root}/sensor/"
        self._cameras = frozenset(config.camera_map())
        self._unregistered: set[str] = set()

    def decode(self, topic: str, payload: bytes, now: float, dup: bool = False) -> Decoded:
        """Route by topic and decode; `dup` marks a broker redelivery (a repeated reading is then ignored,
        not dead-lettered)."""
        if topic.startswith(self._sensor_head) and topic.endswith("/reading") and topic.count("/") == 4:
            return self._check_reading(topic, payload, now, dup)  # the busy route, without the general parser
        try:
            route = self.topics.parse(topic)
        except PayloadError as exc:
            return Rejected(exc.reason)
        if route.route == "sensor_reading":
            return self._check_reading(topic, payload, now, dup)
        if route.route == "camera_event":
            return self._event(route.params["camera_id"], payload)
        if route.route == "camera_status":
            return decode_status(route.params["camera_id"], payload)
        return Ignored(f"topic {topic} is not an input of the rules engine")

    def _event(self, camera_id: str, payload: bytes) -> ObjectEvent | Rejected:
        """A camera event. One from a camera missing in the registry is still used (a detection, a fire
        above all, is not dropped because the registry lags the edge boxes) and logged once."""
        decoded = decode_event(camera_id, payload)
        if isinstance(decoded, ObjectEvent) and camera_id not in self._cameras and camera_id not in self._unregistered:
            self._unregistered.add(camera_id)
            log.warning("camera %s is not in the camera registry: its events are routed by their own zone", camera_id)
        return decoded


def decode_event(camera_id: str, payload: bytes) -> ObjectEvent | Rejected:
    """A camera event; its camera must match the topic's, its box be normalised, its score and dwell sane."""
    try:
        event = decode(ObjectEvent, payload)
    except PayloadError as exc:
        return Rejected(exc.reason)
    if event.camera_id != camera_id:
        return Rejected(f"camera_id {event.camera_id!r} does not match the topic's camera {camera_id!r}")
    problem = _event_problem(event)
    return Rejected(problem) if problem else event


def _event_problem(event: ObjectEvent) -> str | None:
    """What makes an event's numbers unusable, if anything."""
    x1, y1, x2, y2 = event.box
    if not all(math.isfinite(v) and -BOX_SLACK <= v <= 1 + BOX_SLACK for v in event.box):
        return f"box {list(event.box)} is not normalised to 0..1"
    if x2 < x1 or y2 < y1:
        return f"box {list(event.box)} has x2 < x1 or y2 < y1"
    if not (math.isfinite(event.score) and 0.0 <= event.score <= 1.0):
        return f"score {event.score} is outside 0..1"
    if not (math.isfinite(event.dwell_s) and event.dwell_s >= 0):
        return f"dwell_s {event.dwell_s} is negative or not finite"
    return None


def decode_status(camera_id: str, payload: bytes) -> CameraUpdate | Rejected | Ignored:
    """A retained camera status; an empty payload (a cleared retained message) is ignored."""
    if not payload:
        return Ignored("cleared retained status")
    try:
        status = decode(CameraStatus, payload)
    except PayloadError as exc:
        return Rejected(exc.reason)
    return CameraUpdate(camera_id, CameraState(status.state).value)


def _reading_checker(config: CentralConfig, topics: Topics) -> ReadingCheck:
    """The ingest validator when it is installed (same rules as ingest), else a local decoder."""
    try:
        from ingest.config import IngestConfig
        from ingest.registry import compile_registry
        from ingest.validate import Accepted, Limits, Redelivered, Validator
    except ImportError:  # ingest not installed alongside: decode with the contract codec rules
        log.info("ingest validator not available; decoding readings locally")
        return _LocalReadings(config, topics).check
    settings: IngestConfig = config.ingest
    limits = Limits(settings.max_payload_bytes, settings.max_future_skew_s, settings.max_age_s)
    validator = Validator(compile_registry(config.sensors), topics.root, limits, lines=False)

    def check(topic: str, payload: bytes, now: float, dup: bool) -> SensorReading | Rejected | Ignored:
        outcome = validator.check(topic, payload, now, dup)
        if isinstance(outcome, Accepted):
            return outcome.reading
        if isinstance(outcome, Redelivered):
            return Ignored(outcome.detail)
        return Rejected(str(outcome))

    return check


class _LocalReadings:
    """Minimal reading decoder: JSON, timestamp, registry lookup, unit conversion, physical range."""

    def __init__(self, config: CentralConfig, topics: Topics) -> None:
        self.sensors = config.sensor_map()
        self.topics = topics

    def check(self, topic: str, payload: bytes, now: float, dup: bool) -> SensorReading | Rejected | Ignored:
        del now, dup
        sensor_id = self.topics.parse(topic).params.get("sensor_id", "")
        sensor = self.sensors.get(sensor_id)
        if sensor is None:
            return Rejected(f"unknown_sensor: sensor {sensor_id!r} is not in the sensor registry")
        try:
            doc = json.loads(payload)
            ts = parse_timestamp(doc["ts"])
            raw = doc["values"]
            values = {name: self._value(sensor.kind, sensor.units, name, raw[name]) for name in raw}
        except (ValueError, KeyError, TypeError, PayloadError) as exc:
            return Rejected(f"invalid reading: {exc}")
        location = None
        if sensor.location is not None:
            from qinghe.contracts import GeoPoint

            location = GeoPoint(sensor.location.lat, sensor.location.lon)
        return SensorReading(sensor.id, sensor.kind, sensor.zone, ts, values, doc.get("seq"), location)

    @staticmethod
    def _value(kind: SensorKind, units: dict[str, str], name: str, raw: object) -> float:
        spec = KINDS[kind].fields.get(name)
        if spec is None:
            raise ValueError(f"{kind.value} sensors have no field {name!r}")
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise ValueError(f"{name} is not a finite number")
        convert = unit_converter(spec, units.get(name, spec.unit))
        value = convert(float(raw)) if convert else float(raw)
        if not spec.low <= value <= spec.high:
            raise ValueError(f"{name}={value:g} is outside {spec.low:g}..{spec.high:g} {spec.unit}")
        return value
