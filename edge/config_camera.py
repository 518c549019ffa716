"""Per-camera config models of the edge agent: streams (RTSP, ONVIF, file), motion, zones, masks, watchdog."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from detectors.analytics.config import AnalyticsConfig
from qinghe.config import StrictModel

Point = tuple[float, float]


class CameraKind(StrEnum):
    """What a camera is for; the kind sets its default full-frame check interval."""

    GENERIC = "generic"
    ROAD_WARDEN = "road_warden"  # watches a road with a warden speaker (parking enforcement)
    AR_TOWER = "ar_tower"  # high tower, far field (smoke, straw burning)
    THERMAL = "thermal"  # radiometric camera


class OnvifConfig(StrictModel):
    """An ONVIF device: the agent asks its media service for the profile's RTSP stream URI."""

    host: str = Field(min_length=1, description="device address (unicast only; no discovery)")
    port: int = Field(80, ge=1, le=65535)
    username: str = ""
    password: SecretStr = Field(SecretStr(""), description="use ${ENV}; never logged")
    profile: str | int | None = Field(
        None, description="profile token or name, or its index; default: the first profile"
    )
    wsdl_dir: str | None = Field(None, description="ONVIF WSDL folder; default: the one onvif-zeep ships")
    timeout_s: float = Field(5.0, gt=0, le=60)
    inject_credentials: bool = Field(True, description="put username/password into the returned RTSP URI")
    adjust_time: bool = Field(
        False, description="read the device clock first (GetSystemDateAndTime) so digests work on unsynced cameras"
    )


class StreamConfig(StrictModel):
    """Where frames come from: exactly one of `url` (RTSP/HTTP), `onvif` or `path` (a recorded clip)."""

    url: str | None = Field(None, description="rtsp://[user:pass@]host:port/path; read over TCP")
    onvif: OnvifConfig | None = None
    path: str | None = Field(None, description="video file to replay; relative to the config file")
    loop: bool = Field(False, description="file: start again at the end")
    realtime: bool = Field(True, description="file: pace frames at the clip's frame rate")
    start_s: float = Field(0.0, ge=0, description="file: start this far into the clip (staggers replayed cameras)")
    open_timeout_s: float = Field(5.0, gt=0, le=120)
    read_timeout_s: float = Field(5.0, gt=0, le=120)
    resize: tuple[int, int] | None = Field(None, description="[width, height] frames are scaled to before analysis")

    @model_validator(mode="after")
    def _exactly_one(self) -> StreamConfig:
        given = [name for name in ("url", "onvif", "path") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of url, onvif or path (got {', '.join(given) or 'none'})")
        if self.url is not None and not re.match(r"^(rtsp|rtsps|http|https)://", self.url):
            raise ValueError("url must start with rtsp://, rtsps://, http:// or https://")
        return self

    def file_path(self, base_dir: str | Path | None) -> Path | None:
        """The clip path made absolute against the config directory, or None for network streams."""
        if self.path is None:
            return None
        path = Path(self.path).expanduser()
        return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


def _check_polygon(points: list[Point]) -> list[Point]:
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"point ({x}, {y}) is outside 0..1 (coordinates are fractions of the frame)")
    return points


class ZoneTrigger(StrEnum):
    """What starts an `object` episode in a zone."""

    ENTER = "enter"  # the object counts as inside (after inertia)
    STATIONARY = "stationary"  # the object stopped inside the zone


