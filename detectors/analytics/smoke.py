"""`smoke_fire` (straw burning): the detector's smoke/fire classes and thermal hotspots, fused per zone.

Visual: smoke or fire in at least `persist_frames` of the last `window_frames` analysed frames.
Thermal: a hotspot above `threshold_c` seen in `persist_frames` frames that is either hotter than
`fire_c` or growing faster than `growth_per_min` (a warm engine or chimney does not grow). The
thermal frame is assumed aligned with the visible one (same normalised zone coordinates).
One episode per zone: `start` when either source confirms; `update` when the other source confirms
too or smoke turns into fire; `end` (outcome `cleared`) after `clear_s` with nothing seen.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from detectors.analytics.common import WHOLE_FRAME, Box, EpisodeIds, ScheduleTracker, centre, point_in_polygon
from detectors.analytics.config import SmokeFireConfig
from detectors.core import EventDraft, FrameObservation
from detectors.thermal import HotspotTrack, HotspotTracker, find_hotspots
from qinghe.contracts import EventType

NAME = "smoke_fire"


@dataclass(slots=True)
class Sighting:
    """The strongest evidence of one source in one frame."""

    label: str
    score: float
    box: Box


@dataclass(slots=True)
class Episode:
    """The zone's current smoke/fire episode."""

    episode_id: str
    started: float
    label: str
    score: float
    box: Box
    sources: set[str] = field(default_factory=set)
    last_evidence: float = 0.0
    max_c: float | None = None


