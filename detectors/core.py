"""Core detection types shared by the edge agent and the analytics: Detections, Detector, tracks, drafts.

Coordinates are normalised to 0..1 of the frame (x1, y1, x2, y2), so zones and boxes do not depend
on the stream's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from qinghe.contracts import EventType, JsonScalar

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]
Frame = npt.NDArray[np.uint8]  # BGR, H x W x 3


@dataclass(frozen=True, slots=True)
class Detections:
    """N detections as parallel numpy arrays (the supervision layout): boxes, scores, class ids."""

    xyxy: FloatArray  # (N, 4) normalised x1, y1, x2, y2
    scores: FloatArray  # (N,)
    class_ids: IntArray  # (N,)
    class_names: tuple[str, ...] = ()  # class id -> label

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4) or self.class_ids.shape != (n,):
            raise ValueError(
                f"Detections arrays disagree: xyxy {self.xyxy.shape}, scores ({n},), class_ids {self.class_ids.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, class_names: tuple[str, ...] = ()) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32), class_names)

    def labels(self) -> list[str]:
        """Label of each detection (its class id as text when the name is unknown)."""
        names = self.class_names
        return [names[c] if 0 <= c < len(names) else str(c) for c in self.class_ids.tolist()]

    def filter(self, mask: npt.NDArray[np.bool_]) -> Detections:
        """The detections where `mask` is True."""
        return Detections(self.xyxy[mask], self.scores[mask], self.class_ids[mask], self.class_names)

    def areas(self) -> FloatArray:
        """Box areas as a fraction of the frame."""
        w = np.clip(self.xyxy[:, 2] - self.xyxy[:, 0], 0, 1)
        h = np.clip(self.xyxy[:, 3] - self.xyxy[:, 1], 0, 1)
        areas: FloatArray = (w * h).astype(np.float32)
        return areas


class Detector(Protocol):
    """Anything that turns BGR frames into Detections: YOLO on ONNX/OpenVINO/ultralytics, motion blobs."""

    @property
    def class_names(self) -> tuple[str, ...]:
        """Labels this detector can emit, indexed by class id."""
        ...

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """Detect objects in a batch of frames; one Detections per frame, in order."""
        ...


@dataclass(frozen=True, slots=True)
class TrackedObject:
    """One tracked object as of the current frame, with its zone membership and stillness."""

    track_id: int
    label: str
    box: tuple[float, float, float, float]
    score: float
    first_seen: float
    last_seen: float
    zones: tuple[str, ...] = ()  # zones it is in (after inertia)
    zone_since: dict[str, float] = field(default_factory=dict)  # zone -> when it counted as in
    stationary_since: float | None = None  # None while moving
    missed_frames: int = 0  # > 0: not detected this frame (occluded), position predicted


@dataclass(frozen=True, slots=True)
class FrameObservation:
    """Everything an analytic sees for one analysed frame of one camera."""

    camera_id: str
    ts: float
    frame: Frame | None
    detections: Detections
    tracks: tuple[TrackedObject, ...]
    thermal: FloatArray | None = None  # radiometric frame in degrees C, if the camera has one
    full_check: bool = False  # True on scheduled full-frame checks (not motion-gated)
    # False when the detector did not run on this frame (no motion): the scene has not changed, so
    # `detections` are those of the last inference, carried forward, and tracks keep their state.
    inferred: bool = True


@dataclass(frozen=True, slots=True)
class EventDraft:
    """What an analytic wants published; the edge agent adds event_id, seq, snapshots and sends it."""

    type: EventType
    analytic: str
    label: str
    zone: str
    track_id: int
    score: float
    box: tuple[float, float, float, float]
    dwell_s: float
    episode_id: str
    phase: str | None = None
    outcome: str | None = None
    plate: str | None = None
    plate_confidence: float | None = None
    snapshot_roles: tuple[str, ...] = ()  # which snapshots to attach: best, before, after, appeared
    attributes: dict[str, JsonScalar] = field(default_factory=dict)


class Analytic(Protocol):
    """An enforcement analytic: a per-camera state machine fed one observation per analysed frame."""

    name: str

    def step(self, observation: FrameObservation) -> list[EventDraft]:
        """Advance on one observation (time is `observation.ts`); return events to publish."""
        ...

    def state_size(self) -> int:
        """Number of keyed states held (tracks, zones, episodes), for leak tests and stats."""
        ...
