"""Model-free motion: Frigate-style gating on a small grayscale frame, and motion blobs as a Detector.

The frame is shrunk to ~100 px high, blurred and compared with a running-average background; pixels
that differ by more than `threshold` grey levels form contours, and contours larger than
`contour_area` (in small-frame pixels) are motion boxes. A sudden change over most of the frame
(lights switched on, auto-exposure, IR cut) resets the background instead of reporting motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors.core import Detections, FloatArray, Frame

MOTION_LABEL = "motion"
Mask = npt.NDArray[np.uint8]
_KERNEL = np.ones((3, 3), np.uint8)


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """Tuning of the motion detector (Frigate's defaults)."""

    frame_height: int = 100
    threshold: int = 30  # grey levels
    contour_area: int = 10  # small-frame pixels
    alpha: float = 0.01  # background learning rate per analysed frame
    blur: int = 5  # Gaussian kernel (odd), in small-frame pixels
    lightning_fraction: float = 0.8  # more than this much of the frame changed: recalibrate, no motion
    dilate: int = 2  # dilation iterations that join nearby blobs


@dataclass(frozen=True, slots=True)
class MotionResult:
    """Motion boxes (normalised xyxy) and the changed fraction of the frame."""

    boxes: FloatArray  # (N, 4)
    area: float
    recalibrated: bool = False

    @property
    def moving(self) -> bool:
        """True when at least one motion box was found."""
        return len(self.boxes) > 0


class MotionDetector:
    """Running-average background subtraction for one stream (state: the background image)."""

    def __init__(self, settings: MotionSettings | None = None, mask: Mask | None = None) -> None:
        self.settings = settings or MotionSettings()
        self._mask_src = mask  # full-size 0/255 mask of areas to ignore (255 = ignore)
        self._mask: Mask | None = None
        self._background: FloatArray | None = None
        self._size: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget the background (after a reconnect the scene may have changed)."""
        self._background = None

    def _small(self, frame: Frame) -> FloatArray:
        h, w = frame.shape[:2]
        height = self.settings.frame_height
        size = (max(1, round(w * height / h)), height)
        if size != self._size:
            self._size, self._background = size, None
            self._mask = None
            if self._mask_src is not None:
                self._mask = np.asarray(cv2.resize(self._mask_src, size, interpolation=cv2.INTER_NEAREST), np.uint8)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        k = self.settings.blur | 1
        if k > 1:
            small = cv2.GaussianBlur(small, (k, k), 0)
        out = small.astype(np.float32)
        if self._mask is not None:
            out[self._mask > 0] = 0.0
        return out

    def update(self, frame: Frame) -> MotionResult:
        """Compare `frame` with the background, then fold it into the background."""
        small = self._small(frame)
        if self._background is None:
            self._background = small.copy()
            return MotionResult(np.zeros((0, 4), np.float32), 0.0, recalibrated=True)
        diff = cv2.absdiff(small, self._background)
        binary = (diff > self.settings.threshold).astype(np.uint8) * 255
        area = float(np.count_nonzero(binary)) / binary.size
        if area > self.settings.lightning_fraction:
            self._background = small.copy()
            return MotionResult(np.zeros((0, 4), np.float32), area, recalibrated=True)
        if self.settings.dilate:
            binary = np.asarray(cv2.dilate(binary, _KERNEL, iterations=self.settings.dilate), np.uint8)
        cv2.accumulateWeighted(small, self._background, self.settings.alpha)
        return MotionResult(self._boxes(binary), area)

    def _boxes(self, binary: Mask) -> FloatArray:
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        h, w = binary.shape
        boxes = [
            (x / w, y / h, (x + bw) / w, (y + bh) / h)
            for x, y, bw, bh in (
                cv2.boundingRect(c) for c in contours if cv2.contourArea(c) > self.settings.contour_area
            )
        ]
        return np.asarray(boxes, np.float32).reshape(-1, 4)


class MotionBlobDetector:
    """Motion boxes of ONE stream as Detections labelled `motion` (frames must be consecutive)."""

    def __init__(self, settings: MotionSettings | None = None, mask: Mask | None = None) -> None:
        self._motion = MotionDetector(settings, mask)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Only `motion`."""
        return (MOTION_LABEL,)

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """Motion blobs of each frame against the running background, in order."""
        out = []
        for frame in frames:
            boxes = self._motion.update(frame).boxes
            n = len(boxes)
            out.append(Detections(boxes, np.ones((n,), np.float32), np.zeros((n,), np.int32), self.class_names))
        return out


def merge_boxes(boxes: FloatArray, margin: float = 0.02) -> tuple[float, float, float, float] | None:
    """One box around every motion box, grown by `margin` and clipped to the frame; None if there are none."""
    if len(boxes) == 0:
        return None
    x1, y1 = boxes[:, 0].min() - margin, boxes[:, 1].min() - margin
    x2, y2 = boxes[:, 2].max() + margin, boxes[:, 3].max() + margin
    return (max(0.0, float(x1)), max(0.0, float(y1)), min(1.0, float(x2)), min(1.0, float(y2)))
