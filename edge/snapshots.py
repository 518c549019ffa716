"""Event snapshots: drawing (box, label, zone), a ring of recent frames for `before` shots, a capped disk store.

Drawing is kept apart from logic (supervision's habit): analytics decide which roles they want,
this module only renders and stores JPEGs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detectors.core import Frame

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
BOX_COLOUR = (0, 0, 255)  # BGR red
ZONE_COLOUR = (0, 200, 255)  # BGR amber


def encode_jpeg(frame: Frame, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR frame."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot JPEG-encode a frame of shape {frame.shape}")
    return bytes(buf)


def decode_jpeg(data: bytes) -> Frame:
    """BGR frame from JPEG bytes."""
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError("not a JPEG image")
    return np.asarray(frame, np.uint8)


def _px(frame: Frame, box: Box) -> tuple[int, int, int, int]:
    h, w = frame.shape[:2]
    return (round(box[0] * (w - 1)), round(box[1] * (h - 1)), round(box[2] * (w - 1)), round(box[3] * (h - 1)))


def render(
    frame: Frame,
    box: Box | None,
    caption: str = "",
    *,
    zone: Sequence[tuple[float, float]] | None = None,
    crop: bool = False,
    max_width: int = 1280,
    quality: int = 85,
) -> bytes:
    """The frame (or a crop around `box`) with the box, caption and zone outline drawn, as JPEG."""
    image = frame.copy()
    h, w = image.shape[:2]
    if zone:
        pts = np.round(np.asarray(zone, np.float32) * [w - 1, h - 1]).astype(np.int32)
        cv2.polylines(image, [pts], isClosed=True, color=ZONE_COLOUR, thickness=max(1, w // 400))
    if box is not None and box[2] > box[0] and box[3] > box[1]:
        x1, y1, x2, y2 = _px(image, box)
        cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, max(2, w // 320))
        if caption:
            scale = max(0.4, w / 1600)
            (tw, th), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = max(th + 4, y1)
            cv2.rectangle(image, (x1, ty - th - 4), (x1 + tw + 4, ty), BOX_COLOUR, -1)
            cv2.putText(
                image, caption, (x1 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
            )
        if crop:
            image = _crop(image, (x1, y1, x2, y2))
    if image.shape[1] > max_width:
        scale = max_width / image.shape[1]
        size = (max_width, max(1, round(image.shape[0] * scale)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    return encode_jpeg(image, quality)


def _crop(image: Frame, box: tuple[int, int, int, int], context: float = 0.5, min_px: int = 160) -> Frame:
    """A crop around the box with `context` of its size on each side, at least `min_px` square."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = max(x2 - x1, 1), max(y2 - y1, 1)
    half = max(bw, bh) * (0.5 + context)
    half = max(half, min_px / 2)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    right, bottom = min(w, round(cx + half)), min(h, round(cy + half))
    return image[top:bottom, left:right].copy()


class FrameRing:
    """Recent frames of one camera, one per `interval_s` for `horizon_s`, kept as JPEG to stay small."""

    def __init__(self, interval_s: float, horizon_s: float, quality: int = 80) -> None:
        self.interval_s, self.horizon_s, self.quality = interval_s, horizon_s, quality
        self._frames: deque[tuple[float, bytes]] = deque()
        self._lock = threading.Lock()

    def state_size(self) -> int:
        """Frames held."""
        return len(self._frames)

    def offer(self, frame: Frame, ts: float) -> None:
        """Keep the frame if `interval_s` passed since the last kept one; drop frames older than the horizon."""
        with self._lock:
            if self._frames and ts - self._frames[-1][0] < self.interval_s:
                return
        data = encode_jpeg(frame, self.quality)
        with self._lock:
            self._frames.append((ts, data))
            while self._frames and self._frames[0][0] < ts - self.horizon_s:
                self._frames.popleft()

    def before(self, ts: float) -> tuple[float, Frame] | None:
        """The newest kept frame at or before `ts` (else the oldest kept), decoded; None if empty."""
        with self._lock:
            if not self._frames:
                return None
            chosen = self._frames[0]
            for item in self._frames:
                if item[0] <= ts:
                    chosen = item
        return chosen[0], decode_jpeg(chosen[1])


class SnapshotStore:
    """JPEG files under one directory with a total size cap; the oldest files are deleted first."""

    def __init__(self, root: Path | str, max_bytes: int) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._files: deque[tuple[Path, int]] = deque()
        self._total = 0
        existing = sorted((p for p in self.root.rglob("*.jpg") if p.is_file()), key=lambda p: p.stat().st_mtime)
        for path in existing:
            size = path.stat().st_size
            self._files.append((path, size))
            self._total += size

    @property
    def total_bytes(self) -> int:
        """Bytes currently stored."""
        return self._total

    def save(self, relative: str, data: bytes) -> Path:
        """Write `data` to root/relative (atomically), then delete the oldest files until under the cap."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        with self._lock:
            self._files.append((path, len(data)))
            self._total += len(data)
            while self._total > self.max_bytes and len(self._files) > 1:
                old, size = self._files.popleft()
                self._total -= size
                try:
                    old.unlink()
                except FileNotFoundError:
                    pass
                else:
                    log.debug("snapshot cap: deleted %s", old)
        return path
