"""Model toolkit: scene determinism and labels, YOLO datasets, eval (in process, through the agent), train/export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors.models.assets import load_library
from detectors.models.clips import render_frames
from detectors.models.dataset import build_dataset, yolo_lines
from detectors.models.evaluate import run_clip
from detectors.models.labels import SCENE_CLASSES, FrameLabel, ObjectLabel, read_labels
from detectors.models.plots import plot_clip
from detectors.models.scenes import PARKING, build_script
from detectors.models.scoring import PredictedEpisode, match_events

REPO = Path(__file__).resolve().parents[2]


def _digest(kind: str, variant: str, seed: int, frames: int = 25) -> tuple[list[str], list[int]]:
    lib = load_library()
    out_labels, out_images = [], []
    for i, rendered in enumerate(render_frames(lib, build_script(lib, kind, variant, seed), 5.0, seed)):
        if i >= frames:
            break
        out_labels.append(rendered.label.model_dump_json())
        out_images.append(int(rendered.image.astype(np.int64).sum()))
    return out_labels, out_images


def test_scenes_are_deterministic_per_seed() -> None:
    assert _digest("parking", "violation", 5) == _digest("parking", "violation", 5)
    assert _digest("parking", "violation", 5) != _digest("parking", "violation", 6)


def test_generated_parking_clip_labels_are_consistent(clips: dict[str, Path]) -> None:
    labels = read_labels(clips["parking"])
    (event,) = labels.events
    assert event.analytic == "illegal_parking"
    assert event.outcome == "complied"
    assert event.dwell_s is not None
    assert PARKING["warn_after_s"] < event.dwell_s < PARKING["warn_after_s"] + PARKING["grace_s"]
    assert event.end_s is not None
    parked = [f for f in labels.frames if event.start_s + 0.5 < f.t < event.end_s - 0.5]
    boxes = {o.box for f in parked for o in f.objects if o.id == event.object_id}
    assert len(boxes) <= 8  # only camera shake moves a parked vehicle's box
    assert (clips["parking"] / "video.mp4").stat().st_size > 10_000
    assert labels.frame_count == len(labels.frames)
    assert labels.synthetic


def test_yolo_lines_and_dataset_export(tmp_path: Path) -> None:
    truck = ObjectLabel(id=1, label="truck", box=(0.1, 0.2, 0.3, 0.6))
    unknown = ObjectLabel(id=2, label="unicorn", box=(0.0, 0.0, 0.1, 0.1))
    frame = FrameLabel(index=0, t=0.0, objects=[truck, unknown])
    assert yolo_lines(frame) == ["2 0.200000 0.400000 0.200000 0.400000"]
    summary = build_dataset(tmp_path, ["dumping"], {"train": 1, "val": 1}, every=40, seed=3)
    assert min(summary.images.values()) >= 3
    data = (tmp_path / "data.yaml").read_text(encoding="utf-8")
    assert "names:" in data
    assert "garbage" in data
    label_files = sorted((tmp_path / "labels" / "train").glob("*.txt"))
    images = sorted((tmp_path / "images" / "train").glob("*.jpg"))
    assert [p.stem for p in label_files] == [p.stem for p in images]
    for line in label_files[-1].read_text(encoding="utf-8").splitlines():
        cls, *coords = line.split()
        assert 0 <= int(cls) < len(SCENE_CLASSES)
        assert all(0.0 <= float(c) <= 1.0 for c in coords)


def test_event_matching_table() -> None:
    truth = read_labels_like()
    found = PredictedEpisode("illegal_parking", "np", "e1", start_t=13.5, end_t=30.0, outcome="complied", dwell_s=19.8)
    early = PredictedEpisode("illegal_parking", "np", "e0", start_t=1.0)
    other = PredictedEpisode("dumping", "np", "e2", start_t=14.0)
    matches, false = match_events("c", truth, [early, found, other], clip_end=40.0)
    assert [m.predicted for m in matches] == [found]
    assert false == [early, other]
    assert matches[0].delay_s == pytest.approx(3.5)
    assert matches[0].dwell_error_s == pytest.approx(0.2)


def read_labels_like() -> list:  # type: ignore[type-arg]
    from detectors.models.labels import EventLabel

    return [
        EventLabel(analytic="illegal_parking", zone="np", start_s=10.0, end_s=30.0, outcome="complied", dwell_s=20.0)
    ]


def test_eval_with_ground_truth_detections_scores_the_analytics(clips: dict[str, Path], tmp_path: Path) -> None:
    result = run_clip(clips["parking"], None)
    (match,) = result.matches
    assert match.predicted is not None
    assert match.predicted.outcome == "complied"
    assert match.dwell_error_s is not None
    assert match.dwell_error_s <= 2.0
    assert result.false == []
    assert all(c.fp == 0 and c.fn == 0 for c in result.counts.values())  # the labels scored against themselves
    png = plot_clip(result, tmp_path / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _qinghe(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "qinghe.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO, check=False)  # fmt: skip


def test_eval_cli_with_the_trained_model(clips: dict[str, Path], scenes_model: Path, tmp_path: Path) -> None:
    proc = _qinghe("models", "eval", str(clips["dumping"].parent), "--model", str(scenes_model),
                   "--json", str(tmp_path / "report.json"), "--plots", str(tmp_path / "plots"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["events"]["illegal_parking"]["detected"] == 1
    assert report["events"]["dumping"]["detected"] == 1
    assert report["frames"]["person"]["recall"] > 0.5
    assert "illegal_parking:" in proc.stdout
    assert "frame level" in proc.stdout
    assert len(list((tmp_path / "plots").glob("*.png"))) == 2


@pytest.mark.integration
def test_eval_through_the_real_edge_agent_and_broker(clips: dict[str, Path], scenes_model: Path,
                                                     tmp_path: Path) -> None:  # fmt: skip
    """The clip is replayed by `qinghe edge` (file source, real time); events come back over Mosquitto."""
    proc = _qinghe("models", "eval", str(clips["parking"]), "--edge", "--model", str(scenes_model),
                   "--json", str(tmp_path / "edge.json"))  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads((tmp_path / "edge.json").read_text(encoding="utf-8"))
    parking = report["events"]["illegal_parking"]
    assert parking["detected"] == 1
    assert parking["false"] == 0
    (clip,) = report["clips"]
    assert clip["events"][0]["outcome"] == "complied"
    assert clip["events"][0]["dwell_error_s"] <= 2.0


@pytest.mark.slow
def test_train_one_epoch_and_export_onnx_and_openvino(tmp_path: Path) -> None:
    """The real ultralytics path, tiny: a handful of images, 1 epoch at 64 px, then both exports."""
    build_dataset(tmp_path / "ds", ["dumping"], {"train": 1, "val": 1}, every=30, seed=4)
    onnx_path = tmp_path / "tiny.onnx"
    proc = _qinghe("models", "train", "--data", str(tmp_path / "ds" / "data.yaml"), "--out", str(tmp_path / "run"),
                   "--width", "0.0625", "--imgsz", "64", "--epochs", "1", "--batch", "4", "--seed", "1",
                   "--workers", "0", "--onnx", str(onnx_path))  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(summary["weights"]).is_file()
    assert summary["parameters"] > 0
    from detectors.yolo import create_detector
    from detectors.yolo_config import DetectorConfig

    detector = create_detector(DetectorConfig(model=str(onnx_path), batch_size=2))
    assert detector.class_names == SCENE_CLASSES  # names travel inside the model
    frames = [np.zeros((120, 160, 3), np.uint8)] * 2
    assert len(detector.detect(frames)) == 2
    proc = _qinghe("models", "export", "--weights", summary["weights"], "--format", "openvino",
                   "--out", str(tmp_path / "tiny_openvino"), "--imgsz", "64")  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    xml = next((tmp_path / "tiny_openvino").glob("*.xml"))
    import openvino

    ir = openvino.Core().read_model(str(xml))
    assert ir.get_rt_info(["model_info", "labels"]).astype(str).split() == list(SCENE_CLASSES)  # names embedded
    vino = create_detector(DetectorConfig(backend="openvino", model=str(xml), batch_size=1,
                                          class_names=list(SCENE_CLASSES)))  # fmt: skip
    assert len(vino.detect(frames[:1])) == 1


def test_export_reports_missing_weights(tmp_path: Path) -> None:
    proc = _qinghe("models", "export", "--weights", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx"))
    assert proc.returncode == 1
    assert "no such weights file" in proc.stderr


def test_scenes_cli_usage_errors(tmp_path: Path) -> None:
    proc = _qinghe("models", "scenes", "--out", str(tmp_path), "--only", "parking/tow_away")
    assert proc.returncode == 2
    assert "unknown scene" in proc.stderr
    assert _qinghe("models", "scenes", "--out", str(tmp_path), "--kinds", "lava").returncode == 2


def test_demo_camera_config_is_valid_for_the_edge_agent(clips: dict[str, Path]) -> None:
    from detectors.analytics import build_analytics
    from detectors.models.demo import DEMO_SCENES, demo_camera
    from edge.config_camera import CameraConfig

    camera = CameraConfig.model_validate(demo_camera("parking-complied", clips["parking"], speaker_id="spk-1"))
    assert camera.kind.value == "road_warden"
    assert [a.name for a in build_analytics(camera, clips["parking"])] == ["illegal_parking"]
    rtsp = CameraConfig.model_validate(
        demo_camera("parking-violation", clips["parking"], source="rtsp://127.0.0.1:8554/p")
    )
    assert rtsp.detect.url == "rtsp://127.0.0.1:8554/p"
    assert rtsp.kind.value == "generic"  # no speaker given: not a road_warden camera
    assert set(DEMO_SCENES) == {"parking-complied", "parking-violation", "smoke", "water"}


def test_frame_scoring_counts_duplicates_and_misses() -> None:
    from detectors.models.scoring import ClassCounts, score_frame
    from tests.detectors.support import detections

    truth = FrameLabel(index=0, t=0.0, objects=[ObjectLabel(id=1, label="car", box=(0.1, 0.1, 0.3, 0.3)),
                                                 ObjectLabel(id=2, label="car", box=(0.6, 0.6, 0.8, 0.8)),
                                                 ObjectLabel(id=3, label="person", box=(0.4, 0.1, 0.45, 0.3),
                                                             visible=0.4)])  # fmt: skip
    dets = detections([("car", (0.11, 0.1, 0.3, 0.31), 0.9), ("car", (0.1, 0.12, 0.29, 0.3), 0.8),
                       ("truck", (0.6, 0.6, 0.8, 0.8), 0.7)])  # fmt: skip
    counts: dict[str, ClassCounts] = {}
    score_frame(dets, truth, counts)
    assert (counts["car"].tp, counts["car"].fp, counts["car"].fn) == (1, 1, 1)  # duplicate box = false positive
    assert (counts["truck"].tp, counts["truck"].fp) == (0, 1)  # right place, wrong class
    assert (counts["person"].tp, counts["person"].fn) == (0, 0)  # mostly hidden: missing it is not penalised


def test_water_event_starts_when_the_wet_share_crosses_the_threshold() -> None:
    from detectors.models.clips import water_onsets
    from detectors.models.labels import EventLabel
    from detectors.models.scenes import Script

    analytics = {"standing_water": [{"zone": "road", "min_fraction": 0.15}]}
    events = [EventLabel(analytic="standing_water", zone="road", start_s=2.0)]
    script = Script("water", "puddle", "vtest", 10.0, analytics=analytics, events=events)
    frames = [FrameLabel(index=i, t=float(i), water_fraction={"road": 0.05 * i}) for i in range(6)]
    (event,) = water_onsets(script, frames)
    assert event.start_s == 3.0
    assert event.milestones == {"puddle_start": 2.0}
    assert water_onsets(script, frames[:3]) == []  # never reached 0.15: no standing water
