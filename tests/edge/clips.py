"""Synthetic clips for edge tests: coloured squares the project's square model really detects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from detectors.core import Frame

WIDTH, HEIGHT, FPS = 640, 360, 10
SIDE = 64  # source pixels: 32 model pixels after the 320 letterbox (scale 0.5)
GREY = 114
COLOURS = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}

# A square's top-left corner (source pixels) per frame index, or None when absent.
Path_ = Callable[[int], tuple[int, int] | None]


def frame_with(squares: Sequence[tuple[str, tuple[int, int]]]) -> Frame:
    """A grey 640x360 frame with each (colour, top-left) square drawn."""
    frame = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
    for colour, (x, y) in squares:
        frame[y : y + SIDE, x : x + SIDE] = COLOURS[colour]
    return frame


def write_clip(path: Path, frames: int, paths: dict[str, Path_], fps: int = FPS) -> Path:
    """Write an MJPG AVI where each named colour follows its path (cv2.VideoWriter, no external tools)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"cannot write {path}"
    for i in range(frames):
        squares = [(colour, pos) for colour, fn in paths.items() if (pos := fn(i)) is not None]
        writer.write(frame_with(squares))
    writer.release()
    return path


def park_then_leave(arrive: int, stay: int, spot: tuple[int, int] = (200, 240)) -> Path_:
    """Drive in from the left over `arrive` frames, stay `stay` frames at `spot`, then vanish."""

    def where(i: int) -> tuple[int, int] | None:
        if i < arrive:
            return (int(spot[0] * i / arrive), spot[1])
        if i < arrive + stay:
            return spot
        return None

    return where


def visitors(period: int, stay: int, spots: Sequence[tuple[int, int]], colour: str = "red") -> Path_:
    """Every `period` frames a square appears at the next spot and stays `stay` frames (events on a beat)."""

    def where(i: int) -> tuple[int, int] | None:
        k, phase = divmod(i, period)
        return spots[k % len(spots)] if phase < stay else None

    return where
