"""`illegal_parking`: a vehicle stops in a no-parking zone -> dwelling -> warning -> violation, or complied.

Per vehicle (keyed by where it stopped, not by track id, so a new track id on the same spot is the
same car):
- candidate: seen inside the zone, still (box overlaps where it stopped by `still_overlap`);
- dwelling (`start`): still for `stationary_s` while the schedule is active. The dwell clock starts
  when it stopped, or at the schedule's start if it was parked before (a car parked at 06:30 under a
  07:00-19:00 schedule is clocked from 07:00);
- warning (`update`, snapshot `before`): dwell reaches `warn_after_s`, vehicle in view;
- violation (`update`, snapshot `after`): still there `grace_s` after the warning, vehicle in view;
- `end`: outcome `complied` (left during grace), `left` (left before the warning or after the
  violation) or `expired` (the schedule ended). Leaving = seen moving off its spot, or unseen for
  `occlusion_s` (a bus passing in front for less than that changes nothing).
A vehicle that was warned never starts a new episode while it stays, even across schedule windows.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from detectors.analytics.common import Box, EpisodeIds, ScheduleTracker, anchor_in, intersection, iou, overlap
from detectors.analytics.config import ParkingConfig
from detectors.core import EventDraft, Frame, FrameObservation, TrackedObject
from detectors.plates import BestPlate, PlateQueue
from qinghe.contracts import EventType

NAME = "illegal_parking"
REASSOCIATE_IOU = 0.6  # a new track id takes over a parked vehicle only this well aligned with its spot
DEPART_STREAK = 3  # still sightings by the current track before its moving off counts as leaving
HISTORY = 64  # recent (ts, box) samples per vehicle, to time the stop and the departure precisely
TIGHT = 0.06  # centre shift (fraction of box size) that still counts as exactly where it stopped


class Phase(StrEnum):
    """Where a vehicle is in its episode."""

    CANDIDATE = "candidate"
    DWELLING = "dwelling"
    WARNING = "warning"
    VIOLATION = "violation"


@dataclass(slots=True, eq=False)  # identity semantics: list.remove() removes this very vehicle
class Vehicle:
    """State of one (possibly) parked vehicle in the zone."""

    anchor: Box
    track_id: int
    label: str
    score: float
    still_since: float
    last_seen: float
    box: Box
    history: deque[tuple[float, Box]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    phase: Phase = Phase.CANDIDATE
    episode_id: str | None = None
    clock_start: float = 0.0
    warned_at: float | None = None
    suppressed: bool = False  # warned in an earlier window: never re-alert while it stays
    still_streak: int = 0  # consecutive still sightings by the current track (departures need a few)
    departing: tuple[float, float] | None = None  # (left at, seen moving at), awaiting confirmation
    drift: int = 0  # consecutive candidate sightings off its anchor (creeping into the spot)
    plate: BestPlate = field(default_factory=BestPlate)
    plate_requests: int = 0
    last_plate_request: float = -math.inf


def _inside(a: Box, b: Box) -> bool:
    """Does box a lie (90 %) inside box b?"""
    return intersection(a, b) >= 0.9 * max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)


def _median3(values: list[float]) -> list[float]:
    """Running median over 3 samples (the ends keep their own value)."""
    if len(values) < 3:
        return values
    middle = [sorted(values[i - 1 : i + 2])[1] for i in range(1, len(values) - 1)]
    return [values[0], *middle, values[-1]]


def _takes_over(box: Box, spot: Box) -> bool:
    """Is this box the parked vehicle under another track id: right on its spot, about its size?"""
    ratio = ((box[2] - box[0]) * (box[3] - box[1])) / max((spot[2] - spot[0]) * (spot[3] - spot[1]), 1e-9)
    return iou(box, spot) >= REASSOCIATE_IOU and 0.7 <= ratio <= 1.4


def _shift(a: Box, b: Box) -> float:
    """Centre distance relative to the box size."""
    size = max(a[2] - a[0], a[3] - a[1], 1e-6)
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2) / size


class IllegalParking:
    """The illegal-parking state machine for one zone of one camera."""

    name = NAME

    def __init__(self, camera_id: str, config: ParkingConfig, polygon: list[tuple[float, float]], *,
                 vehicle_labels: list[str], schedule: ScheduleTracker | None = None,
                 plates: PlateQueue | None = None) -> None:  # fmt: skip
        self.camera_id = camera_id
        self.config = config
        self.polygon = polygon
        self.labels = frozenset(config.labels or vehicle_labels)
        self.schedule = schedule or ScheduleTracker(None)
        self.plates = plates if config.plates else None
        self.ids = EpisodeIds(camera_id, NAME, config.zone)
        self.vehicles: list[Vehicle] = []
        self.dropped = 0  # vehicles not followed because max_vehicles was reached

    def state_size(self) -> int:
        """Vehicles followed (candidates and episodes)."""
        return len(self.vehicles)

    def step(self, observation: FrameObservation) -> list[EventDraft]:
        """Advance on one observation; returns the events to publish."""
        ts = observation.ts
        self._collect_plates()
        active, ended = self.schedule.update(ts)
        seen = [t for t in observation.tracks
                if t.label in self.labels and t.missed_frames == 0 and t.score >= self.config.min_score]  # fmt: skip
        drafts: list[EventDraft] = []
        for vehicle in [v for v in self.vehicles if ts - v.last_seen > self.config.occlusion_s]:
            drafts += self._leave(vehicle, vehicle.last_seen, ts)  # unseen too long (or the agent was down)
        if ended:
            drafts += self._schedule_ended(ts)
        matched = self._match(seen, ts, drafts)
        self._add_candidates([t for t in seen if t.track_id not in matched], ts)
        for vehicle in list(self.vehicles):
            drafts += self._advance(vehicle, ts, active, observation.frame)
        return drafts

    # ----- association ---------------------------------------------------------------------------

    def _match(self, seen: list[TrackedObject], ts: float, drafts: list[EventDraft]) -> set[int]:
        """Pair vehicles with tracks: their own track, else (own track not seen) a new track right on the spot.

        A takeover needs IoU >= REASSOCIATE_IOU and a similar size: a tracker restart on the same car or a
        class flicker (car/truck tracks are separate) qualifies, a vehicle passing in front rarely does.
        """
        vehicles = list(self.vehicles)  # _observe may remove vehicles while we go
        seen_ids = {t.track_id for t in seen}
        pairs = []
        for vi, vehicle in enumerate(vehicles):
            own_seen = vehicle.track_id in seen_ids
            for track in seen:
                if track.track_id == vehicle.track_id:
                    pairs.append((True, overlap(track.box, vehicle.anchor), vi, track))
                elif not own_seen and _takes_over(track.box, vehicle.anchor):
                    pairs.append((False, overlap(track.box, vehicle.anchor), vi, track))
        pairs.sort(key=lambda p: (p[0], p[1]), reverse=True)
        used_v: set[int] = set()
        used_t: set[int] = set()
        for same, score, vi, track in pairs:
            if vi in used_v or track.track_id in used_t:
                continue
            used_v.add(vi)
            used_t.add(track.track_id)
            if not same:
                vehicles[vi].still_streak = 0
            drafts += self._observe(vehicles[vi], track, score, ts)
        # Other boxes over a followed spot (a car passing in front, double boxes) never become new vehicles.
        for track in seen:
            if any(overlap(track.box, v.anchor) >= self.config.leave_overlap for v in self.vehicles):
                used_t.add(track.track_id)
        return used_t

    def _observe(self, vehicle: Vehicle, track: TrackedObject, score: float, ts: float) -> list[EventDraft]:
        """A vehicle seen this frame: still, creeping (candidate re-anchors) or driving away (episode ends)."""
        vehicle.track_id, vehicle.label, vehicle.score, vehicle.box = (
            track.track_id,
            track.label,
            track.score,
            track.box,
        )
        if score >= self.config.still_overlap:
            vehicle.last_seen = ts
            vehicle.still_streak += 1
            vehicle.departing = None  # back on its spot: it was a tracker mix-up, not a departure
            vehicle.history.append((ts, track.box))
            if vehicle.phase is Phase.CANDIDATE:
                self._creeping(vehicle, track.box, ts)
            return []
        if vehicle.phase is Phase.CANDIDATE:
            if self._in_zone(track):
                self._reanchor(vehicle, track.box, ts)
            else:  # drove out of the zone before stopping
                self.vehicles.remove(vehicle)
            return []
        if score < self.config.leave_overlap:
            if vehicle.still_streak >= DEPART_STREAK and vehicle.departing is None:  # seen still here, now moving
                vehicle.departing = (self._departure(vehicle), ts)  # confirmed once the spot stays empty
            vehicle.track_id, vehicle.still_streak = -1, 0  # follow no moving box; the spot may be taken over
            return []
        if _inside(track.box, vehicle.anchor):
            vehicle.last_seen = ts  # between the thresholds and within its spot: partly hidden, still there
        # else shifted off its spot (pulling out, or another vehicle passing over it): no proof it is parked
        return []

    def _creeping(self, vehicle: Vehicle, box: Box, ts: float) -> None:
        """A candidate seen roughly in place: still settling into the spot, or just seen differently?"""
        if _inside(box, vehicle.anchor):  # within where it stopped (partly hidden, or jitter): in place
            vehicle.drift = 0
        elif _inside(vehicle.anchor, box):  # it was partly hidden when it stopped; now seen whole
            vehicle.anchor, vehicle.drift = box, 0
        else:  # shifted: creeping forward, if it happens twice in a row (one odd box is jitter)
            vehicle.drift = vehicle.drift + 1 if _shift(box, vehicle.anchor) > 2 * TIGHT else 0
            if vehicle.drift >= 2:
                self._reanchor(vehicle, box, ts)

    def _reanchor(self, vehicle: Vehicle, box: Box, ts: float) -> None:
        vehicle.anchor, vehicle.still_since, vehicle.last_seen, vehicle.drift = box, ts, ts, 0
        vehicle.history.clear()
        vehicle.history.append((ts, box))

    def _in_zone(self, track: TrackedObject) -> bool:
        return self.config.zone in track.zones or anchor_in(track.box, self.polygon)

    def _add_candidates(self, tracks: list[TrackedObject], ts: float) -> None:
        for track in tracks:
            if not self._in_zone(track):
                continue
            if len(self.vehicles) >= self.config.max_vehicles:
                self.dropped += 1
                continue
            vehicle = Vehicle(track.box, track.track_id, track.label, track.score, ts, ts, track.box)
            vehicle.history.append((ts, track.box))
            self.vehicles.append(vehicle)

    # ----- the episode -----------------------------------------------------------------------------

    def _advance(self, vehicle: Vehicle, ts: float, active: bool, frame: Frame | None) -> list[EventDraft]:
        """Time-driven transitions: gone after occlusion_s, promotion, warning, violation, plate reads."""
        if vehicle.departing is not None and ts - vehicle.departing[1] >= self.config.depart_confirm_s:
            return self._leave(vehicle, vehicle.departing[0], ts)  # drove off and the spot stayed empty
        if ts - vehicle.last_seen > self.config.occlusion_s:
            return self._leave(vehicle, vehicle.last_seen, ts)
        in_view = vehicle.last_seen == ts
        cfg = self.config
        if vehicle.phase is Phase.CANDIDATE:
            if active and not vehicle.suppressed and in_view and ts - vehicle.still_since >= cfg.stationary_s:
                return [self._start(vehicle, ts)]
            return []
        dwell = ts - vehicle.clock_start
        self._maybe_read_plate(vehicle, ts, frame)
        if vehicle.phase is Phase.DWELLING and dwell >= cfg.warn_after_s and in_view:
            vehicle.phase, vehicle.warned_at = Phase.WARNING, ts
            return [self._draft(vehicle, EventType.UPDATE, ts, dwell, roles=("before",))]
        if vehicle.phase is Phase.WARNING and dwell >= cfg.warn_after_s + cfg.grace_s and in_view:
            vehicle.phase = Phase.VIOLATION
            return [self._draft(vehicle, EventType.UPDATE, ts, dwell, roles=("after",))]
        return []

    def _start(self, vehicle: Vehicle, ts: float) -> EventDraft:
        recent = [box for _, box in list(vehicle.history)[-5:]]
        vehicle.anchor = tuple(float(v) for v in np.median(np.asarray(recent), axis=0))  # type: ignore[assignment]
        vehicle.still_since = min(self._stop_time(vehicle), vehicle.still_since)  # refining only goes earlier
        vehicle.clock_start = max(vehicle.still_since, self.schedule.since)
        vehicle.episode_id = self.ids.new(vehicle.clock_start)
        vehicle.phase = Phase.DWELLING
        return self._draft(vehicle, EventType.START, ts, ts - vehicle.clock_start, roles=("best",))

    def _stop_time(self, vehicle: Vehicle) -> float:
        """When it really stopped: the earliest sample from which every later one is at rest.

        Shifts from the resting box are median-filtered over 3 samples, so one jittery detector box
        does not move the stop time.
        """
        samples = list(vehicle.history)
        shifts = _median3([_shift(box, vehicle.anchor) for _, box in samples])
        settled = vehicle.last_seen
        for (ts, _box), shift in zip(reversed(samples), reversed(shifts), strict=True):
            if shift > TIGHT:
                return settled
            settled = ts
        return vehicle.still_since  # every remembered sample is at rest: stopped no later than still_since

    def _departure(self, vehicle: Vehicle) -> float:
        """When it started to leave: the last sample still at its spot (median-filtered like the stop)."""
        samples = list(vehicle.history)
        shifts = _median3([_shift(box, vehicle.anchor) for _, box in samples])
        for (ts, _box), shift in zip(reversed(samples), reversed(shifts), strict=True):
            if shift <= TIGHT:
                return ts
        return vehicle.last_seen

    def _leave(self, vehicle: Vehicle, departed: float, ts: float) -> list[EventDraft]:
        self.vehicles.remove(vehicle)
        if vehicle.phase is Phase.CANDIDATE:
            return []
        outcome = "complied" if vehicle.phase is Phase.WARNING else "left"
        dwell = max(0.0, departed - vehicle.clock_start)
        return [self._draft(vehicle, EventType.END, ts, dwell, outcome=outcome, extra={"left_at": departed})]

    def _schedule_ended(self, ts: float) -> list[EventDraft]:
        """End every episode; warned vehicles stay suppressed, others are re-armed for the next window."""
        drafts = []
        for vehicle in self.vehicles:
            if vehicle.phase is Phase.CANDIDATE:
                continue
            drafts.append(self._draft(vehicle, EventType.END, ts, ts - vehicle.clock_start, outcome="expired",
                                      extra={"reason": "schedule_ended"}))  # fmt: skip
            vehicle.suppressed = vehicle.phase in (Phase.WARNING, Phase.VIOLATION)
            vehicle.phase, vehicle.episode_id, vehicle.warned_at = Phase.CANDIDATE, None, None
        return drafts

    # ----- plates ----------------------------------------------------------------------------------

    def _maybe_read_plate(self, vehicle: Vehicle, ts: float, frame: Frame | None) -> None:
        cfg = self.config
        if self.plates is None or frame is None or vehicle.episode_id is None or vehicle.last_seen != ts:
            return
        if vehicle.plate_requests >= cfg.plate_reads or ts - vehicle.last_plate_request < cfg.plate_interval_s:
            return
        if vehicle.plate.settled():
            return
        crop = crop_box(frame, vehicle.box, margin=0.08)
        if crop is not None and self.plates.request(vehicle.episode_id, crop):
            vehicle.plate_requests += 1
            vehicle.last_plate_request = ts

    def _collect_plates(self) -> None:
        if self.plates is None:
            return
        by_episode = {v.episode_id: v for v in self.vehicles if v.episode_id is not None}
        for key, read in self.plates.results():
            vehicle = by_episode.get(key)
            if vehicle is not None:  # results for finished episodes are simply dropped
                vehicle.plate.add(read)

    def _draft(self, vehicle: Vehicle, kind: EventType, ts: float, dwell: float, *, roles: tuple[str, ...] = (),
               outcome: str | None = None, extra: dict[str, float | str] | None = None) -> EventDraft:  # fmt: skip
        plate = vehicle.plate.best()
        attributes: dict[str, str | float | int | bool | None] = {
            "parked_since": round(vehicle.still_since, 3),
            "clock_start": round(vehicle.clock_start, 3),
            "warn_after_s": self.config.warn_after_s,
            "grace_s": self.config.grace_s,
            "plate_reads": vehicle.plate.reads,
        }
        if plate is not None:
            attributes["plate_kind"] = plate.kind.value
        attributes.update(extra or {})
        assert vehicle.episode_id is not None
        return EventDraft(
            type=kind, analytic=NAME, label=vehicle.label, zone=self.config.zone, track_id=vehicle.track_id,
            score=round(vehicle.score, 4), box=vehicle.box, dwell_s=round(dwell, 3), episode_id=vehicle.episode_id,
            phase=vehicle.phase.value, outcome=outcome, plate=plate.text if plate else None,
            plate_confidence=plate.confidence if plate else None, snapshot_roles=roles, attributes=attributes,
        )  # fmt: skip


def crop_box(frame: Frame, box: Box, margin: float = 0.0) -> Frame | None:
    """The frame region under a normalised box, grown by `margin` of its size; None if empty."""
    h, w = frame.shape[:2]
    bw, bh = box[2] - box[0], box[3] - box[1]
    x1 = max(0, int((box[0] - margin * bw) * w))
    y1 = max(0, int((box[1] - margin * bh) * h))
    x2 = min(w, math.ceil((box[2] + margin * bw) * w))
    y2 = min(h, math.ceil((box[3] + margin * bh) * h))
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    return frame[y1:y2, x1:x2]
