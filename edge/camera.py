"""One camera's processing: gate each captured frame (pacing, motion, schedule), then track, zone, analyse.

`gate` runs in the camera's reader thread and is cheap (a 100 px motion frame). It returns a
`WorkItem` for every due frame: `detect=True` when the shared detector must look, otherwise a hold
(no inference; tracks keep their state, analytics still see time pass). `process` runs in the
detector worker thread with the detections of that frame and returns the analytics' drafts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from detectors.core import Analytic, Detections, EventDraft, FloatArray, Frame, FrameObservation, TrackedObject
from detectors.motion import MOTION_LABEL, MotionDetector, MotionResult, MotionSettings
from edge.config_camera import CameraConfig
from edge.scheduling import Decision, FrameScheduler, SchedulerSettings
from edge.snapshots import FrameRing
from edge.tracking import Track, Tracker
from edge.zones import ActiveHook, ObjectMask, Zone, ZoneMembership, mask_image

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A due frame on its way to the detector worker."""

    camera_id: str
    frame: Frame
    ts: float
    decision: Decision
    motion: FloatArray  # motion boxes (normalised) seen on this frame
    thermal: FloatArray | None = None

    @property
    def detect(self) -> bool:
        """Does the shared detector have to look at this frame?"""
        return self.decision.detect


def merge_dropped(new: WorkItem, dropped: WorkItem | None) -> WorkItem:
    """When a queued item is replaced by a newer one, keep its need for detection (motion happened)."""
    if dropped is None or not dropped.detect or new.detect:
        return new
    return replace(new, decision=replace(dropped.decision, detect=True))


class ThermalReplay:
    """Radiometric frames from a .npy stack (T, H, W) in degrees C (or the first array of an .npz), looping."""

    def __init__(self, path: Path, loop: bool = True) -> None:
        loaded = np.load(path, mmap_mode="r")
        if isinstance(loaded, np.lib.npyio.NpzFile):
            loaded = loaded[loaded.files[0]]
        self._frames = loaded
        if self._frames.ndim != 3:
            raise ValueError(f"{path}: expected a (T, H, W) array of temperatures, got shape {self._frames.shape}")
        self._loop = loop
        self._i = 0

    def next(self) -> FloatArray | None:
        """The next temperature frame (None after the end unless looping)."""
        if self._i >= len(self._frames):
            if not self._loop:
                return None
            self._i = 0
        frame = np.asarray(self._frames[self._i], np.float32)
        self._i += 1
        return frame


