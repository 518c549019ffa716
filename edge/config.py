"""The edge agent's config file (`qinghe edge --config`): box identity, broker, detector, cameras.

Errors are reported as `file:line: key: message` through `qinghe.config.load_config`;
`file_kinds()` lets `qinghe config check` recognise edge files (they have an `edge_id`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from detectors.yolo_config import DetectorConfig
from edge.config_camera import CameraConfig, CameraKind
from qinghe.config import BrokerConfig, StrictModel, check_unique_ids, load_config
from qinghe.yamlload import Loc

DEFAULT_FULL_CHECK_S: dict[CameraKind, float] = {
    CameraKind.GENERIC: 60.0,
    CameraKind.ROAD_WARDEN: 30.0,  # parked cars barely move: confirm them without waiting for motion
    CameraKind.AR_TOWER: 15.0,  # smoke is slow and diffuse, motion gating misses it
    CameraKind.THERMAL: 10.0,
}


class SnapshotConfig(StrictModel):
    """How event snapshots are drawn, published and kept on the box."""

    dir: str = Field("snapshots", description="relative to state_dir")
    max_mb: float = Field(500.0, gt=0, description="disk cap; the oldest snapshots are deleted first")
    crop: bool = Field(False, description="true: crop around the object; false: whole frame with the box drawn")
    max_width: int = Field(1280, ge=64, le=7680)
    quality: int = Field(85, ge=10, le=100, description="JPEG quality")
    draw_zones: bool = True
    ring_interval_s: float = Field(1.0, gt=0, description="one frame per this interval is kept for `before` snapshots")


class EventConfig(StrictModel):
    """When the built-in `object` analytic sends `update` events for a better snapshot."""

    best_improvement: float = Field(0.1, gt=0, le=1, description="score gain that counts as a better snapshot")
    best_min_interval_s: float = Field(5.0, ge=0, description="at most one best-snapshot update per interval")


class EdgeConfig(StrictModel):
    """Everything one edge box runs. Relative paths are relative to this file's directory."""

    edge_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$", description="this box's id in topics")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    state_dir: str = Field("var/edge", description="outbox, sequence numbers and snapshots live here")
    detector: DetectorConfig | None = Field(
        None, description="the shared model; needed by cameras with detector: shared"
    )
    cameras: list[CameraConfig] = Field(default_factory=list)
    full_check_interval_s: dict[CameraKind, float] = Field(
        default_factory=lambda: dict(DEFAULT_FULL_CHECK_S), description="per camera kind, seconds"
    )
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    events: EventConfig = Field(default_factory=EventConfig)
    stats_interval_s: float = Field(10.0, gt=0, description="how often edge/{id}/stats is published")
    batch_wait_ms: float = Field(5.0, ge=0, le=1000, description="how long the detector waits to fill a batch")

    def full_check_s(self, camera: CameraConfig) -> float:
        """The camera's scheduled full-frame check interval."""
        if camera.full_check_interval_s is not None:
            return camera.full_check_interval_s
        return self.full_check_interval_s.get(camera.kind, DEFAULT_FULL_CHECK_S[camera.kind])

    def resolve(self, base_dir: str | Path, relative: str) -> Path:
        """A path from this config made absolute against the config file's directory."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else Path(base_dir) / path


def edge_checks(config: EdgeConfig) -> Iterable[tuple[Loc, str]]:
    """Cross-reference checks: ids, zone names, speakers, the shared detector, labels and time zones."""
    yield from check_unique_ids(config.cameras, ("cameras",), "camera")
    known_labels = _known_labels(config)
    for i, camera in enumerate(config.cameras):
        loc: Loc = ("cameras", i)
        if camera.kind is CameraKind.ROAD_WARDEN and not camera.speaker_id:
            yield (*loc, "speaker_id"), "a road_warden camera needs the speaker_id of its warden speaker"
        if camera.detector == "shared" and config.detector is None:
            yield (*loc, "detector"), "uses the shared detector but the file has no top-level `detector:` section"
        yield from _zone_checks(camera, loc, known_labels)


def _zone_checks(camera: CameraConfig, loc: Loc, known_labels: set[str] | None) -> Iterable[tuple[Loc, str]]:
    seen: dict[str, int] = {}
    for j, zone in enumerate(camera.zones):
        zloc: Loc = (*loc, "zones", j)
        if zone.name in seen:
            yield (
                (*zloc, "name"),
                f"duplicate zone name {zone.name!r} on camera {camera.id} (also zone {seen[zone.name]})",
            )
        seen.setdefault(zone.name, j)
        if known_labels is not None and camera.detector == "shared":
            for k, label in enumerate(zone.objects):
                if label not in known_labels:
                    yield (
                        (*zloc, "objects", k),
                        f"label {label!r} is not produced by the detector ({', '.join(sorted(known_labels))})",
                    )
        if zone.schedule is not None and zone.schedule not in camera.analytics.schedules:
            known = ", ".join(sorted(camera.analytics.schedules)) or "none defined"
            yield (*zloc, "schedule"), f"undefined schedule {zone.schedule!r} (analytics.schedules: {known})"
    yield from _analytics_checks(camera, loc)


def _analytics_checks(camera: CameraConfig, loc: Loc) -> Iterable[tuple[Loc, str]]:
    """The analytics' own cross-checks (zones they name exist on this camera), when they provide them."""
    import detectors.analytics.config as analytics_config

    zone_issues = getattr(analytics_config, "zone_issues", None)
    if zone_issues is None:
        return
    for sub_loc, message in zone_issues(camera.analytics, [zone.name for zone in camera.zones]):
        yield (*loc, "analytics", *sub_loc), message


