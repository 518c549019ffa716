"""The enforcement analytics (illegal parking, dumping, smoke/fire, standing water) and their builder.

The edge agent calls `build_analytics(camera, config_dir)` once per camera and feeds every returned
analytic one FrameObservation per analysed frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from detectors.analytics.common import ScheduleTracker
from detectors.analytics.config import AnalyticsConfig, DumpingMode, zone_issues
from detectors.analytics.dumping import BEFORE_GAP_S, Dumping
from detectors.analytics.parking import IllegalParking
from detectors.analytics.smoke import SmokeFire
from detectors.analytics.water import RainSource, StandingWater
from detectors.core import Analytic, Frame
from detectors.plates import PlateQueue, shared_plate_worker
from qinghe.errors import QingheError

log = logging.getLogger(__name__)

__all__ = ["AnalyticsError", "CameraLike", "build_analytics", "build_from_config"]


class AnalyticsError(QingheError):
    """The analytics of a camera cannot be built (unknown zone, unreadable file)."""


class ZoneLike(Protocol):
    """What the builder needs of a zone: its name and normalised polygon."""

    @property
    def name(self) -> str: ...

    @property
    def polygon(self) -> Sequence[tuple[float, float]]: ...


class CameraLike(Protocol):
    """What the builder needs of the edge agent's CameraConfig."""

    @property
    def id(self) -> str: ...

    @property
    def zones(self) -> Sequence[ZoneLike]: ...

    @property
    def analytics(self) -> AnalyticsConfig: ...

    @property
    def before_s(self) -> float: ...


def build_analytics(camera: CameraLike, config_dir: Path | str | None = None) -> list[Analytic]:
    """The analytics configured under the camera's `analytics:` (plates via the shared plate worker)."""
    polygons = {zone.name: [(float(x), float(y)) for x, y in zone.polygon] for zone in camera.zones}
    cfg = camera.analytics
    plates: PlateQueue | None = None
    if any(p.plates and p.plate_reads > 0 for p in cfg.illegal_parking) and cfg.plates.backend != "none":
        worker = shared_plate_worker(cfg.plates.backend, cfg.plates.queue, cfg.plates.min_confidence)
        plates = worker.client() if worker is not None else None
    for entry in cfg.dumping:
        needed = entry.static_s + BEFORE_GAP_S + (2 * entry.short_tau_s if entry.mode is not DumpingMode.MODEL else 0)
        if camera.before_s < needed:
            log.warning("camera %s: before_s %.0f s < %.0f s: dumping's appeared/before snapshots fall back to "
                        "the current frame (raise before_s)", camera.id, camera.before_s, needed)  # fmt: skip
    return build_from_config(camera.id, cfg, polygons, Path(config_dir or "."), plates=plates)


def build_from_config(camera_id: str, cfg: AnalyticsConfig, polygons: dict[str, list[tuple[float, float]]],
                      config_dir: Path, *, plates: PlateQueue | None = None,
                      rain: RainSource | None = None) -> list[Analytic]:  # fmt: skip
    """Build from the analytics section and the camera's zone polygons (used by eval and tests too)."""
    problems = list(zone_issues(cfg, polygons))
    if problems:
        loc, message = problems[0]
        raise AnalyticsError(f"camera {camera_id}: analytics.{'.'.join(str(p) for p in loc)}: {message}")
    schedules = _schedules(cfg, config_dir)
    labels = cfg.labels
    out: list[Analytic] = []
    for p in cfg.illegal_parking:
        out.append(IllegalParking(camera_id, p, polygons[p.zone], vehicle_labels=labels.vehicle,
                                  schedule=_tracker(schedules, p.schedule), plates=plates))  # fmt: skip
    for d in cfg.dumping:
        out.append(Dumping(camera_id, d, polygons[d.zone], garbage_labels=labels.garbage,
                           owner_labels=labels.person + labels.vehicle,
                           schedule=_tracker(schedules, d.schedule)))  # fmt: skip
    for s in cfg.smoke_fire:
        polygon = polygons[s.zone] if s.zone is not None else None
        out.append(SmokeFire(camera_id, s, polygon, smoke_labels=labels.smoke, fire_labels=labels.fire,
                             schedule=_tracker(schedules, s.schedule)))  # fmt: skip
    for w in cfg.standing_water:
        reference = _reference(w.reference_image, config_dir) if w.reference_image else None
        out.append(StandingWater(camera_id, w, polygons[w.zone], water_labels=labels.water,
                                 occluder_labels=labels.vehicle + labels.person,
                                 schedule=_tracker(schedules, w.schedule), reference=reference, rain=rain))  # fmt: skip
    return out


def _schedules(cfg: AnalyticsConfig, config_dir: Path) -> dict[str, object]:
    if not cfg.schedules:
        return {}
    from rules.calendar import DayCalendar, Schedule, load_calendar

    files = [Path(p) if Path(p).is_absolute() else config_dir / p for p in cfg.calendars]
    calendar = DayCalendar.merge([load_calendar(p) for p in files])
    return {name: Schedule.compile(name, model, cfg.timezone, calendar) for name, model in cfg.schedules.items()}


def _tracker(schedules: dict[str, object], name: str | None) -> ScheduleTracker:
    if name is None:
        return ScheduleTracker(None)
    gate = schedules[name]
    return ScheduleTracker(gate)  # type: ignore[arg-type]


def _reference(path: str, config_dir: Path) -> Frame:
    full = Path(path) if Path(path).is_absolute() else config_dir / path
    image = cv2.imread(str(full), cv2.IMREAD_COLOR)
    if image is None:
        raise AnalyticsError(f"standing_water reference_image {full} cannot be read")
    return np.asarray(image, np.uint8)
