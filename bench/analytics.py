"""Cost per frame of each enforcement analytic on top of detection, against the detector's own cost.

For one generated scene per analytic, the frames are rendered in memory, the detector runs once per
frame (its median time per frame is the baseline), observations are built with the edge tracker and
zones, and then each analytic's `step()` is timed alone over the same observations (repeated, median
per frame). Also timed: one plate read (agentclpr, when installed) and the thermal hotspot search.

    .venv/bin/python bench/analytics.py [--model detectors/weights/qinghe-scenes-320.onnx] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from detectors import SCENES_MODEL  # noqa: E402
from detectors.analytics import build_from_config  # noqa: E402
from detectors.analytics.config import AnalyticsConfig  # noqa: E402
from detectors.core import Detector, FrameObservation  # noqa: E402
from detectors.models.assets import load_library  # noqa: E402
from detectors.models.clips import RenderedFrame, render_frames  # noqa: E402
from detectors.models.labels import ClipLabels  # noqa: E402
from detectors.models.scenes import build_script  # noqa: E402

SCENES = {"illegal_parking": ("parking", "violation"), "dumping": ("dumping", "bag"),
          "smoke_fire": ("smoke", "smoke_fire"), "standing_water": ("water", "puddle")}  # fmt: skip
DEFAULT_MODEL = SCENES_MODEL


def observations(detector: Detector, frames: list[RenderedFrame], script_zones: Any, analytics: dict[str, Any],
                 fps: float) -> tuple[list[FrameObservation], list[float]]:  # fmt: skip
    """Detect on every frame (timed) and build observations with the edge pipeline's tracker and zones."""
    from edge.camera import CameraPipeline
    from edge.config_camera import CameraConfig

    camera = CameraConfig.model_validate({
        "id": "bench", "detect": {"path": "bench.mp4"}, "detect_fps": fps, "full_check_interval_s": 2.0,
        "motion": {"enabled": False}, "tracking": {"stationary_s": 3.0},
        "zones": [{"name": z.name, "polygon": z.polygon, "inertia": 2} for z in script_zones],
        "analytics": analytics,
    })  # fmt: skip
    pipeline = CameraPipeline(camera, 2.0, [])
    out: list[FrameObservation] = []
    detect_ms: list[float] = []
    for i, rendered in enumerate(frames):
        item = pipeline.gate(rendered.image, 1_772_416_800.0 + i / fps)
        if item is None:
            continue
        started = time.perf_counter()
        dets = detector.detect([rendered.image])[0]
        detect_ms.append((time.perf_counter() - started) * 1000)
        obs, _ = pipeline.process(item, dets)
        out.append(FrameObservation(obs.camera_id, obs.ts, obs.frame, obs.detections, obs.tracks, rendered.thermal,
                                    full_check=i % round(fps * 2) == 0))  # fmt: skip
    return out, detect_ms


def time_analytic(name: str, cfg: AnalyticsConfig, zones: Any, obs: list[FrameObservation], repeats: int
                  ) -> list[float]:  # fmt: skip
    """Median per-frame step() time (microseconds) of one analytic, over `repeats` fresh runs."""
    polygons = {z.name: list(z.polygon) for z in zones}
    per_frame: list[float] = []
    for _ in range(repeats):
        (analytic,) = [a for a in build_from_config("bench", cfg, polygons, REPO) if a.name == name]
        started = time.perf_counter()
        for o in obs:
            analytic.step(o)
        per_frame.append((time.perf_counter() - started) / len(obs) * 1e6)
    return per_frame


def plate_ms() -> float | None:
    """One agentclpr read of a vehicle-sized crop, median of 5 (None when the plates extra is missing)."""
    try:
        from detectors.plates import AgentClprReader
    except ImportError:
        return None
    try:
        reader = AgentClprReader()
    except ImportError:
        return None
    crop = np.full((160, 240, 3), 120, np.uint8)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        reader.read(crop)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from detectors.yolo import create_detector
    from detectors.yolo_config import DetectorConfig

    if not args.model.is_file():
        print(f"no model at {args.model}: train one (docs/models.md) or pass --model", file=sys.stderr)
        return 2
    detector = create_detector(DetectorConfig(model=str(args.model), score_threshold=0.3, batch_size=1, threads=2))
    lib = load_library()
    results: dict[str, Any] = {}
    all_detect: list[float] = []
    print(f"{'analytic':<16} {'frames':>6} {'detect ms':>10} {'step us (median)':>17} {'step/detect':>12}")
    for name, (kind, variant) in SCENES.items():
        script = build_script(lib, kind, variant, seed=7)
        frames = list(render_frames(lib, script, 5.0, 7))
        clip_labels = ClipLabels(clip="bench", kind=kind, variant=variant, seed=7, fps=5.0, width=640, height=480,
                                 frame_count=len(frames), zones=script.zones, analytics=script.analytics)  # fmt: skip
        cfg = AnalyticsConfig.model_validate(clip_labels.analytics)
        obs, detect_ms = observations(detector, frames, script.zones, clip_labels.analytics, 5.0)
        all_detect += detect_ms
        step_us = statistics.median(time_analytic(name, cfg, script.zones, obs, args.repeats))
        det = statistics.median(detect_ms)
        results[name] = {"frames": len(obs), "detect_ms": round(det, 2), "step_us": round(step_us, 1),
                         "ratio_to_detect": round(step_us / 1000 / det, 4)}  # fmt: skip
        print(f"{name:<16} {len(obs):>6} {det:>10.2f} {step_us:>17.1f} {step_us / 1000 / det:>12.4f}")
    plate = plate_ms()
    baseline = statistics.median(all_detect)
    summary = {"detector_ms_per_frame": round(baseline, 2), "analytics": results,
               "plate_read_ms": None if plate is None else round(plate, 1)}  # fmt: skip
    if plate is not None:
        print(f"plate read (agentclpr, one crop): {plate:.1f} ms = {plate / baseline:.1f}x one detection; "
              f"at most {4} reads per parking episode, in a background thread")  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
