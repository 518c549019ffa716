"""Model-free static-object detection: a dual background model (long-term vs short-term), as in Porikli's method.

Both models are running averages of a small colour frame with time constants (so irregular frame
intervals are handled). A pixel that differs from the long-term model but matches the short-term one
belongs to something that arrived and then stopped: a static foreground (a left object). Pixels that
differ from both are moving. Global lighting changes are compensated by the median gain between the
frame and each model. Regions of confirmed objects can be frozen so the long-term model does not
absorb them while their episode lasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors.core import Frame

F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Foreground:
    """The masks of one update, at the analysis resolution."""

    static: Mask  # arrived and stopped
    moving: Mask  # differs from the short-term model


class DualBackground:
    """Long-term and short-term background models of one camera view."""

    def __init__(self, width: int, long_tau_s: float, short_tau_s: float, threshold: float) -> None:
        self.width = width
        self.long_tau_s = long_tau_s
        self.short_tau_s = short_tau_s
        self.threshold = threshold
        self.long: F32 | None = None
        self.short: F32 | None = None
        self.last_ts: float | None = None
        self._last_frame: Frame | None = None
        self._last_small: F32 | None = None

    def shape(self, frame: Frame) -> tuple[int, int]:
        """(height, width) of the analysis resolution for this frame size."""
        h, w = frame.shape[:2]
        return max(8, round(h * self.width / w)), self.width

    def _small(self, frame: Frame) -> F32:
        if self._last_frame is frame and self._last_small is not None:
            return self._last_small  # the same frame asked again (structure checks): no second resize
        h, w = self.shape(frame)
        colour = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)  # a colour-only object (a green bag)
        small = np.asarray(cv2.GaussianBlur(colour.astype(np.float32), (3, 3), 0), np.float32)  # shows in BGR
        self._last_frame, self._last_small = frame, small
        return small

    @staticmethod
    def _compensated(grey: F32, model: F32) -> F32:
        """The frame scaled by the median gain towards the model (global lighting change removed)."""
        # One gain for all channels: a light change scales them alike; a coloured object does not.
        g, m = grey[::3, ::3], model[::3, ::3]  # a sparse sample is plenty for one global gain
        ratio = np.median(g[m > 10] / m[m > 10]) if np.any(m > 10) else 1.0
        gain = float(np.clip(ratio, 0.4, 2.5))
        return grey / gain

    def update(self, frame: Frame, ts: float, freeze: Mask | None = None) -> Foreground:
        """Compare the frame with both models, then let them learn (frozen pixels: short-term only)."""
        grey = self._small(frame)
        if self.long is None or self.short is None or self.last_ts is None or self.long.shape != grey.shape:
            self.long, self.short, self.last_ts = grey.copy(), grey.copy(), ts
            empty = np.zeros(grey.shape[:2], bool)
            return Foreground(empty, empty)
        dt = max(0.0, ts - self.last_ts)
        self.last_ts = ts
        diff_long = np.abs(self._compensated(grey, self.long) - self.long).max(axis=2) > self.threshold
        diff_short = np.abs(self._compensated(grey, self.short) - self.short).max(axis=2) > self.threshold
        # Clipped highlights change with the light in a way no gain explains (white or yellow litter in sun).
        clipped = (grey.max(axis=2) > 240) | (self.long.max(axis=2) > 240)
        static = diff_long & ~diff_short & ~clipped
        a_short = 1.0 - math.exp(-dt / self.short_tau_s)
        a_long = 1.0 - math.exp(-dt / self.long_tau_s)
        self.short += a_short * (grey - self.short)
        learn = np.full(grey.shape[:2], a_long, np.float32)
        learn[diff_short] = 0.0  # moving things never leak into the long-term model
        if freeze is not None and freeze.shape == grey.shape[:2]:
            learn[freeze] = 0.0
        self.long += learn[:, :, None] * (grey - self.long)
        return Foreground(static, diff_short)

    def structure_changed(self, frame: Frame, box: tuple[float, float, float, float], max_ncc: float = 0.7) -> bool:
        """Does the frame inside `box` differ in texture from the long-term model (not just in brightness)?

        Normalised cross-correlation of the two patches (per channel) and their colour balance: a lighting
        change or a shadow keeps both; a new object changes one or the other.
        """
        if self.long is None:
            return False
        small = self._small(frame)
        h, w = small.shape[:2]
        x1, y1 = max(0, int(box[0] * w) - 1), max(0, int(box[1] * h) - 1)
        x2, y2 = min(w, math.ceil(box[2] * w) + 1), min(h, math.ceil(box[3] * h) + 1)
        a = small[y1:y2, x1:x2].reshape(-1, 3).astype(np.float64)
        b = self.long[y1:y2, x1:x2].reshape(-1, 3).astype(np.float64)
        if len(a) < 4:
            return False
        mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
        chroma = np.abs(mean_a / max(mean_a.sum(), 1.0) - mean_b / max(mean_b.sum(), 1.0)).sum()
        if chroma > 0.04:
            return True  # another colour balance: a light change keeps it, a new object does not
        a, b = a - mean_a, b - mean_b  # texture within each channel
        denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
        if denom < 1e-6:
            return True  # a flat patch over texture or the reverse: changed
        return float((a * b).sum()) / denom < max_ncc

    def absorb(self, region: Mask) -> None:
        """Make the long-term model take the current scene in a region (an expired object becomes background)."""
        if self.long is not None and self.short is not None and region.shape == self.long.shape[:2]:
            self.long[region] = self.short[region]


def blobs(mask: Mask, min_px: int, max_px: int, open_px: int = 1) -> list[tuple[float, float, float, float]]:
    """Normalised boxes of connected regions of a mask whose pixel count is within [min_px, max_px]."""
    binary = mask.astype(np.uint8)
    if open_px > 0:
        kernel = np.ones((2 * open_px + 1, 2 * open_px + 1), np.uint8)
        binary = np.asarray(cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel), np.uint8)
        binary = np.asarray(cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel), np.uint8)
    h, w = binary.shape
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(binary)
    out = []
    for i in range(1, count):
        x, y, bw, bh, px = (int(v) for v in stats[i])
        if min_px <= px <= max_px:
            out.append((x / w, y / h, (x + bw) / w, (y + bh) / h))
    return out