class SmokeFire:
    """Smoke/fire detection on one zone (or the whole frame) of one camera."""

    name = NAME

    def __init__(self, camera_id: str, config: SmokeFireConfig, polygon: list[tuple[float, float]] | None, *,
                 smoke_labels: list[str], fire_labels: list[str],
                 schedule: ScheduleTracker | None = None) -> None:  # fmt: skip
        self.camera_id, self.config = camera_id, config
        self.polygon = polygon or list(WHOLE_FRAME)
        self.smoke, self.fire = frozenset(smoke_labels), frozenset(fire_labels)
        self.schedule = schedule or ScheduleTracker(None)
        self.ids = EpisodeIds(camera_id, NAME, config.zone or "")
        self.window: deque[Sighting | None] = deque(maxlen=config.window_frames)
        self.hotspots = HotspotTracker() if config.thermal is not None else None
        self.episode: Episode | None = None

    def state_size(self) -> int:
        """Window entries, hotspot tracks and the open episode."""
        tracks = len(self.hotspots.tracks) if self.hotspots is not None else 0
        return len(self.window) + tracks + (self.episode is not None)

    def step(self, observation: FrameObservation) -> list[EventDraft]:
        """Update both sources, then open, raise or close the episode."""
        ts = observation.ts
        active, _ended = self.schedule.update(ts)
        visual = self._visual(observation)
        thermal = self._thermal(observation)
        if self.episode is not None:
            return self._continue(self.episode, visual, thermal, ts)
        if not active:
            return []
        sources = {name for name, hit in (("visual", visual), ("thermal", thermal)) if hit is not None}
        if not sources:
            return []
        label, score, box = self._fuse(visual, thermal)
        self.episode = Episode(self.ids.new(ts), ts, label, score, box, sources, ts,
                               self._max_c(thermal))  # fmt: skip
        return [self._draft(EventType.START, ts, roles=("best",))]

    def _visual(self, observation: FrameObservation) -> Sighting | None:
        """The best smoke/fire detection in the zone this frame, once the window confirms persistence."""
        if not self.config.visual:
            return None
        best: Sighting | None = None
        dets = observation.detections
        for label, raw, score in zip(dets.labels(), dets.xyxy.tolist(), dets.scores.tolist(), strict=True):
            if (label not in self.smoke and label not in self.fire) or score < self.config.min_score:
                continue
            box: Box = (raw[0], raw[1], raw[2], raw[3])
            if not point_in_polygon(*centre(box), self.polygon) and not point_in_polygon(
                (box[0] + box[2]) / 2, box[3], self.polygon
            ):
                continue
            kind = "fire" if label in self.fire else "smoke"
            rank = (kind == "fire", score)
            if best is None or rank > (best.label == "fire", best.score):
                best = Sighting(kind, float(score), box)
        self.window.append(best)
        hits = sum(1 for s in self.window if s is not None)
        return best if best is not None and hits >= self.config.persist_frames else None

    def _thermal(self, observation: FrameObservation) -> tuple[Sighting, HotspotTrack] | None:
        """The hottest confirmed hotspot in the zone: persistent, and hot enough or growing."""
        settings = self.config.thermal
        if settings is None or self.hotspots is None or observation.thermal is None:
            return None
        spots = [s for s in find_hotspots(observation.thermal, settings.threshold_c, settings.min_area)
                 if point_in_polygon(*centre(s.box), self.polygon)]  # fmt: skip
        for track in self.hotspots.step(observation.ts, spots):
            if track.frames < settings.persist_frames:
                continue
            growth = track.growth_per_min()
            if track.peak_c >= settings.fire_c or (growth is not None and growth >= settings.growth_per_min):
                span = max(settings.fire_c - settings.threshold_c, 1.0)
                score = 0.5 + 0.5 * min(1.0, max(0.0, track.peak_c - settings.threshold_c) / span)
                label = "fire" if track.peak_c >= settings.fire_c else "smoke"
                return Sighting(label, score, track.spot.box), track
        return None

    @staticmethod
    def _max_c(thermal: tuple[Sighting, HotspotTrack] | None) -> float | None:
        return round(thermal[1].peak_c, 1) if thermal is not None else None

    @staticmethod
    def _fuse(visual: Sighting | None, thermal: tuple[Sighting, HotspotTrack] | None) -> tuple[str, float, Box]:
        """Label (fire wins), score 1 - (1 - a)(1 - b), and the visual box when there is one."""
        parts = [s for s in (visual, thermal[0] if thermal else None) if s is not None]
        label = "fire" if any(s.label == "fire" for s in parts) else "smoke"
        miss = 1.0
        for s in parts:
            miss *= 1.0 - s.score
        box = visual.box if visual is not None else parts[0].box
        return label, round(1.0 - miss, 4), box

    def _continue(self, episode: Episode, visual: Sighting | None, thermal: tuple[Sighting, HotspotTrack] | None,
                  ts: float) -> list[EventDraft]:  # fmt: skip
        sources = {name for name, hit in (("visual", visual), ("thermal", thermal)) if hit is not None}
        if not sources:
            if ts - episode.last_evidence >= self.config.clear_s:
                draft = self._draft(EventType.END, ts, outcome="cleared")
                self.episode = None
                return [draft]
            return []
        label, score, box = self._fuse(visual, thermal)
        episode.last_evidence = ts
        raised = (label == "fire" and episode.label != "fire") or not sources <= episode.sources
        episode.sources |= sources
        episode.score, episode.box = max(episode.score, score), box
        episode.max_c = max(episode.max_c or -1e9, self._max_c(thermal) or -1e9) if thermal else episode.max_c
        if label == "fire":
            episode.label = "fire"
        return [self._draft(EventType.UPDATE, ts, roles=("best",))] if raised else []

    def _draft(self, kind: EventType, ts: float, roles: tuple[str, ...] = (), outcome: str | None = None) -> EventDraft:
        episode = self.episode
        assert episode is not None
        attributes: dict[str, str | float | int | bool | None] = {
            "sources": "+".join(sorted(episode.sources)),
            "max_c": episode.max_c,
        }
        return EventDraft(
            type=kind, analytic=NAME, label=episode.label, zone=self.config.zone or "", track_id=-1,
            score=episode.score, box=episode.box, dwell_s=round(ts - episode.started, 3),
            episode_id=episode.episode_id, outcome=outcome, snapshot_roles=roles, attributes=attributes,
        )  # fmt: skip
