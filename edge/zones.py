"""Polygon zones, masks and schedules in normalised coordinates, and per-track zone membership (pure).

A box is "in" a zone when its anchor point (bottom centre by default: where a car or person touches
the ground) lies inside the polygon and it passes the zone's label, area and score filters, while the
zone's schedule is active. Membership has inertia: `inertia` consecutive frames inside before an
object counts as in, and as many outside before it counts as gone, so a box jittering on the edge
does not flap. State is keyed by (track, zone) and evicted as soon as the track is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors.core import Detections, FloatArray
from edge.config_camera import Point, ZoneConfig
from edge.tracking import Box, Track

BoolArray = npt.NDArray[np.bool_]
ActiveHook = Callable[[float], bool]


def anchor_points(boxes: FloatArray, anchor: str = "bottom_center") -> FloatArray:
    """The point of each box tested against polygons: bottom centre or centre."""
    x = (boxes[:, 0] + boxes[:, 2]) / 2
    y = boxes[:, 3] if anchor == "bottom_center" else (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([x, y], axis=1).astype(np.float32).reshape(-1, 2)


def points_in_polygon(points: FloatArray, polygon: FloatArray) -> BoolArray:
    """Even-odd ray casting, vectorised over points; points on an edge may fall either way."""
    if len(points) == 0:
        return np.zeros((0,), np.bool_)
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x1, y1 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x2, y2 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    inside: BoolArray = (np.count_nonzero(crosses & (x < x_cross), axis=1) % 2) == 1
    return inside


class Zone:
    """One zone: polygon, filters and schedule."""

    def __init__(self, config: ZoneConfig, active: ActiveHook | None = None) -> None:
        self.config = config
        self._active = active  # the schedule hook: is the zone watched at time t?
        self.name = config.name
        self.polygon = np.asarray(config.polygon, np.float32)
        self._objects = frozenset(config.objects)

    def wants(self, label: str) -> bool:
        """Does this zone care about `label`?"""
        return not self._objects or label in self._objects

    def active(self, now: float) -> bool:
        """Is the zone watched at `now`?"""
        return self._active is None or self._active(now)

    def trigger(self, detections: Detections) -> BoolArray:
        """Boolean mask of detections inside the zone and passing its filters (supervision's PolygonZone)."""
        inside = points_in_polygon(anchor_points(detections.xyxy, self.config.anchor), self.polygon)
        areas = detections.areas()
        labels_ok = np.asarray([self.wants(label) for label in detections.labels()], np.bool_).reshape(-1)
        filters = (
            (areas >= self.config.min_area)
            & (areas <= self.config.max_area)
            & (detections.scores >= self.config.min_score)
        )
        result: BoolArray = inside & labels_ok & filters
        return result

    def holds(self, track: Track) -> bool:
        """Is the track's current box inside the zone and passing its filters?"""
        if not self.wants(track.label) or track.score < self.config.min_score:
            return False
        box = np.asarray([track.box], np.float32)
        area = float((box[0, 2] - box[0, 0]) * (box[0, 3] - box[0, 1]))
        if not self.config.min_area <= area <= self.config.max_area:
            return False
        return bool(points_in_polygon(anchor_points(box, self.config.anchor), self.polygon)[0])


class ObjectMask:
    """Polygons where detections are dropped (their anchor point falls inside any of them)."""

    def __init__(self, polygons: Sequence[Sequence[Point]]) -> None:
        self._polygons = [np.asarray(p, np.float32) for p in polygons]

    def apply(self, detections: Detections) -> Detections:
        """The detections whose bottom centre is outside every mask polygon."""
        if not self._polygons or len(detections) == 0:
            return detections
        points = anchor_points(detections.xyxy)
        masked = np.zeros(len(detections), np.bool_)
        for polygon in self._polygons:
            masked |= points_in_polygon(points, polygon)
        return detections.filter(~masked)


def mask_image(polygons: Sequence[Sequence[Point]], width: int, height: int) -> npt.NDArray[np.uint8] | None:
    """A width x height 0/255 image with the polygons filled (255 = ignore), or None without polygons."""
    if not polygons:
        return None
    image = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        pts = np.round(np.asarray(polygon, np.float32) * [width - 1, height - 1]).astype(np.int32)
        cv2.fillPoly(image, [pts], 255)
    return image


@dataclass(slots=True)
class _Membership:
    """Inertia counters of one (track, zone) pair."""

    streak_in: int = 0
    streak_out: int = 0
    first_in: float = 0.0  # start of the current inside streak
    since: float | None = None  # when it counted as in (start of the streak that crossed the inertia)


class ZoneMembership:
    """Which zones each track is in, with inertia on entry and exit; state evicted with the track."""

    def __init__(self, zones: Iterable[Zone]) -> None:
        self.zones = list(zones)
        self._state: dict[tuple[int, str], _Membership] = {}

    def state_size(self) -> int:
        """(track, zone) pairs held."""
        return len(self._state)

    def update(self, tracks: Sequence[Track], now: float) -> dict[int, dict[str, float]]:
        """Advance one frame; returns, per track id, zone name -> when it counted as in."""
        out: dict[int, dict[str, float]] = {t.track_id: {} for t in tracks}
        live: set[tuple[int, str]] = set()
        for zone in self.zones:
            active = zone.active(now)
            for track in tracks:
                key = (track.track_id, zone.name)
                inside = active and zone.holds(track)
                state = self._state.get(key)
                if state is None and not inside:
                    continue
                state = self._state.setdefault(key, _Membership(first_in=now))
                self._step(state, inside, zone.config.inertia, now)
                if state.since is None and state.streak_in == 0:
                    del self._state[key]  # never counted as in and now outside: forget it
                    continue
                live.add(key)
                if state.since is not None:
                    out[track.track_id][zone.name] = state.since
        for key in set(self._state) - live:
            del self._state[key]  # the track is gone
        return out

    @staticmethod
    def _step(state: _Membership, inside: bool, inertia: int, now: float) -> None:
        if inside:
            if state.streak_in == 0:
                state.first_in = now
            state.streak_in += 1
            state.streak_out = 0
            if state.since is None and state.streak_in >= inertia:
                state.since = state.first_in
            return
        state.streak_in = 0
        state.streak_out += 1
        if state.since is not None and state.streak_out >= inertia:
            state.since = None


def box_of(track: Track) -> Box:
    """The track's box as a plain tuple (for drafts and events)."""
    return (float(track.box[0]), float(track.box[1]), float(track.box[2]), float(track.box[3]))
