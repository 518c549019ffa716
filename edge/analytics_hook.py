"""Which analytics run on a camera, and the zone schedule hooks (named schedules of the camera's analytics).

The enforcement analytics live in `detectors.analytics` (another package, imported lazily). Its entry
point is `build_analytics(camera: CameraConfig, config_dir: Path) -> list[Analytic]`. A camera whose
`analytics:` section configures nothing, or an installation without that builder, runs the built-in
`object` analytic (zone enter / dwell / exit) on its zones instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detectors.core import Analytic
from edge.config import EdgeConfig
from edge.config_camera import CameraConfig
from edge.objects import ObjectAnalytic
from edge.zones import ActiveHook

log = logging.getLogger(__name__)

Builder = Callable[[CameraConfig, Path], list[Analytic]]


def _builder() -> Builder | None:
    try:
        import detectors.analytics as package
    except ImportError:
        return None
    builder: Builder | None = getattr(package, "build_analytics", None)
    return builder


def build_camera_analytics(camera: CameraConfig, config: EdgeConfig, config_dir: Path) -> list[Analytic]:
    """The camera's enforcement analytics when configured, else the built-in `object` analytic on its zones."""
    builder = _builder()
    enabled = getattr(camera.analytics, "enabled", None)
    wants_enforcement = bool(enabled()) if callable(enabled) else False
    if builder is not None and wants_enforcement:
        return list(builder(camera, config_dir))
    if wants_enforcement:
        log.warning("camera %s configures analytics but detectors.analytics.build_analytics is missing", camera.id)
    if not camera.zones:
        return []
    return [ObjectAnalytic(camera.id, camera.zones, config.events)]


def compile_zone_schedules(camera: CameraConfig, config_dir: Path) -> dict[str, ActiveHook]:
    """`schedule name -> active(t)` for the schedules the camera's zones name (rules.calendar semantics)."""
    names = {zone.schedule for zone in camera.zones if zone.schedule is not None}
    if not names:
        return {}
    from rules.calendar import DayCalendar, Schedule, load_calendar

    analytics: Any = camera.analytics
    calendar_files = [Path(p) if Path(p).is_absolute() else config_dir / p for p in analytics.calendars]
    calendar = DayCalendar.merge([load_calendar(p) for p in calendar_files])
    hooks: dict[str, ActiveHook] = {}
    for name in sorted(names):
        schedule = Schedule.compile(name, analytics.schedules[name], analytics.timezone, calendar)
        hooks[name] = schedule.active
    return hooks
