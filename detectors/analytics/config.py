"""Per-camera analytics settings, embedded under `analytics:` in each camera of the edge config.

Times are seconds of the observations' clock. Zones are referenced by name (the camera's `zones`);
schedules by name (`schedules:`, the rules engine's window syntax, holiday calendars included).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from qinghe.config import StrictModel
from qinghe.yamlload import Loc
from rules.calendar import DEFAULT_TIMEZONE, ScheduleModel, check_timezone


class LabelSets(StrictModel):
    """Which detector labels mean what to the analytics (after the detector's own renames)."""

    vehicle: list[str] = Field(default_factory=lambda: ["car", "truck", "bus", "van", "motorcycle"])
    person: list[str] = Field(default_factory=lambda: ["person"])
    garbage: list[str] = Field(default_factory=lambda: ["garbage"])
    smoke: list[str] = Field(default_factory=lambda: ["smoke"])
    fire: list[str] = Field(default_factory=lambda: ["fire"])
    water: list[str] = Field(default_factory=lambda: ["water"])


class ParkingConfig(StrictModel):
    """`illegal_parking` on one no-parking zone: dwelling -> warning -> violation, or complied."""

    zone: str = Field(min_length=1, description="name of a camera zone")
    schedule: str | None = Field(None, description="name under `schedules`; default: always enforced")
    labels: list[str] | None = Field(None, description="vehicle labels; default: labels.vehicle")
    min_score: float = Field(0.3, ge=0, le=1)
    stationary_s: float = Field(10.0, gt=0, description="still this long before the episode starts (dwelling)")
    warn_after_s: float = Field(60.0, gt=0, description="dwell time at which the warning is given")
    grace_s: float = Field(300.0, gt=0, description="time after the warning to leave before it is a violation")
    occlusion_s: float = Field(30.0, gt=0, description="unseen this long (hidden or gone) counts as left")
    depart_confirm_s: float = Field(
        3.0, ge=0, description="after it is seen driving off, the spot must stay empty this long (tracker mix-ups)"
    )
    still_overlap: float = Field(0.8, gt=0, le=1, description="box overlap with where it stopped to count as still")
    leave_overlap: float = Field(0.5, gt=0, le=1, description="below this overlap a tracked parked vehicle has left")
    plates: bool = Field(True, description="read the plate (a few times per episode, off the hot path)")
    plate_reads: int = Field(4, ge=0, le=50, description="most plate reads per episode")
    plate_interval_s: float = Field(5.0, gt=0, description="at least this long between two reads of one vehicle")
    max_vehicles: int = Field(64, ge=1, le=10_000, description="vehicles followed at once per zone (bounded state)")

    @model_validator(mode="after")
    def _check_times(self) -> ParkingConfig:
        if self.stationary_s > self.warn_after_s:
            raise ValueError(f"stationary_s ({self.stationary_s}) must not exceed warn_after_s ({self.warn_after_s})")
        return self


class DumpingMode(StrEnum):
    """Where left-behind objects come from."""

    MODEL = "model"  # a `garbage` class of the detector
    BACKGROUND = "background"  # model-free: long-term vs short-term background
    BOTH = "both"


class DumpingConfig(StrictModel):
    """`dumping` on one watched zone: a new object appears, stays, and someone was there just before."""

    zone: str = Field(min_length=1)
    schedule: str | None = None
    mode: DumpingMode = DumpingMode.BOTH
    static_s: float = Field(15.0, gt=0, description="the object must stay this long before the event")
    require_owner: bool = Field(True, description="a person or vehicle must have been near it just before")
    owner_window_s: float = Field(30.0, gt=0, description="how long before the appearance an owner counts")
    owner_distance: float = Field(0.12, gt=0, le=1, description="owner box within this (fraction of frame width)")
    min_area: float = Field(0.0004, ge=0, le=1, description="smallest object, fraction of the frame")
    max_area: float = Field(0.08, gt=0, le=1, description="largest object, fraction of the frame")
    min_score: float = Field(0.3, ge=0, le=1, description="model path: minimum garbage score")
    clear_s: float = Field(20.0, gt=0, description="object gone this long: the episode ends (removed)")
    max_episode_s: float = Field(3600.0, gt=0, description="after this the object becomes background (expired)")
    long_tau_s: float = Field(600.0, gt=0, description="background path: long-term model time constant")
    short_tau_s: float = Field(4.0, gt=0, description="background path: short-term model time constant")
    diff_threshold: float = Field(28.0, gt=0, le=255, description="grey-level difference that counts as changed")
    analysis_width: int = Field(192, ge=32, le=1920, description="frames are downscaled to this width first")
    max_objects: int = Field(32, ge=1, le=10_000, description="candidate objects followed at once per zone")

    @model_validator(mode="after")
    def _check(self) -> DumpingConfig:
        if self.min_area >= self.max_area:
            raise ValueError(f"min_area {self.min_area} must be below max_area {self.max_area}")
        if self.short_tau_s >= self.long_tau_s:
            raise ValueError("short_tau_s must be shorter than long_tau_s")
        return self


class ThermalSettings(StrictModel):
    """Hotspots in radiometric frames (degrees C)."""

    threshold_c: float = Field(80.0, description="pixels above this temperature form hotspots")
    fire_c: float = Field(200.0, description="a hotspot this hot is fire whatever its growth")
    min_area: float = Field(0.0002, ge=0, le=1, description="smallest hotspot, fraction of the thermal frame")
    growth_per_min: float = Field(0.5, ge=0, description="relative area growth per minute that marks a spreading fire")
    persist_frames: int = Field(3, ge=1, le=1000, description="consecutive frames before the hotspot counts")


class SmokeFireConfig(StrictModel):
    """`smoke_fire` (straw burning): visual smoke/fire classes and/or thermal hotspots, fused per zone."""

    zone: str | None = Field(None, description="camera zone; default: the whole frame")
    schedule: str | None = None
    visual: bool = Field(True, description="use the detector's smoke/fire classes")
    min_score: float = Field(0.35, ge=0, le=1)
    persist_frames: int = Field(4, ge=1, le=1000, description="visual: frames with smoke/fire in the window")
    window_frames: int = Field(6, ge=1, le=1000, description="visual: sliding window of analysed frames")
    thermal: ThermalSettings | None = Field(None, description="thermal hotspots (cameras with radiometric frames)")
    clear_s: float = Field(60.0, gt=0, description="nothing seen this long: the episode ends")

    @model_validator(mode="after")
    def _check(self) -> SmokeFireConfig:
        if self.persist_frames > self.window_frames:
            raise ValueError("persist_frames must not exceed window_frames")
        if not self.visual and self.thermal is None:
            raise ValueError("enable `visual` or give `thermal` settings: nothing would be analysed")
        return self


class WaterMode(StrEnum):
    """Where the wet area comes from."""

    MODEL = "model"  # a `water` detection class
    REFERENCE = "reference"  # comparison with a dry reference image
    BOTH = "both"


class WaterConfig(StrictModel):
    """`standing_water` on a road zone: persistent wet area over a share of the zone, checked on a schedule."""

    zone: str = Field(min_length=1)
    schedule: str | None = None
    mode: WaterMode = WaterMode.BOTH
    min_fraction: float = Field(0.15, gt=0, le=1, description="wet share of the zone that counts as standing water")
    clear_fraction: float = Field(0.05, ge=0, le=1, description="below this the water is gone")
    check_interval_s: float = Field(120.0, gt=0, description="at most one check this often (on full checks)")
    persist_checks: int = Field(3, ge=1, le=1000, description="consecutive checks over min_fraction before the event")
    min_score: float = Field(0.3, ge=0, le=1)
    reference_image: str | None = Field(None, description="dry image of the view; default: learned when dry")
    diff_threshold: float = Field(30.0, gt=0, le=255, description="reference path: changed grey level")
    analysis_width: int = Field(160, ge=32, le=1920)

    @model_validator(mode="after")
    def _check(self) -> WaterConfig:
        if self.clear_fraction >= self.min_fraction:
            raise ValueError("clear_fraction must be below min_fraction")
        return self


class PlateConfig(StrictModel):
    """Plate reading for illegal_parking."""

    backend: Literal["auto", "agentclpr", "rapidocr", "none"] = Field(
        "auto", description="auto: agentclpr if installed (plates extra), else rapidocr, else none"
    )
    min_confidence: float = Field(0.5, ge=0, le=1, description="reads below this are ignored")
    queue: int = Field(8, ge=1, le=1000, description="pending reads; more are dropped (counted)")


class AnalyticsConfig(StrictModel):
    """Which analytics run on a camera and how they are tuned."""

    labels: LabelSets = Field(default_factory=LabelSets)
    timezone: str = Field(DEFAULT_TIMEZONE, description="default time zone of schedules")
    calendars: list[str] = Field(default_factory=list, description="holiday calendar files (config/holidays)")
    schedules: dict[str, ScheduleModel] = Field(default_factory=dict, description="named schedules")
    illegal_parking: list[ParkingConfig] = Field(default_factory=list)
    dumping: list[DumpingConfig] = Field(default_factory=list)
    smoke_fire: list[SmokeFireConfig] = Field(default_factory=list)
    standing_water: list[WaterConfig] = Field(default_factory=list)
    plates: PlateConfig = Field(default_factory=PlateConfig)

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, name: str) -> str:
        return check_timezone(name)

    def sections(self) -> list[tuple[str, Sequence[ParkingConfig | DumpingConfig | SmokeFireConfig | WaterConfig]]]:
        """(section name, entries) of every analytic."""
        return [
            ("illegal_parking", self.illegal_parking),
            ("dumping", self.dumping),
            ("smoke_fire", self.smoke_fire),
            ("standing_water", self.standing_water),
        ]

    def enabled(self) -> bool:
        """True if any analytic is configured."""
        return any(entries for _, entries in self.sections())


def zone_issues(analytics: AnalyticsConfig, zone_names: Iterable[str]) -> Iterable[tuple[Loc, str]]:
    """Cross-checks: the zones and schedules analytics name exist (locations relative to `analytics`)."""
    names = set(zone_names)
    for section, entries in analytics.sections():
        for i, entry in enumerate(entries):
            if entry.zone is not None and entry.zone not in names:
                known = ", ".join(sorted(names)) or "the camera has no zones"
                yield (section, i, "zone"), f"undefined zone {entry.zone!r} (zones: {known})"
            if entry.schedule is not None and entry.schedule not in analytics.schedules:
                known = ", ".join(sorted(analytics.schedules)) or "none defined"
                yield (section, i, "schedule"), f"undefined schedule {entry.schedule!r} (schedules: {known})"