def _known_labels(config: EdgeConfig) -> set[str] | None:
    """Labels the shared detector can emit, when the config lists its classes (else unknown: None)."""
    detector = config.detector
    if detector is None or not detector.class_names:
        return None
    labels = {detector.labels.get(name, name) for name in detector.class_names}
    return {label for label in labels if label is not None} | {"motion"}


def load_edge_config(path: str | Path, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """Load and fully validate an edge config file; raises ConfigError with file:line: key: message."""
    return load_config(path, EdgeConfig, checks=[edge_checks], environ=environ)


def missing_files(config: EdgeConfig, base_dir: Path) -> Iterable[tuple[Loc, str]]:
    """Files the config names that do not exist: the shared model, replayed clips, thermal frames."""

    def absent(value: str) -> Path | None:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        return None if path.exists() else path.resolve()

    if config.detector is not None and (gone := absent(config.detector.model)):
        yield ("detector", "model"), f"model file not found: {gone}"
    for i, camera in enumerate(config.cameras):
        for name, stream in (("detect", camera.detect), ("record", camera.record)):
            if stream is not None and stream.path is not None and (gone := absent(stream.path)):
                yield ("cameras", i, name, "path"), f"clip not found: {gone}"
        if camera.thermal is not None and (gone := absent(camera.thermal.path)):
            yield ("cameras", i, "thermal", "path"), f"thermal frames not found: {gone}"


def check_edge_file(path: str | Path, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """`load_edge_config`, then the files it names must exist (for `--check` and `qinghe config check`)."""
    from qinghe.yamlload import ConfigError, load_yaml_file

    config = load_edge_config(path, environ)
    problems = list(missing_files(config, Path(path).resolve().parent))
    if problems:
        doc = load_yaml_file(path, environ)
        raise ConfigError([doc.issue(loc, message) for loc, message in problems])
    return config


def is_edge(data: Any) -> bool:
    """Does this parsed YAML look like an edge config? (It names its box with `edge_id`.)"""
    return isinstance(data, dict) and "edge_id" in data


def file_kinds() -> list[Any]:
    """The edge config as a `qinghe config check` file kind."""
    from qinghe.configcheck import FileKind

    def check(path: str) -> None:
        """Raise ConfigError if the file is not a valid edge config or names files that do not exist."""
        check_edge_file(path)

    return [FileKind("edge", is_edge, check)]
