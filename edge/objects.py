"""The built-in `object` analytic: zone enter / dwell / exit episodes with dwell milestones (pure).

Per (track, zone) an episode starts when a wanted object counts as in the zone (trigger `enter`) or
stops inside it (trigger `stationary`) and has been there `loitering_s`; `update` events mark each
dwell milestone and each clearly better snapshot; `end` comes when the object leaves the zone
(`left`), starts moving again under the stationary trigger (`moved`), or its track is lost (`lost`).
Every episode is dropped at its end, so state never outlives the objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from detectors.core import EventDraft, FrameObservation, TrackedObject
from edge.config import EventConfig
from edge.config_camera import ZoneConfig, ZoneTrigger
from qinghe.contracts import Analytic as AnalyticName
from qinghe.contracts import EventType

NAME = AnalyticName.OBJECT.value


@dataclass(slots=True)
class _Episode:
    episode_id: str
    track_id: int
    zone: str
    label: str
    started_at: float
    best_score: float
    best_at: float
    last_seen: float = 0.0
    milestones_sent: int = 0
    last_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # where it was last seen (for `lost`)


class ObjectAnalytic:
    """Zone presence and dwell for every zone of one camera."""

    name = NAME

    def __init__(self, camera_id: str, zones: Sequence[ZoneConfig], events: EventConfig | None = None) -> None:
        self.camera_id = camera_id
        self._zones = {zone.name: zone for zone in zones}
        self._events = events or EventConfig()
        self._episodes: dict[tuple[int, str], _Episode] = {}

    def state_size(self) -> int:
        """Open episodes."""
        return len(self._episodes)

    def step(self, observation: FrameObservation) -> list[EventDraft]:
        """Advance on one observation; returns start / update / end drafts."""
        now = observation.ts
        drafts: list[EventDraft] = []
        seen: set[tuple[int, str]] = set()
        tracks = {t.track_id: t for t in observation.tracks}
        for track in observation.tracks:
            for zone_name in track.zones:
                zone = self._zones.get(zone_name)
                if zone is None or (zone.objects and track.label not in zone.objects):
                    continue
                since = self._since(track, zone)
                if since is None:
                    continue  # stationary trigger, but moving
                key = (track.track_id, zone_name)
                seen.add(key)
                drafts.extend(self._advance(key, track, zone, since, now))
        for key in [k for k in self._episodes if k not in seen]:
            episode = self._episodes.pop(key)
            drafts.append(self._end(episode, tracks.get(episode.track_id), now))
        return drafts

    def _since(self, track: TrackedObject, zone: ZoneConfig) -> float | None:
        in_since = track.zone_since.get(zone.name, track.first_seen)
        if zone.trigger is ZoneTrigger.ENTER:
            return in_since
        if track.stationary_since is None:
            return None
        return max(in_since, track.stationary_since)

    def _advance(
        self, key: tuple[int, str], track: TrackedObject, zone: ZoneConfig, since: float, now: float
    ) -> list[EventDraft]:
        dwell = max(0.0, now - since)
        episode = self._episodes.get(key)
        if episode is not None:
            episode.last_seen = now
            episode.last_box = track.box
        if episode is None:
            if dwell < zone.loitering_s:
                return []
            episode = _Episode(
                f"{self.camera_id}-{zone.name}-{track.track_id}-{round(since * 1000)}",
                track.track_id,
                zone.name,
                track.label,
                since,
                track.score,
                now,
                now,
                last_box=track.box,
            )
            self._episodes[key] = episode
            return [self._draft(EventType.START, episode, track, dwell, phase="enter", roles=("best",))]
        drafts: list[EventDraft] = []
        milestones = zone.dwell_milestones_s
        while episode.milestones_sent < len(milestones) and dwell >= milestones[episode.milestones_sent]:
            milestone = milestones[episode.milestones_sent]
            episode.milestones_sent += 1
            drafts.append(
                self._draft(
                    EventType.UPDATE, episode, track, dwell, phase="dwell", attributes={"milestone_s": milestone}
                )
            )
        better = track.score >= episode.best_score + self._events.best_improvement
        if better and track.missed_frames == 0 and now - episode.best_at >= self._events.best_min_interval_s:
            episode.best_score, episode.best_at = track.score, now
            drafts.append(self._draft(EventType.UPDATE, episode, track, dwell, phase="best", roles=("best",)))
        return drafts

    def _end(self, episode: _Episode, track: TrackedObject | None, now: float) -> EventDraft:
        if track is None:
            outcome = "lost"
        elif episode.zone in track.zones:
            outcome = "moved"
        else:
            outcome = "left"
        end_ts = episode.last_seen if outcome == "lost" else now
        box = track.box if track is not None else episode.last_box
        score = track.score if track is not None else episode.best_score
        return EventDraft(
            type=EventType.END,
            analytic=NAME,
            label=episode.label,
            zone=episode.zone,
            track_id=episode.track_id,
            score=score,
            box=box,
            dwell_s=max(0.0, end_ts - episode.started_at),
            episode_id=episode.episode_id,
            phase="exit",
            outcome=outcome,
        )

    def _draft(
        self,
        type_: EventType,
        episode: _Episode,
        track: TrackedObject,
        dwell: float,
        *,
        phase: str,
        roles: tuple[str, ...] = (),
        attributes: dict[str, float] | None = None,
    ) -> EventDraft:
        return EventDraft(
            type=type_,
            analytic=NAME,
            label=track.label,
            zone=episode.zone,
            track_id=track.track_id,
            score=track.score,
            box=track.box,
            dwell_s=dwell,
            episode_id=episode.episode_id,
            phase=phase,
            snapshot_roles=roles,
            attributes=dict(attributes or {}),
        )
