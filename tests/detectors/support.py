"""Helpers for the analytics tests: observations built from plain boxes, fake plate readers, draft queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from detectors.core import Detections, EventDraft, Frame, FrameObservation, TrackedObject

Box = tuple[float, float, float, float]


def track(track_id: int, label: str, box: Box, *, zones: Sequence[str] = (), missed: int = 0,
          score: float = 0.9) -> TrackedObject:  # fmt: skip
    """A tracked object as the edge tracker would report it."""
    return TrackedObject(track_id, label, box, score, 0.0, 0.0, tuple(zones), {}, None, missed)


def detections(items: Iterable[tuple[str, Box, float]], names: Sequence[str] = ()) -> Detections:
    """Detections from (label, box, score) triples."""
    items = list(items)
    classes = tuple(names) or tuple(dict.fromkeys(label for label, _, _ in items))
    if not items:
        return Detections.empty(classes)
    return Detections(
        np.asarray([b for _, b, _ in items], np.float32),
        np.asarray([s for _, _, s in items], np.float32),
        np.asarray([classes.index(label) for label, _, _ in items], np.int32),
        classes,
    )


def observe(ts: float, tracks: Sequence[TrackedObject] = (), dets: Detections | None = None, *,
            frame: Frame | None = None, thermal: np.ndarray | None = None, full_check: bool = False,
            camera: str = "cam") -> FrameObservation:  # fmt: skip
    """One FrameObservation."""
    return FrameObservation(camera, ts, frame, dets if dets is not None else Detections.empty(), tuple(tracks),
                            thermal, full_check)  # fmt: skip


def kinds(drafts: Iterable[EventDraft]) -> list[tuple[str, str | None, str | None]]:
    """(type, phase, outcome) of each draft, for compact assertions."""
    return [(d.type.value, d.phase, d.outcome) for d in drafts]


class FakeReader:
    """A plate reader at our own port: returns scripted text pieces."""

    def __init__(self, pieces: list[tuple[str, float]]) -> None:
        self.pieces = pieces
        self.calls = 0

    def read(self, image: Frame) -> list[tuple[str, float]]:
        """The scripted pieces (the crop is checked to be an image)."""
        assert image.ndim == 3
        assert image.shape[2] == 3
        self.calls += 1
        return list(self.pieces)
