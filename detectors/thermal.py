"""Thermal hotspots from radiometric frames: regions above T degrees C, followed over time with their growth.

Input is a plain matrix of temperatures in degrees C (H x W, any numeric dtype), so any thermal SDK
adapter can feed it; `counts_to_celsius` converts raw radiometric counts with the camera's linear
calibration (FLIR TLinear 0.04 K/count, 0.01 K/count on high-resolution modes). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]
GROWTH_WINDOW_S = 30.0  # growth is measured over up to this much history
MIN_GROWTH_SPAN_S = 4.0  # and only once this much history exists


def counts_to_celsius(raw: npt.ArrayLike, scale: float = 0.04, offset_k: float = 0.0) -> npt.NDArray[np.float32]:
    """Radiometric counts (linear in kelvin) to degrees C: `raw * scale + offset_k - 273.15`."""
    return (np.asarray(raw, np.float32) * scale + offset_k - 273.15).astype(np.float32)


def as_temperatures(frame: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Validate a temperature matrix: 2-D, finite, degrees C (values outside -60..2000 are clipped)."""
    temps = np.asarray(frame, np.float32)
    if temps.ndim != 2 or temps.shape[0] < 2 or temps.shape[1] < 2:
        raise ValueError(f"a thermal frame is a 2-D matrix of degrees C, got shape {temps.shape}")
    if not np.all(np.isfinite(temps)):
        temps = np.nan_to_num(temps, nan=-60.0, posinf=2000.0, neginf=-60.0)
    return np.clip(temps, -60.0, 2000.0)


@dataclass(frozen=True, slots=True)
class Hotspot:
    """A connected region above the threshold in one frame."""

    box: Box  # normalised to the thermal frame
    pixels: int
    area: float  # fraction of the frame
    max_c: float
    mean_c: float


def find_hotspots(temps: npt.ArrayLike, threshold_c: float, min_area: float = 0.0) -> list[Hotspot]:
    """Regions (8-connected) hotter than `threshold_c` covering at least `min_area` of the frame, hottest first."""
    t = as_temperatures(temps)
    h, w = t.shape
    mask = (t > threshold_c).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_px = max(1, int(np.ceil(min_area * h * w)))
    spots = []
    for i in range(1, count):
        x, y, bw, bh, px = (int(v) for v in stats[i])
        if px < min_px:
            continue
        values = t[labels == i]
        spots.append(Hotspot((x / w, y / h, (x + bw) / w, (y + bh) / h), px, px / (h * w),
                             float(values.max()), float(values.mean())))  # fmt: skip
    return sorted(spots, key=lambda s: s.max_c, reverse=True)


@dataclass(slots=True, eq=False)
class HotspotTrack:
    """One hotspot followed over frames: consecutive sightings, peak temperature, area history."""

    id: int
    spot: Hotspot
    first_seen: float
    last_seen: float
    frames: int = 1
    peak_c: float = 0.0
    areas: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=512))

    def growth_per_min(self) -> float | None:
        """Relative area growth per minute (median of the latest quarter vs the earliest quarter of the window)."""
        if not self.areas:
            return None
        recent = [(t, a) for t, a in self.areas if self.last_seen - t <= GROWTH_WINDOW_S]
        span = recent[-1][0] - recent[0][0] if recent else 0.0
        if len(recent) < 4 or span < MIN_GROWTH_SPAN_S:
            return None
        q = max(1, len(recent) // 4)
        early = float(np.median([a for _, a in recent[:q]]))
        late = float(np.median([a for _, a in recent[-q:]]))
        if early <= 0:
            return None
        return (late / early - 1.0) / (span / 60.0)


def _overlaps(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


class HotspotTracker:
    """Follows hotspots frame to frame by box overlap; a track unseen for `max_missed_s` is dropped."""

    def __init__(self, max_missed_s: float = 5.0, max_tracks: int = 64) -> None:
        self.max_missed_s = max_missed_s
        self.max_tracks = max_tracks
        self.tracks: list[HotspotTrack] = []
        self._next_id = 1

    def step(self, ts: float, spots: list[Hotspot]) -> list[HotspotTrack]:
        """Associate this frame's hotspots; returns the tracks seen in this frame."""
        seen: list[HotspotTrack] = []
        free = list(self.tracks)
        for spot in spots:
            match = next((t for t in free if _overlaps(t.spot.box, spot.box)), None)
            if match is None:
                if len(self.tracks) >= self.max_tracks:
                    continue
                match = HotspotTrack(self._next_id, spot, ts, ts)
                self._next_id += 1
                self.tracks.append(match)
            else:
                free.remove(match)
                match.frames = match.frames + 1 if ts - match.last_seen <= self.max_missed_s else 1
                match.spot, match.last_seen = spot, ts
            match.peak_c = max(match.peak_c, spot.max_c)
            match.areas.append((ts, spot.area))
            seen.append(match)
        self.tracks = [t for t in self.tracks if ts - t.last_seen <= self.max_missed_s]
        return seen