class CameraPipeline:
    """Gating, tracking, zones and analytics of one camera (no sockets, no capture)."""

    def __init__(
        self,
        config: CameraConfig,
        full_check_s: float,
        analytics: Sequence[Analytic],
        *,
        ring: FrameRing | None = None,
        schedules: dict[str, ActiveHook] | None = None,
        thermal: ThermalReplay | None = None,
    ) -> None:
        self.config = config
        self.camera_id = config.id
        motion_cfg = config.motion
        self.scheduler = FrameScheduler(
            SchedulerSettings(config.detect_fps, full_check_s, config.stationary_recheck_s, motion_cfg.enabled)
        )
        self._motion_polygons = config.masks.motion
        self.motion = MotionDetector(
            MotionSettings(
                motion_cfg.frame_height,
                motion_cfg.threshold,
                motion_cfg.contour_area,
                motion_cfg.alpha,
                lightning_fraction=motion_cfg.lightning_fraction,
            )
        )
        self._motion_sized: tuple[int, int] | None = None
        self.tracker = Tracker(config.tracking, 1.0 / config.detect_fps)
        hooks = schedules or {}
        self.zones = [Zone(z, hooks.get(z.schedule) if z.schedule else None) for z in config.zones]
        self.membership = ZoneMembership(self.zones)
        self.object_mask = ObjectMask(config.masks.objects)
        self.analytics = list(analytics)
        self._zone_boxes = _grown_zone_boxes(config) if config.motion.zones_only else []
        self.ring = ring
        self.thermal = thermal
        self._flags_lock = threading.Lock()
        self._moving = False
        self._stationary = False
        self.analytic_errors = 0
        self._last_detections = Detections.empty()

    # ----- reader thread -------------------------------------------------------------------------
    def wants(self, ts: float) -> bool:
        """Is a frame captured at `ts` due at this camera's detect fps? (Consumes the slot.)"""
        return self.scheduler.due(ts)

    def gate(self, frame: Frame, ts: float) -> WorkItem | None:
        """Pace and gate a captured frame; None if it is not due at this camera's detect fps."""
        return self.admit(frame, ts) if self.wants(ts) else None

    def admit(self, frame: Frame, ts: float) -> WorkItem:
        """Gate a due frame: motion on the small frame, then the scheduler's decision."""
        if self.ring is not None:
            self.ring.offer(frame, ts)
        self._size_motion_mask(frame)
        result: MotionResult = self.motion.update(frame)
        with self._flags_lock:
            moving, stationary = self._moving, self._stationary
        decision = self.scheduler.decide(ts, result.moving, moving, stationary)
        thermal = self.thermal.next() if self.thermal is not None else None
        return WorkItem(self.camera_id, frame, ts, decision, result.boxes, thermal)

    def _size_motion_mask(self, frame: Frame) -> None:
        size = (frame.shape[1], frame.shape[0])
        zones_only = self.config.motion.zones_only and bool(self.config.zones)
        if (self._motion_polygons or zones_only) and size != self._motion_sized:
            mask = mask_image(self._motion_polygons, *size)
            if zones_only:
                outside = outside_zones_mask(self.config, *size)
                mask = outside if mask is None else np.maximum(mask, outside)
            self.motion = MotionDetector(self.motion.settings, mask)
            self._motion_sized = size

    # ----- worker thread -------------------------------------------------------------------------
    def process(self, item: WorkItem, detections: Detections | None) -> tuple[FrameObservation, list[EventDraft]]:
        """Track and zone one due frame (detections None: held, no inference) and run the analytics."""
        ts = item.ts
        if self.config.detector == "motion" and item.detect:
            detections = _motion_detections(item.motion)
        inferred = detections is not None and item.detect
        if detections is None or not item.detect:
            tracks = self.tracker.hold(ts)
            dets = self._last_detections  # nothing moved: the last inference still describes the scene
        else:
            dets = self._last_detections = self.object_mask.apply(detections)
            tracks = self.tracker.update(dets, ts)
        with self._flags_lock:
            relevant = [t for t in tracks if self.near_zones(t.box)]
            # a candidate that just stopped moving (a car pulling in) still needs detections to confirm
            pending = any(self.near_zones(t.box) for t in self.tracker.tentative())
            self._moving = pending or any(t.stationary_since is None for t in relevant)
            self._stationary = any(t.stationary_since is not None for t in relevant)
        zone_since = self.membership.update(tracks, ts)
        tracked = tuple(_tracked(t, zone_since.get(t.track_id, {})) for t in tracks)
        observation = FrameObservation(
            self.camera_id, ts, item.frame, dets, tracked, item.thermal, item.decision.full_check, inferred
        )
        return observation, self._run_analytics(observation)

    def near_zones(self, box: tuple[float, float, float, float]) -> bool:
        """With zones_only gating, only tracks near a zone keep the detector busy; otherwise every track does."""
        if not self._zone_boxes:
            return True
        return any(box[0] < x2 and box[2] > x1 and box[1] < y2 and box[3] > y1 for x1, y1, x2, y2 in self._zone_boxes)

    def _run_analytics(self, observation: FrameObservation) -> list[EventDraft]:
        drafts: list[EventDraft] = []
        for analytic in self.analytics:
            try:
                drafts.extend(analytic.step(observation))
            except Exception:  # one broken analytic must not stop the camera (or the others)
                self.analytic_errors += 1
                log.exception("analytic %s failed on camera %s", analytic.name, self.camera_id)
        return drafts

    def state_size(self) -> dict[str, int]:
        """Keyed state held, per component (for leak checks and stats)."""
        sizes = {"tracks": self.tracker.state_size(), "zone_membership": self.membership.state_size()}
        for analytic in self.analytics:
            sizes[f"analytic.{analytic.name}"] = analytic.state_size()
        if self.ring is not None:
            sizes["ring"] = self.ring.state_size()
        return sizes


def _grown_zone_boxes(config: CameraConfig) -> list[tuple[float, float, float, float]]:
    """Bounding boxes of the zones grown by the motion margin (where tracks count for zones_only gating)."""
    m = config.motion.zone_margin
    boxes = []
    for zone in config.zones:
        xs, ys = [p[0] for p in zone.polygon], [p[1] for p in zone.polygon]
        boxes.append((min(xs) - m, min(ys) - m, max(xs) + m, max(ys) + m))
    return boxes


def outside_zones_mask(config: CameraConfig, width: int, height: int) -> npt.NDArray[np.uint8]:
    """255 everywhere except in the camera's zones grown by `motion.zone_margin` (for zones_only gating)."""
    inside = mask_image([zone.polygon for zone in config.zones], width, height)
    assert inside is not None
    grow = round(config.motion.zone_margin * width)
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        inside = np.asarray(cv2.dilate(inside, kernel), np.uint8)
    return np.asarray(255 - inside, np.uint8)


def _motion_detections(boxes: FloatArray) -> Detections:
    n = len(boxes)
    return Detections(boxes, np.ones((n,), np.float32), np.zeros((n,), np.int32), (MOTION_LABEL,))


def _tracked(track: Track, zone_since: dict[str, float]) -> TrackedObject:
    return TrackedObject(
        track_id=track.track_id,
        label=track.label,
        box=track.box,
        score=track.score,
        first_seen=track.first_seen,
        last_seen=track.last_seen,
        zones=tuple(sorted(zone_since)),
        zone_since=dict(zone_since),
        stationary_since=track.stationary_since,
        missed_frames=track.missed,
    )
