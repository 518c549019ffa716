"""`dumping`: a new object appears in a watched zone, stays `static_s`, and a person or vehicle was there just before.

Two sources of objects, fused per candidate: the detector's `garbage` class (model path) and static
foreground from a dual background model (model-free path). A candidate that was already there when
nobody was around (litter present at start-up) is remembered as such and never fires. The `start`
event carries `appeared_ts` and `before_ts` so the agent attaches the scene when the object appeared
and one from a few seconds before; `end` comes when the object is gone for `clear_s` (outcome
`removed`) or after `max_episode_s` (outcome `expired`: it becomes background).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from detectors.analytics.background import DualBackground, blobs
from detectors.analytics.common import (
    Box,
    EpisodeIds,
    ScheduleTracker,
    anchor_in,
    area,
    box_gap,
    box_mask,
    intersection,
    iou,
    overlap,
    zone_mask,
)
from detectors.analytics.config import DumpingConfig, DumpingMode
from detectors.core import EventDraft, Frame, FrameObservation
from qinghe.contracts import EventType

NAME = "dumping"
BEFORE_GAP_S = 3.0  # the `before` snapshot: this long before the object appeared
UPRIGHT = 1.6  # model-free blobs taller than this times their width are taken for people, not objects


@dataclass(slots=True, eq=False)
class Candidate:
    """A possibly left-behind object: where it came to rest and since when."""

    anchor: Box
    box: Box
    still_since: float
    last_seen: float
    hits: int = 1  # observations that saw it since it came to rest
    frames: int = 1  # observations since it came to rest
    sources: set[str] = field(default_factory=set)
    owner: str | None = None  # label of who was near it just before it appeared
    owner_track: int = -1
    score: float = 0.0
    rejected: bool = False  # nobody brought it (there at start-up, or no owner): never fires while it stays
    episode_id: str | None = None


@dataclass(frozen=True, slots=True)
class Presence:
    """A person, vehicle or moving blob seen at some time (for the owner check)."""

    ts: float
    box: Box
    label: str
    track_id: int


class Dumping:
    """Left-behind detection on one watched zone of one camera."""

    name = NAME

    def __init__(self, camera_id: str, config: DumpingConfig, polygon: list[tuple[float, float]], *,
                 garbage_labels: list[str], owner_labels: list[str],
                 schedule: ScheduleTracker | None = None) -> None:  # fmt: skip
        self.camera_id, self.config, self.polygon = camera_id, config, polygon
        self.garbage = frozenset(garbage_labels)
        self.owners = frozenset(owner_labels)
        self.schedule = schedule or ScheduleTracker(None)
        self.ids = EpisodeIds(camera_id, NAME, config.zone)
        # Also kept in model mode: it tells a really new object from litter the detector only now noticed.
        self.background = DualBackground(config.analysis_width, config.long_tau_s, config.short_tau_s,
                                         config.diff_threshold)  # fmt: skip
        self.candidates: list[Candidate] = []
        self.presence: deque[Presence] = deque(maxlen=4096)
        self._zone_px: np.ndarray | None = None
        self._started: float | None = None

    def state_size(self) -> int:
        """Candidates followed plus presence records kept for the owner check."""
        return len(self.candidates) + len(self.presence)

    def step(self, observation: FrameObservation) -> list[EventDraft]:
        """Update presence, find object boxes, follow candidates, fire or end episodes."""
        ts = observation.ts
        if self._started is None:
            self._started = ts
        active, _ended = self.schedule.update(ts)
        owners = [t for t in observation.tracks if t.label in self.owners and t.missed_frames == 0]
        for t in owners:
            self.presence.append(Presence(ts, t.box, t.label, t.track_id))
        keep_s = self.config.owner_window_s + 2 * self.config.static_s
        while self.presence and ts - self.presence[0].ts > keep_s:
            self.presence.popleft()
        found = self._model_boxes(observation) + self._background_boxes(observation, [t.box for t in owners])
        for candidate in self.candidates:
            candidate.frames += 1
        for box, source, score in found:
            self._observe(box, source, score, ts)
        drafts: list[EventDraft] = []
        for candidate in list(self.candidates):
            drafts += self._advance(candidate, ts, active, observation.frame)
        return drafts

    def _model_boxes(self, observation: FrameObservation) -> list[tuple[Box, str, float]]:
        if self.config.mode is DumpingMode.BACKGROUND:
            return []
        dets = observation.detections
        out = []
        for label, box_arr, score in zip(dets.labels(), dets.xyxy.tolist(), dets.scores.tolist(), strict=True):
            box: Box = (box_arr[0], box_arr[1], box_arr[2], box_arr[3])
            if label in self.garbage and score >= self.config.min_score and anchor_in(box, self.polygon):
                out.append((box, "model", float(score)))
        return out

    def _background_boxes(self, observation: FrameObservation, owner_boxes: list[Box]) -> list[tuple[Box, str, float]]:
        if observation.frame is None:
            return []
        h, w = self.background.shape(observation.frame)
        if self._zone_px is None or self._zone_px.shape != (h, w):
            self._zone_px = zone_mask(self.polygon, w, h)
        confirmed = [c.box for c in self.candidates if c.episode_id is not None]
        freeze = box_mask(confirmed, w, h) if confirmed else None
        fg = self.background.update(observation.frame, observation.ts, freeze)
        if owner_boxes:
            fg.static[box_mask(owner_boxes, w, h)] = False  # a person standing still is not a left object
        frame_px = h * w
        boxes = blobs(fg.static & self._zone_px, max(2, int(self.config.min_area * frame_px)),
                      int(self.config.max_area * frame_px))  # fmt: skip
        for box in blobs(fg.moving, max(4, int(self.config.min_area * frame_px)), frame_px):
            self.presence.append(Presence(observation.ts, box, "motion", -1))
        if self.config.mode is DumpingMode.MODEL:
            return []
        out = []
        for b in boxes:
            if any(overlap(b, o) > 0.5 for o in owner_boxes):
                continue
            if (b[3] - b[1]) * h > UPRIGHT * (b[2] - b[0]) * w:
                continue  # person-shaped (someone standing still, and no detector to say so)
            if not self.background.structure_changed(observation.frame, b):
                continue  # only brighter or darker (light, shadow, saturated colours): not an object
            out.append((b, "background", 0.5))
        return out

    def _observe(self, box: Box, source: str, score: float, ts: float) -> None:
        def where(c: Candidate) -> Box:  # a reported object stays where it was left
            return c.anchor if c.episode_id is not None else c.box

        best = max(self.candidates, key=lambda c: iou(where(c), box), default=None)
        if best is None or (iou(where(best), box) < 0.3 and overlap(where(best), box) < 0.7):
            if len(self.candidates) < self.config.max_objects:
                self.candidates.append(Candidate(box, box, ts, ts, sources={source}, score=score))
            return
        authoritative = source == "model" or "model" not in best.sources  # model boxes beat background blobs
        if best.episode_id is None and authoritative:
            best.box = box
            grown = area(box) > 1.5 * area(best.anchor) and intersection(box, best.anchor) < 0.9 * area(box)
            if overlap(best.anchor, box) < 0.6 or grown:  # carried or moved; or something bigger left on it
                best.anchor, best.still_since, best.hits, best.frames = box, ts, 0, 0
                best.sources, best.rejected = set(), False
        if best.last_seen != ts:
            best.hits += 1
        best.last_seen = ts
        best.sources.add(source)
        best.score = max(best.score, score)

    def _attended(self, candidate: Candidate, ts: float) -> bool:
        """Someone is right at the object now (holding it, standing by it): not left behind yet."""
        return any(p.ts == ts and p.label != "motion" and box_gap(p.box, candidate.anchor) == 0.0
                   for p in reversed(self.presence))  # fmt: skip

    def appeared(self, candidate: Candidate) -> float:
        """When the object came to rest (the model-free path sees it only once the short-term model absorbed it)."""
        if candidate.sources == {"background"}:
            return candidate.still_since - 2 * self.config.short_tau_s
        return candidate.still_since

    def _find_owner(self, candidate: Candidate) -> bool:
        """Who was near the object within owner_window_s before it appeared; False if it must not fire."""
        cfg = self.config
        appeared = self.appeared(candidate)
        near = [p for p in self.presence
                if appeared - cfg.owner_window_s <= p.ts <= candidate.still_since
                and box_gap(p.box, candidate.anchor) <= cfg.owner_distance]  # fmt: skip
        near.sort(key=lambda p: (p.label == "motion", -p.ts))
        if near:
            candidate.owner, candidate.owner_track = near[0].label, near[0].track_id
        at_startup = self._started is not None and candidate.still_since <= self._started
        candidate.rejected = at_startup or (cfg.require_owner and candidate.owner is None)
        return not candidate.rejected

    def _advance(self, candidate: Candidate, ts: float, active: bool, frame: Frame | None) -> list[EventDraft]:
        cfg = self.config
        if ts - candidate.last_seen > cfg.clear_s:
            self.candidates.remove(candidate)
            if candidate.episode_id is None:
                return []
            return [self._draft(candidate, EventType.END, ts, outcome="removed")]
        if candidate.episode_id is not None:
            if ts - self.appeared(candidate) >= cfg.max_episode_s:
                self.candidates.remove(candidate)
                if self._zone_px is not None:
                    h, w = self._zone_px.shape
                    self.background.absorb(box_mask([candidate.box], w, h))
                return [self._draft(candidate, EventType.END, ts, outcome="expired")]
            return []
        if candidate.rejected or not active or candidate.last_seen != ts or ts - candidate.still_since < cfg.static_s:
            return []
        if candidate.hits < 0.5 * candidate.frames or self._attended(candidate, ts):
            return []
        if any(self._same_dumping(o, candidate) for o in self.candidates):
            candidate.rejected = True  # another box on, or right next to, what was just reported: one pile
            return []
        if frame is not None and not self.background.structure_changed(frame, candidate.anchor):
            candidate.rejected = True  # the long-term background already shows it: old litter, newly detected
            return []
        if not self._find_owner(candidate):
            return []
        candidate.anchor = candidate.box  # the object as confirmed (a pile grows after it first appears)
        candidate.episode_id = self.ids.new(self.appeared(candidate))
        return [self._draft(candidate, EventType.START, ts, roles=("appeared", "before"))]

    def _same_dumping(self, reported: Candidate, candidate: Candidate) -> bool:
        """Is the candidate part of an object already reported: on it, or touching it and left within
        owner_window_s of it (a pile first seen in part, then whole)?"""
        if reported.episode_id is None or reported is candidate:
            return False
        if overlap(reported.anchor, candidate.anchor) >= 0.5:
            return True
        touching = box_gap(reported.anchor, candidate.anchor) == 0.0
        return touching and abs(self.appeared(candidate) - self.appeared(reported)) <= self.config.owner_window_s

    def _draft(self, candidate: Candidate, kind: EventType, ts: float, roles: tuple[str, ...] = (),
               outcome: str | None = None) -> EventDraft:  # fmt: skip
        appeared = self.appeared(candidate)
        attributes: dict[str, str | float | int | bool | None] = {
            "appeared_ts": round(appeared, 3),
            "before_ts": round(appeared - BEFORE_GAP_S, 3),
            "source": "+".join(sorted(candidate.sources)),
            "owner": candidate.owner,
            "owner_track": candidate.owner_track,
        }
        assert candidate.episode_id is not None
        return EventDraft(
            type=kind, analytic=NAME, label="garbage", zone=self.config.zone, track_id=candidate.owner_track,
            score=round(candidate.score, 4), box=candidate.box, dwell_s=round(ts - appeared, 3),
            episode_id=candidate.episode_id, outcome=outcome, snapshot_roles=roles, attributes=attributes,
        )  # fmt: skip
