"""Labels of a scene clip (per-frame boxes, per-event intervals, zones, analytics config) and their files.

A clip is a directory: `video.mp4`, `labels.json` (this schema), optionally `thermal.npy` (one
radiometric frame per video frame, degrees C). Boxes are normalised x1, y1, x2, y2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from qinghe.config import StrictModel
from qinghe.errors import QingheError

LABELS_FILE = "labels.json"
VIDEO_FILE = "video.mp4"
THERMAL_FILE = "thermal.npy"
LABELS_VERSION = 1

# Classes of the scene generator (and of the model trained on it), in class-id order.
SCENE_CLASSES: tuple[str, ...] = ("person", "car", "truck", "bus", "garbage", "smoke", "fire", "water")

Box = tuple[float, float, float, float]


class LabelsError(QingheError):
    """A clip directory or its labels file is missing or malformed."""


class ObjectLabel(StrictModel):
    """One object in one frame."""

    id: int = Field(description="object id, stable over the clip")
    label: str
    box: Box
    visible: float = Field(1.0, ge=0, le=1, description="share of the object not hidden by others")


class FrameLabel(StrictModel):
    """Ground truth of one frame."""

    index: int = Field(ge=0)
    t: float = Field(ge=0, description="seconds from the clip start")
    objects: list[ObjectLabel] = Field(default_factory=list)
    water_fraction: dict[str, float] = Field(default_factory=dict, description="zone -> true wet share")


class EventLabel(StrictModel):
    """One true event: when it starts, ends, and what the analytic should say about it."""

    analytic: str
    zone: str
    object_id: int | None = None
    label: str = ""
    start_s: float = Field(ge=0, description="onset: vehicle stopped, object dropped, fire lit, water over threshold")
    end_s: float | None = Field(None, description="vehicle started moving / object removed; None: until clip end")
    outcome: str | None = Field(None, description="illegal_parking: complied or left")
    dwell_s: float | None = Field(None, description="illegal_parking: true stationary time")
    milestones: dict[str, float] = Field(default_factory=dict, description="phase -> when it is due (s)")


class ZoneLabel(StrictModel):
    """A zone of the clip's camera, normalised polygon."""

    name: str
    polygon: list[tuple[float, float]] = Field(min_length=3)
    kind: str = ""


class ClipLabels(StrictModel):
    """Everything known about a generated (or hand-labelled) clip."""

    version: int = LABELS_VERSION
    clip: str
    kind: str
    variant: str
    seed: int
    fps: float = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    frame_count: int = Field(ge=0)
    video: str = VIDEO_FILE
    thermal: str | None = None
    synthetic: bool = True
    classes: list[str] = Field(default_factory=lambda: list(SCENE_CLASSES))
    zones: list[ZoneLabel] = Field(default_factory=list)
    analytics: dict[str, Any] = Field(default_factory=dict, description="AnalyticsConfig for this camera")
    assets: str = ""
    sources: list[str] = Field(default_factory=list)
    frames: list[FrameLabel] = Field(default_factory=list)
    events: list[EventLabel] = Field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Clip length in seconds."""
        return self.frame_count / self.fps


def write_labels(directory: Path, labels: ClipLabels) -> Path:
    """Write `labels.json` into a clip directory."""
    path = directory / LABELS_FILE
    path.write_text(json.dumps(labels.model_dump(mode="json"), separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def read_labels(directory: Path) -> ClipLabels:
    """Read and validate a clip's `labels.json`."""
    path = directory / LABELS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelsError(f"{directory}: no {LABELS_FILE} (not a clip directory)") from None
    except json.JSONDecodeError as exc:
        raise LabelsError(f"{path}: not JSON: {exc}") from None
    try:
        return ClipLabels.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise LabelsError(f"{path}: {loc}: {first['msg']}") from None


def find_clips(root: Path) -> list[Path]:
    """Clip directories under `root` (or `root` itself), sorted by path."""
    if (root / LABELS_FILE).is_file():
        return [root]
    return sorted(p.parent for p in root.rglob(LABELS_FILE))