class ZoneConfig(StrictModel):
    """A polygon in normalised coordinates, with the objects it cares about and how they must behave."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    polygon: list[Point] = Field(description="[[x, y], ...] as fractions of the frame, at least 3 points")
    objects: list[str] = Field(default_factory=list, description="labels that count here; empty = every label")
    min_area: float = Field(0.0, ge=0, le=1, description="minimum box area as a fraction of the frame")
    max_area: float = Field(1.0, gt=0, le=1)
    min_score: float = Field(0.0, ge=0, le=1)
    inertia: int = Field(3, ge=1, le=100, description="consecutive frames inside (or outside) before it counts")
    anchor: str = Field("bottom_center", pattern=r"^(bottom_center|center)$", description="box point tested")
    trigger: ZoneTrigger = ZoneTrigger.ENTER
    loitering_s: float = Field(0.0, ge=0, description="`object` events start only after this long in the zone")
    dwell_milestones_s: list[float] = Field(
        default_factory=list, description="dwell times (s) at which an `update` event is sent"
    )
    schedule: str | None = Field(
        None, description="name of a schedule under the camera's analytics.schedules; default: always watched"
    )

    _polygon = field_validator("polygon")(_check_polygon)

    @field_validator("dwell_milestones_s")
    @classmethod
    def _check_milestones(cls, values: list[float]) -> list[float]:
        if any(v <= 0 for v in values) or values != sorted(set(values)):
            raise ValueError("dwell_milestones_s must be positive, increasing and without repeats")
        return values

    @model_validator(mode="after")
    def _check_area(self) -> ZoneConfig:
        if self.min_area >= self.max_area:
            raise ValueError(f"min_area {self.min_area} must be below max_area {self.max_area}")
        return self


class MaskConfig(StrictModel):
    """Areas to ignore: motion there never triggers detection; objects anchored there are dropped."""

    motion: list[list[Point]] = Field(default_factory=list, description="polygons ignored by motion gating")
    objects: list[list[Point]] = Field(default_factory=list, description="polygons where detections are dropped")

    @field_validator("motion", "objects")
    @classmethod
    def _check(cls, polygons: list[list[Point]]) -> list[list[Point]]:
        return [_check_polygon(p) for p in polygons]


class MotionConfig(StrictModel):
    """Motion gating on a small grayscale frame (Frigate's defaults)."""

    enabled: bool = Field(True, description="false: every due frame goes to the detector")
    threshold: int = Field(30, ge=1, le=255, description="grey-level difference that counts as changed")
    contour_area: int = Field(10, ge=1, description="smallest blob, in pixels of the small frame")
    frame_height: int = Field(100, ge=20, le=720)
    alpha: float = Field(0.01, gt=0, le=1, description="background learning rate")
    lightning_fraction: float = Field(0.8, gt=0, le=1, description="changed share treated as a lighting change")
    zones_only: bool = Field(
        False, description="only motion in or near the camera's zones wakes the detector (busy scenes, small zones)"
    )
    zone_margin: float = Field(0.05, ge=0, le=0.5, description="zones_only: how far around zones counts as near")


class TrackingConfig(StrictModel):
    """ByteTrack-style IoU tracker and stationary detection."""

    high_score: float = Field(
        0.5, gt=0, le=1, description="detections at or above match first and may start tracks; lower ones only extend"
    )
    match_iou: float = Field(0.3, gt=0, lt=1, description="minimum IoU to continue a track with a high detection")
    low_match_iou: float = Field(0.5, gt=0, lt=1, description="minimum IoU for the second, low-score pass")
    min_hits: int = Field(3, ge=1, description="detections before a track is reported")
    confirm_score: float = Field(0.5, gt=0, le=1, description="median score a track needs to be reported")
    max_disappeared: int = Field(25, ge=1, description="analysed frames a moving track may go undetected")
    stationary_max_disappeared: int = Field(
        75, ge=1, description="analysed frames a stationary track may go undetected (occlusion by traffic)"
    )
    stationary_iou: float = Field(0.7, gt=0, lt=1, description="IoU with its anchor box to count as still")
    stationary_s: float = Field(10.0, gt=0, description="seconds still before the object is stationary")


class WatchdogConfig(StrictModel):
    """When a stream counts as degraded or offline, when to reconnect, and how often to retry."""

    offline_after_s: float = Field(10.0, gt=0, description="no frame for this long: offline, reconnect")
    min_fps: float | None = Field(None, gt=0, description="capture fps below this is degraded; default half detect fps")
    fps_window_s: float = Field(5.0, gt=0, description="window over which capture fps is measured")
    degraded_after_s: float = Field(10.0, gt=0, description="fps must stay low this long before degraded")
    reconnect_on_collapse_s: float = Field(30.0, gt=0, description="degraded this long: reconnect the stream")
    recover_s: float = Field(3.0, ge=0, description="frames must flow this long before online is published")
    max_recover_s: float = Field(60.0, ge=0, description="cap of the recover hold, which doubles on flapping")
    backoff_min_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)


class ThermalConfig(StrictModel):
    """Radiometric frames (degrees C) for a thermal camera: a .npy stack (T, H, W) replayed in step with video."""

    path: str = Field(min_length=1, description=".npy file of temperature frames, relative to the config")
    loop: bool = True


class CameraConfig(StrictModel):
    """One camera: its streams, scheduling, zones, masks, tracker, health rules and analytics."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = ""
    kind: CameraKind = CameraKind.GENERIC
    enabled: bool = True
    speaker_id: str | None = Field(None, description="road-warden speaker (required for kind road_warden)")
    detect: StreamConfig = Field(description="the stream analysed (usually the low-resolution sub-stream)")
    record: StreamConfig | None = Field(
        None, description="the main stream, for recorders; the agent does not decode it"
    )
    detect_fps: float = Field(5.0, gt=0, le=30, description="frames per second considered for detection")
    detector: str = Field(
        "shared", pattern=r"^(shared|motion|none)$", description="shared model, motion blobs, or none"
    )
    full_check_interval_s: float | None = Field(
        None, gt=0, description="scheduled full-frame detection regardless of motion; default per kind"
    )
    stationary_recheck_s: float = Field(
        10.0, gt=0, description="re-detect still objects this often while there is no motion"
    )
    motion: MotionConfig = Field(default_factory=MotionConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    zones: list[ZoneConfig] = Field(default_factory=list)
    masks: MaskConfig = Field(default_factory=MaskConfig)
    thermal: ThermalConfig | None = None
    before_s: float = Field(10.0, ge=0, le=600, description="how far back `before` snapshots reach")
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig, description="enforcement analytics")

    def min_capture_fps(self) -> float:
        """Capture fps below which the stream counts as degraded."""
        return self.watchdog.min_fps if self.watchdog.min_fps is not None else self.detect_fps / 2
