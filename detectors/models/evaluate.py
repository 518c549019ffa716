"""`qinghe models eval`: a detector (or the labels themselves) plus the edge pipeline and the analytics over clips.

In-process, each clip runs through the edge agent's own CameraPipeline (motion gating, scheduled full
checks, tracker, zones) and the analytics configured in the clip's labels, in the clip's time (frame i
at T0 + i / fps, so schedules and dwell times are exact and runs are repeatable). Frame-level
precision/recall is counted on the frames the detector actually ran on. `--edge` instead runs the
real agent process against an MQTT broker (see edge_eval.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.analytics import build_from_config
from detectors.core import Detections, Detector, Frame
from detectors.models.labels import ClipLabels, LabelsError, find_clips, read_labels
from detectors.models.scoring import (
    ClassCounts,
    EventMatch,
    PredictedEpisode,
    episodes_from,
    match_events,
    score_frame,
    summarise,
)
from qinghe.errors import QingheError

log = logging.getLogger(__name__)

T0 = 1_772_416_800.0  # 2026-03-02 10:00 Asia/Shanghai, a Monday: working-day schedules are active
FULL_CHECK_S = 2.0
EventRow = tuple[float, str, str, str, str, str | None, str | None, float, str | None]


class NoDetector:
    """Detects nothing: evaluates the model-free paths (background dumping, reference-image water)."""

    class_names: tuple[str, ...] = ()

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """Nothing, for every frame."""
        return [Detections.empty() for _ in frames]


class GroundTruthDetector:
    """The clip's own labels as detections: evaluates the analytics alone, with a perfect detector."""

    def __init__(self, labels: ClipLabels) -> None:
        self.labels = labels
        self.index = 0
        self._names = tuple(labels.classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The clip's classes."""
        return self._names

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """Labels of the current frame (one frame per call)."""
        objects = [o for o in self.labels.frames[self.index].objects if o.label in self._names]
        if not objects:
            return [Detections.empty(self._names) for _ in frames]
        dets = Detections(
            np.asarray([o.box for o in objects], np.float32),
            np.full((len(objects),), 0.9, np.float32),
            np.asarray([self._names.index(o.label) for o in objects], np.int32),
            self._names,
        )
        return [dets for _ in frames]


@dataclass(slots=True)
class ClipResult:
    """Everything measured on one clip."""

    labels: ClipLabels
    counts: dict[str, ClassCounts]
    episodes: list[PredictedEpisode]
    matches: list[EventMatch]
    false: list[PredictedEpisode]
    detect_frames: int = 0
    detections: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # t -> label counts


def camera_for_clip(labels: ClipLabels, video: Path) -> Any:
    """An edge CameraConfig for a clip: its zones and analytics, detect fps = clip fps, clip-scaled tracking."""
    from edge.config_camera import CameraConfig

    return CameraConfig.model_validate({
        "id": labels.clip[:60].replace(" ", "_"),
        "detect": {"path": str(video)},
        "detect_fps": labels.fps,
        "full_check_interval_s": FULL_CHECK_S,
        "stationary_recheck_s": 2.0,
        "zones": [{"name": z.name, "polygon": z.polygon, "inertia": 2} for z in labels.zones],
        "tracking": {"stationary_s": 3.0},
        "analytics": labels.analytics,
        "before_s": 30.0,
    })  # fmt: skip


def read_frames(path: Path) -> list[Frame]:
    """Every frame of a video file."""
    cap = cv2.VideoCapture(str(path))
    frames: list[Frame] = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return frames
            frames.append(np.asarray(frame, np.uint8))
    finally:
        cap.release()


def run_clip(clip_dir: Path, detector: Detector | None, min_iou: float = 0.5) -> ClipResult:
    """Run one clip through the edge pipeline and the analytics; score frames and events."""
    from edge.camera import CameraPipeline

    labels = read_labels(clip_dir)
    frames = read_frames(clip_dir / labels.video)
    if not frames:
        raise LabelsError(f"{clip_dir}: {labels.video} has no readable frames")
    thermal = np.load(clip_dir / labels.thermal).astype(np.float32) if labels.thermal else None
    camera = camera_for_clip(labels, clip_dir / labels.video)
    polygons = {z.name: list(z.polygon) for z in labels.zones}
    analytics = build_from_config(camera.id, camera.analytics, polygons, clip_dir)
    pipeline = CameraPipeline(camera, FULL_CHECK_S, analytics)
    oracle = detector if detector is not None else GroundTruthDetector(labels)
    result = ClipResult(labels, {}, [], [], [])
    rows: list[EventRow] = []
    for i, frame in enumerate(frames[: len(labels.frames)]):
        ts = T0 + i / labels.fps
        item = pipeline.gate(frame, ts)
        if item is None:
            continue
        if thermal is not None and i < len(thermal):
            item = replace(item, thermal=thermal[i])
        dets = None
        if item.detect:
            if isinstance(oracle, GroundTruthDetector):
                oracle.index = i
            dets = oracle.detect([frame])[0]
            result.detect_frames += 1
            score_frame(dets, labels.frames[i], result.counts, min_iou)
            result.detections.append((ts - T0, _label_counts(dets)))
        _observation, drafts = pipeline.process(item, dets)
        rows += [(ts - T0, d.type.value, d.analytic, d.zone, d.episode_id, d.phase, d.outcome, d.dwell_s, d.plate)
                 for d in drafts]  # fmt: skip
    result.episodes = episodes_from(rows)
    result.matches, result.false = match_events(labels.clip, labels.events, result.episodes, labels.duration_s)
    return result


def _label_counts(dets: Detections) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label in dets.labels():
        counts[label] = counts.get(label, 0) + 1
    return counts


def report(results: Sequence[ClipResult]) -> dict[str, Any]:
    """Frame-level figures per class and event-level figures per analytic over all clips."""
    totals: dict[str, ClassCounts] = {}
    for r in results:
        for cls, c in r.counts.items():
            t = totals.setdefault(cls, ClassCounts())
            t.tp, t.fp, t.fn = t.tp + c.tp, t.fp + c.fp, t.fn + c.fn
    frame_level = {cls: {"tp": c.tp, "fp": c.fp, "fn": c.fn,
                         "precision": None if c.precision is None else round(c.precision, 3),
                         "recall": None if c.recall is None else round(c.recall, 3)}
                   for cls, c in sorted(totals.items())}  # fmt: skip
    figures = summarise([m for r in results for m in r.matches], [p for r in results for p in r.false])
    clips = [{"clip": r.labels.clip, "kind": r.labels.kind, "variant": r.labels.variant,
              "events": [_match_row(m) for m in r.matches],
              "false": [{"analytic": p.analytic, "start_t": round(p.start_t, 2), "outcome": p.outcome}
                        for p in r.false]}
             for r in results]  # fmt: skip
    return {"frames": frame_level, "events": {k: v.as_dict() for k, v in sorted(figures.items())}, "clips": clips}


def _match_row(m: EventMatch) -> dict[str, Any]:
    p = m.predicted
    return {"analytic": m.truth.analytic, "truth_start": round(m.truth.start_s, 2), "found": p is not None,
            "delay_s": None if m.delay_s is None else round(m.delay_s, 2),
            "outcome": p.outcome if p else None, "truth_outcome": m.truth.outcome,
            "dwell_error_s": None if m.dwell_error_s is None else round(m.dwell_error_s, 2)}  # fmt: skip


def print_report(rep: dict[str, Any], out: Any = sys.stdout) -> None:
    """Human-readable tables."""
    print("frame level (frames the detector ran on; IoU >= threshold)", file=out)
    if not rep["frames"]:
        print("  (not available: no detections were seen, e.g. through --edge)", file=out)
    print(f"  {'class':<10} {'tp':>6} {'fp':>6} {'fn':>6} {'precision':>10} {'recall':>8}", file=out)
    for cls, f in rep["frames"].items():
        p = "-" if f["precision"] is None else f"{f['precision']:.3f}"
        r = "-" if f["recall"] is None else f"{f['recall']:.3f}"
        print(f"  {cls:<10} {f['tp']:>6} {f['fp']:>6} {f['fn']:>6} {p:>10} {r:>8}", file=out)
    print("event level", file=out)
    for analytic, f in rep["events"].items():
        parts = [f"{k}={v}" for k, v in f.items() if v is not None]
        print(f"  {analytic}: " + " ".join(parts), file=out)


def _detector(args: argparse.Namespace) -> Detector | None:
    if args.no_detector:
        return NoDetector()
    if args.model is None:
        return None
    from detectors.yolo import create_detector
    from detectors.yolo_config import DetectorConfig

    renames = dict(item.split("=", 1) for item in args.labels.split(",") if "=" in item)
    config = DetectorConfig(backend=args.backend, model=str(args.model), score_threshold=args.score,
                            labels=dict(renames.items()), batch_size=1)  # fmt: skip
    return create_detector(config)


def run_eval_command(args: argparse.Namespace) -> int:
    """The `qinghe models eval` handler."""
    clips = find_clips(args.clips)
    if not clips:
        print(f"eval: no clips (labels.json) under {args.clips}", file=sys.stderr)
        return 2
    try:
        if args.edge:
            from detectors.models.edge_eval import run_through_edge

            results = run_through_edge(clips, args)
        else:
            detector = _detector(args)
            results = [run_clip(c, detector, args.iou) for c in clips]
    except (QingheError, ValueError, OSError) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 1
    rep = report(results)
    print_report(rep)
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1), encoding="utf-8")
    if args.plots:
        from detectors.models.plots import plot_clip

        args.plots.mkdir(parents=True, exist_ok=True)
        for r in results:
            plot_clip(r, args.plots / f"{r.labels.clip}.png")
        print(f"timelines: {args.plots}")
    return 0
