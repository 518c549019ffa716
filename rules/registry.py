"""What the rules engine needs from the central registry: sensors and cameras, their zones and places."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from qinghe.central_config import CentralConfig
from qinghe.config import LocationConfig, SensorConfig
from qinghe.contracts import GeoPoint

EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """A registered sensor."""

    id: str
    kind: str
    zone: str
    location: GeoPoint | None = None
    expected_interval_s: float = 60.0
    tags: frozenset[str] = frozenset()
    name: str = ""


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """A registered camera."""

    id: str
    kind: str = "generic"
    zones: tuple[str, ...] = ()
    location: GeoPoint | None = None
    speaker_id: str | None = None


@dataclass(frozen=True, slots=True)
class Registry:
    """Sensors and cameras by id; the engine reads locations, intervals and speakers from here."""

    sensors: dict[str, SensorInfo] = field(default_factory=dict)
    cameras: dict[str, CameraInfo] = field(default_factory=dict)

    @classmethod
    def from_central(cls, config: CentralConfig) -> Registry:
        """Build from a loaded central config."""
        sensors = {s.id: _sensor_info(s) for s in config.sensors}
        cameras = {
            c.id: CameraInfo(c.id, c.kind, tuple(c.zones), _point(c.location), c.speaker_id) for c in config.cameras
        }
        return cls(sensors, cameras)

    @classmethod
    def of(cls, sensors: Iterable[SensorInfo] = (), cameras: Iterable[CameraInfo] = ()) -> Registry:
        """Build from lists (tests, replays without a central config)."""
        return cls({s.id: s for s in sensors}, {c.id: c for c in cameras})

    def zones(self) -> set[str]:
        """Every zone named by a sensor or a camera."""
        return {s.zone for s in self.sensors.values()} | {z for c in self.cameras.values() for z in c.zones}

    def tags(self) -> set[str]:
        """Every sensor tag."""
        return {t for s in self.sensors.values() for t in s.tags}

    def speakers(self) -> set[str]:
        """Every speaker id named by a camera."""
        return {c.speaker_id for c in self.cameras.values() if c.speaker_id}

    def location_of(self, kind: str, ident: str) -> GeoPoint | None:
        """Location of a sensor (`kind="sensor"`) or camera."""
        if kind == "sensor":
            sensor = self.sensors.get(ident)
            return sensor.location if sensor else None
        camera = self.cameras.get(ident)
        return camera.location if camera else None


def _sensor_info(sensor: SensorConfig) -> SensorInfo:
    # `tags` may be absent from older registries; they simply have none.
    tags = frozenset(getattr(sensor, "tags", ()) or ())
    return SensorInfo(
        sensor.id,
        sensor.kind.value,
        sensor.zone,
        _point(sensor.location),
        sensor.expected_interval_s,
        tags,
        sensor.name,
    )


def _point(location: LocationConfig | None) -> GeoPoint | None:
    return None if location is None else GeoPoint(location.lat, location.lon)


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance in metres (haversine)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
