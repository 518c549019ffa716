"""`standing_water` on a road zone: the wet share of the zone, checked on scheduled full-frame checks.

Never motion-gated: only observations with `full_check` count, at most one per `check_interval_s`.
Wet pixels come from the detector's `water` class (boxes) and/or a comparison with a dry reference
image, block by block: a block is wet when its texture no longer correlates with the reference, or its
colour balance changed. A cloud shadow or a lighting change darkens the road but keeps its texture and
colour balance, so it does not count. Pixels under vehicles and people are left out. `start` after
`persist_checks` checks at or over `min_fraction`; `update` when the water spreads by another 0.15 of
the zone; `end` (outcome `dried`) after as many checks under `clear_fraction`. A rain source, when
given, adds `rain_mm_h` to the events; otherwise the central side may add it from its rain sensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from detectors.analytics.common import Box, EpisodeIds, ScheduleTracker, box_mask, zone_mask
from detectors.analytics.config import WaterConfig, WaterMode
from detectors.core import EventDraft, Frame, FrameObservation
from qinghe.contracts import EventType, JsonScalar

NAME = "standing_water"
BLOCK = 8  # pixels of the analysis frame per comparison block
REFRESH = 0.02  # share of the current view blended into the dry reference per dry check
F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


class RainSource(Protocol):
    """Recent rainfall near the camera, if the edge box has a rain gauge."""

    def rain_mm_h(self, ts: float) -> float | None:
        """Rainfall intensity in mm/h around ts, or None if unknown."""
        ...


@dataclass(slots=True)
class WaterEpisode:
    """The open standing-water episode."""

    episode_id: str
    started: float
    fraction: float
    reported: float
    box: Box
    below: int = 0


def _blocks(image: F32, block: int) -> F32:
    """(rows, cols, block*block, channels) view of an image cropped to whole blocks."""
    h, w = image.shape[:2]
    rows, cols = h // block, w // block
    cropped = image[: rows * block, : cols * block]
    channels = 1 if cropped.ndim == 2 else cropped.shape[2]
    shaped = cropped.reshape(rows, block, cols, block, channels).transpose(0, 2, 1, 3, 4)
    return shaped.reshape(rows, cols, block * block, channels)


def wet_blocks(reference: F32, current: F32, diff_threshold: float) -> Mask:
    """Per block: wet, i.e. changed (see changed_blocks) in a patch at least 2x2 blocks large."""
    # Water lies in patches; lines one block wide are the edges of shadows or of passing objects.
    return _open2x2(changed_blocks(reference, current, diff_threshold))


def changed_blocks(reference: F32, current: F32, diff_threshold: float, ncc_threshold: float = 0.45,
                   chroma_threshold: float = 0.045) -> Mask:  # fmt: skip
    """Per block: has the surface changed in structure or colour balance (not just brightness)?"""
    ref, cur = _blocks(reference, BLOCK), _blocks(current, BLOCK)
    ref_grey, cur_grey = ref.mean(axis=3), cur.mean(axis=3)
    rc, cc = ref_grey - ref_grey.mean(axis=2, keepdims=True), cur_grey - cur_grey.mean(axis=2, keepdims=True)
    denom = np.sqrt((rc**2).sum(axis=2) * (cc**2).sum(axis=2))
    textured = np.sqrt((rc**2).mean(axis=2)) > 4.0
    ncc = np.where(denom > 0, (rc * cc).sum(axis=2) / np.maximum(denom, 1e-6), 1.0)
    ref_mean, cur_mean = ref.mean(axis=2), cur.mean(axis=2)  # (rows, cols, 3)
    ref_chroma = ref_mean / np.maximum(ref_mean.sum(axis=2, keepdims=True), 1.0)
    cur_chroma = cur_mean / np.maximum(cur_mean.sum(axis=2, keepdims=True), 1.0)
    chroma = np.abs(ref_chroma - cur_chroma).sum(axis=2)
    brighter = cur_grey.mean(axis=2) - ref_grey.mean(axis=2) > diff_threshold  # glare on water
    changed: Mask = (textured & (ncc < ncc_threshold)) | (chroma > chroma_threshold) | brighter
    return changed


def _pixels(blocks: Mask, h: int, w: int) -> Mask:
    """A block mask expanded to an h x w pixel mask (pixels beyond whole blocks stay False)."""
    mask = np.repeat(np.repeat(blocks, BLOCK, axis=0), BLOCK, axis=1)
    full = np.zeros((h, w), bool)
    full[: mask.shape[0], : mask.shape[1]] = mask
    return full


def _iou(a: Mask, b: Mask) -> float:
    """Intersection over union of two masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _open2x2(mask: Mask) -> Mask:
    """Morphological opening with a 2x2 square: the union of all 2x2 squares that lie inside the mask."""
    squares = mask[:-1, :-1] & mask[1:, :-1] & mask[:-1, 1:] & mask[1:, 1:]
    out = np.zeros_like(mask)
    out[:-1, :-1] |= squares
    out[1:, :-1] |= squares
    out[:-1, 1:] |= squares
    out[1:, 1:] |= squares
    return out


