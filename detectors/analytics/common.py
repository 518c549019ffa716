"""Shared pieces of the analytics: box geometry, zone rasters, schedule gates and episode ids (all pure)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]
Polygon = Sequence[tuple[float, float]]
BoolMask = npt.NDArray[np.bool_]

WHOLE_FRAME: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


def area(box: Box) -> float:
    """Box area (normalised units)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: Box, b: Box) -> float:
    """Area of the intersection of two boxes."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: Box, b: Box) -> float:
    """Intersection over union."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box: 1.0 when one box lies inside the other (a partly hidden car)."""
    smaller = min(area(a), area(b))
    return intersection(a, b) / smaller if smaller > 0 else 0.0


def centre(box: Box) -> tuple[float, float]:
    """Box centre."""
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def box_gap(a: Box, b: Box) -> float:
    """Distance between two boxes (0 when they touch or overlap), normalised units."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return math.hypot(dx, dy)


def point_in_polygon(x: float, y: float, polygon: Polygon) -> bool:
    """Even-odd test of a point against a normalised polygon."""
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def anchor_in(box: Box, polygon: Polygon) -> bool:
    """Is the box's bottom centre (where it touches the ground) inside the polygon?"""
    return point_in_polygon((box[0] + box[2]) / 2, box[3], polygon)


def zone_mask(polygon: Polygon, width: int, height: int) -> BoolMask:
    """The polygon rasterised at a given resolution."""
    pts = np.asarray([[x * width, y * height] for x, y in polygon], np.float32).round().astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def box_mask(boxes: Sequence[Box], width: int, height: int) -> BoolMask:
    """Union of boxes rasterised at a given resolution."""
    mask = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in boxes:
        mask[max(0, int(y1 * height)) : math.ceil(y2 * height), max(0, int(x1 * width)) : math.ceil(x2 * width)] = True
    return mask


class ScheduleGate(Protocol):
    """When an analytic is enforced: the rules engine's compiled Schedule satisfies this."""

    def active(self, t: float) -> bool:
        """Is it enforced at epoch second t?"""
        ...

    def next_change(self, t: float) -> float | None:
        """First epoch second after t at which `active` flips."""
        ...


@dataclass(slots=True)
class ScheduleTracker:
    """Follows a schedule across observations and knows when the current active window began."""

    gate: ScheduleGate | None
    _last_ts: float | None = None
    _active: bool = False
    since: float = -math.inf  # start of the current active window (-inf: active since before we started)

    def update(self, ts: float) -> tuple[bool, bool]:
        """(active now, just ended) at ts; on a rising edge `since` becomes the exact boundary time."""
        if self.gate is None:
            self._active, self._last_ts = True, ts
            return True, False
        now = self.gate.active(ts)
        ended = self._active and not now
        if now and not self._active:
            if self._last_ts is None:
                self.since = -math.inf
            else:
                boundary = self.gate.next_change(self._last_ts)
                self.since = boundary if boundary is not None and boundary <= ts else ts
        self._active, self._last_ts = now, ts
        return now, ended


class EpisodeIds:
    """Episode ids unique per camera, analytic and zone, stable in tests (time + counter, no randomness)."""

    def __init__(self, camera_id: str, analytic: str, zone: str) -> None:
        self._prefix = f"{camera_id}:{analytic}:{zone or 'frame'}"
        self._counter = itertools.count(1)

    def new(self, ts: float) -> str:
        """A fresh episode id."""
        return f"{self._prefix}:{int(ts * 1000):x}:{next(self._counter)}"