class StandingWater:
    """Standing water on one road zone of one camera."""

    name = NAME

    def __init__(self, camera_id: str, config: WaterConfig, polygon: list[tuple[float, float]], *,
                 water_labels: list[str], occluder_labels: list[str], schedule: ScheduleTracker | None = None,
                 reference: Frame | None = None, rain: RainSource | None = None) -> None:  # fmt: skip
        self.camera_id, self.config, self.polygon = camera_id, config, polygon
        self.water = frozenset(water_labels)
        self.occluders = frozenset(occluder_labels)
        self.schedule = schedule or ScheduleTracker(None)
        self.rain = rain
        self.ids = EpisodeIds(camera_id, NAME, config.zone)
        self._given_reference = reference
        self.reference: F32 | None = None
        self.last_check = -math.inf
        self.streak = 0
        self.episode: WaterEpisode | None = None
        self.last_fraction: float | None = None
        self._last_wet: Mask | None = None
        self._changed: Mask | None = None

    def state_size(self) -> int:
        """The open episode (the reference image is one per zone, not keyed state)."""
        return int(self.episode is not None)

    def _small(self, frame: Frame) -> F32:
        w = self.config.analysis_width
        h = max(BLOCK, round(frame.shape[0] * w / frame.shape[1]))
        return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)

    def step(self, observation: FrameObservation) -> list[EventDraft]:
        """Check the zone when a scheduled full check is due; otherwise do nothing."""
        ts = observation.ts
        if not observation.full_check or ts - self.last_check < self.config.check_interval_s:
            return []
        self.last_check = ts
        active, _ended = self.schedule.update(ts)
        measured = self._measure(observation)
        if measured is None:
            return []
        fraction, box, wet = measured
        self.last_fraction = fraction
        stable = self._last_wet is None or _iou(wet, self._last_wet) >= 0.3  # traffic moves, puddles stay
        self._last_wet = wet
        if self.episode is None and fraction < self.config.clear_fraction:
            self._refresh_reference(observation)
        if self.episode is None:
            over = active and fraction >= self.config.min_fraction
            self.streak = (self.streak + 1 if stable else 1) if over else 0
            if self.streak < self.config.persist_checks:
                return []
            self.episode = WaterEpisode(self.ids.new(ts), ts, fraction, fraction, box)
            return [self._draft(EventType.START, ts, roles=("best",))]
        return self._continue(self.episode, fraction, box, ts)

    def _continue(self, episode: WaterEpisode, fraction: float, box: Box, ts: float) -> list[EventDraft]:
        episode.fraction = fraction
        if fraction < self.config.clear_fraction:
            episode.below += 1
            if episode.below >= self.config.persist_checks:
                draft = self._draft(EventType.END, ts, outcome="dried")
                self.episode, self.streak = None, 0
                return [draft]
            return []
        episode.below = 0
        episode.box = box
        if fraction >= episode.reported + 0.15:
            episode.reported = fraction
            return [self._draft(EventType.UPDATE, ts, roles=("best",))]
        return []

    def _measure(self, observation: FrameObservation) -> tuple[float, Box, Mask] | None:
        """Wet share of the zone and the box around the wet area, or None when nothing can be measured."""
        cfg = self.config
        frame = observation.frame
        if frame is None and cfg.mode is not WaterMode.MODEL:
            return None
        w = cfg.analysis_width
        h = max(BLOCK, round(frame.shape[0] * w / frame.shape[1])) if frame is not None else round(w * 0.75)
        zone = zone_mask(self.polygon, w, h)
        dets = observation.detections
        labels = dets.labels()
        boxes: list[Box] = [(b[0], b[1], b[2], b[3]) for b in dets.xyxy.tolist()]
        water_boxes = [b for b, lab, s in zip(boxes, labels, dets.scores.tolist(), strict=True)
                       if lab in self.water and s >= cfg.min_score]  # fmt: skip
        wet = box_mask(water_boxes, w, h) if cfg.mode is not WaterMode.REFERENCE else np.zeros((h, w), bool)
        occluded = self._occluded(observation, w, h)
        if frame is not None and cfg.mode is not WaterMode.MODEL:
            dry_looking = not (box_mask(water_boxes, w, h) & zone).any() and (occluded & zone).sum() < 0.02 * zone.sum()
            wet |= self._compare(self._small(frame), dry_looking)
        usable = zone & ~occluded
        if usable.sum() < 0.3 * max(1, zone.sum()):
            return None  # the zone is mostly hidden (a bus): no verdict this time
        wet &= usable
        fraction = float(wet.sum()) / float(usable.sum())
        ys, xs = np.nonzero(wet)
        box = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h) if len(xs) else (0.0, 0.0, 0.0, 0.0)
        return round(fraction, 4), box, wet

    def _occluded(self, observation: FrameObservation, w: int, h: int) -> Mask:
        """Pixels under vehicles and people (boxes grown by 10 %: detector boxes are not exact)."""
        boxes = []
        for t in observation.tracks:
            if t.label in self.occluders:
                x1, y1, x2, y2 = t.box
                mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
                boxes.append((x1 - mx, y1 - my, x2 + mx, y2 + my))
        return box_mask(boxes, w, h)

    def _refresh_reference(self, observation: FrameObservation) -> None:
        """While dry, let the reference follow slow changes (2 % per check), never learning objects or wet patches."""
        frame = observation.frame
        if frame is None or self.reference is None or self._given_reference is not None:
            return
        small = self._small(frame)
        if small.shape != self.reference.shape:
            return
        h, w = small.shape[:2]
        frozen = self._occluded(observation, w, h)
        if self._changed is not None and self._changed.shape == frozen.shape:
            frozen |= self._changed  # a puddle that is still too small to count must not be learned away
        rate = np.where(frozen, 0.0, REFRESH).astype(np.float32)[:, :, None]
        self.reference += rate * (small - self.reference)

    def _compare(self, small: F32, dry_looking: bool) -> Mask:
        """Wet pixels by comparison with the dry reference (learned on the first dry-looking check)."""
        h, w = small.shape[:2]
        if self.reference is None or self.reference.shape != small.shape:
            if self._given_reference is not None:
                self.reference = np.asarray(cv2.resize(self._given_reference, (w, h), interpolation=cv2.INTER_AREA),
                                            np.float32)  # fmt: skip
            else:
                if dry_looking:
                    self.reference = small.copy()
                return np.zeros((h, w), bool)
        gain = float(np.median(self.reference)) / max(float(np.median(small)), 1.0)  # global lighting change
        changed = changed_blocks(self.reference, small * gain, self.config.diff_threshold)
        grown = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        self._changed = _pixels(grown, h, w)
        return _pixels(_open2x2(changed), h, w)

    def _draft(self, kind: EventType, ts: float, roles: tuple[str, ...] = (), outcome: str | None = None) -> EventDraft:
        episode = self.episode
        assert episode is not None
        attributes: dict[str, JsonScalar] = {
            "water_fraction": episode.fraction,
            "min_fraction": self.config.min_fraction,
        }
        rain = self.rain.rain_mm_h(ts) if self.rain is not None else None
        if rain is not None:
            attributes["rain_mm_h"] = round(rain, 2)
        return EventDraft(
            type=kind, analytic=NAME, label="water", zone=self.config.zone, track_id=-1,
            score=round(min(1.0, episode.fraction / max(self.config.min_fraction, 1e-6) * 0.5), 4),
            box=episode.box, dwell_s=round(ts - episode.started, 3), episode_id=episode.episode_id,
            outcome=outcome, snapshot_roles=roles, attributes=attributes,
        )  # fmt: skip
