"""The YOLO runtime on real ONNX models the project builds: shapes, class names from metadata, NMS, batching."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from detectors.core import Detections
from detectors.yolo import ModelError, OnnxYoloDetector, create_detector
from detectors.yolo_build import COCO_NAMES
from detectors.yolo_config import Backend, DetectorConfig
from detectors.yolo_ops import decode, iou_matrix, letterbox, to_blob
from tests.edge.clips import HEIGHT, SIDE, WIDTH, frame_with


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(iou_matrix(np.asarray([a], np.float32), np.asarray([b], np.float32))[0, 0])


def _truth(x: int, y: int) -> tuple[float, ...]:
    """Normalised box of a square drawn at top-left (x, y) in a 640x360 frame."""
    return (x / WIDTH, y / HEIGHT, (x + SIDE) / WIDTH, (y + SIDE) / HEIGHT)


def test_square_model_finds_each_square_once_with_names_from_metadata(square_model: Path) -> None:
    detector = create_detector(DetectorConfig(model=str(square_model)))
    assert detector.class_names == ("red", "green", "blue")
    placed = {"red": (96, 64), "green": (400, 200), "blue": (520, 40)}
    (dets,) = detector.detect([frame_with(list(placed.items()))])
    assert sorted(dets.labels()) == ["blue", "green", "red"]
    for label, box in zip(dets.labels(), dets.xyxy.tolist(), strict=True):
        assert _iou(tuple(box), _truth(*placed[label])) > 0.6, label


def test_nms_really_removes_overlapping_candidates(square_model: Path) -> None:
    frame = frame_with([("red", (200, 120))])
    session = ort.InferenceSession(str(square_model), providers=["CPUExecutionProvider"])
    image, _ = letterbox(frame, (320, 320))
    raw = session.run(None, {"images": to_blob([image])})[0]
    assert raw.shape == (1, 7, 1600)  # [B, 4 + 3 classes, 40 x 40 cells]
    candidates = decode(raw[0], np.asarray([0.2, 0.2, 0.2], np.float32))
    assert len(candidates.scores) > 1, "the model should emit several overlapping candidates"
    detector = create_detector(DetectorConfig(model=str(square_model), score_threshold=0.2))
    (dets,) = detector.detect([frame])
    assert len(dets) == 1
    assert dets.labels() == ["red"]
    assert dets.scores[0] == pytest.approx(float(candidates.scores.max()), rel=1e-5)


def test_batch_of_different_frames_keeps_order(square_model: Path) -> None:
    detector = create_detector(DetectorConfig(model=str(square_model), batch_size=2))
    frames = [frame_with([("red", (40 + 80 * i, 100))]) for i in range(5)]
    frames.append(np.full((HEIGHT, WIDTH, 3), 114, np.uint8))
    results = detector.detect(frames)
    assert len(results) == 6
    for i, dets in enumerate(results[:5]):
        assert len(dets) == 1
        assert _iou(tuple(dets.xyxy[0].tolist()), _truth(40 + 80 * i, 100)) > 0.6
    assert len(results[5]) == 0


def test_label_map_merges_renames_drops_and_thresholds(square_model: Path) -> None:
    config = DetectorConfig(
        model=str(square_model),
        labels={"red": "vehicle", "green": "vehicle", "blue": None},
        thresholds={"vehicle": 0.5},
    )
    detector = create_detector(config)
    assert detector.class_names == ("vehicle",)
    (dets,) = detector.detect([frame_with([("red", (96, 64)), ("green", (400, 200)), ("blue", (520, 40))])])
    assert dets.labels() == ["vehicle", "vehicle"]
    strict = create_detector(DetectorConfig(model=str(square_model), thresholds={"green": 0.99}))
    (dets,) = strict.detect([frame_with([("red", (96, 64)), ("green", (400, 200))])])
    assert dets.labels() == ["red"]


def test_different_frame_sizes_in_one_batch(square_model: Path) -> None:
    detector = create_detector(DetectorConfig(model=str(square_model)))
    big = np.full((720, 1280, 3), 114, np.uint8)
    big[200:328, 640:768] = (0, 0, 255)  # 128 px: 32 model px at scale 0.25
    small = frame_with([("green", (0, 0))])
    big_dets, small_dets = detector.detect([big, small])
    assert big_dets.labels() == ["red"]
    assert small_dets.labels() == ["green"]
    assert _iou(tuple(big_dets.xyxy[0].tolist()), (640 / 1280, 200 / 720, 768 / 1280, 328 / 720)) > 0.6


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"labels": {"purple": "x"}}, "no class 'purple'"),
        ({"thresholds": {"car": 0.5}}, "no class is labelled 'car'"),
        ({"input_size": 640}, "does not match"),
    ],
)
def test_bad_detector_config_is_a_model_error(square_model: Path, config: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        create_detector(DetectorConfig.model_validate({"model": str(square_model), **config}))


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        create_detector(DetectorConfig(model=str(tmp_path / "nope.onnx")))


def test_config_rejects_wrong_file_type_for_backend() -> None:
    with pytest.raises(ValueError, match="reads"):
        DetectorConfig(backend=Backend.ONNX, model="model.pt")


def test_yolo11n_export_shapes_classes_and_nms(yolo11n_onnx: Path) -> None:
    session = ort.InferenceSession(str(yolo11n_onnx), providers=["CPUExecutionProvider"])
    frames = [np.random.default_rng(i).integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8) for i in range(2)]
    raw = session.run(None, {"images": to_blob([letterbox(f, (320, 320))[0] for f in frames])})[0]
    assert raw.shape == (2, 84, 2100)  # 80 classes; 40x40 + 20x20 + 10x10 anchors at 320
    # Random weights score very low; a tiny threshold yields real candidates for NMS to work on.
    detector = OnnxYoloDetector(
        DetectorConfig(model=str(yolo11n_onnx), score_threshold=1e-5, iou_threshold=0.5), yolo11n_onnx
    )
    assert detector.class_names == COCO_NAMES
    assert detector.input_size == (320, 320)
    results = detector.detect(frames)
    assert len(results) == 2
    for dets in results:
        _assert_nms_invariants(dets, 0.5)


def _assert_nms_invariants(dets: Detections, iou: float) -> None:
    assert np.all(np.diff(dets.scores) <= 1e-7), "kept boxes are best-first"
    assert (dets.xyxy >= 0).all()
    assert (dets.xyxy <= 1).all()
    for label in set(dets.class_ids.tolist()):
        same = dets.xyxy[dets.class_ids == label]
        overlaps = iou_matrix(same, same)
        np.fill_diagonal(overlaps, 0)
        assert overlaps.max(initial=0) <= iou + 1e-6


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="the `openvino` extra is not installed")
def test_openvino_backend_matches_onnx_runtime(square_model: Path) -> None:
    frame = frame_with([("red", (96, 64)), ("blue", (400, 200))])
    (onnx_dets,) = create_detector(DetectorConfig(model=str(square_model))).detect([frame])
    (ov_dets,) = create_detector(DetectorConfig(backend=Backend.OPENVINO, model=str(square_model))).detect([frame])
    assert ov_dets.labels() == onnx_dets.labels()
    np.testing.assert_allclose(ov_dets.xyxy, onnx_dets.xyxy, atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None, reason="the `models` extra is not installed")
def test_ultralytics_backend_runs_offline_with_the_same_label_map(
    yolo11n_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    config = DetectorConfig(
        backend=Backend.ULTRALYTICS, model=str(yolo11n_onnx), input_size=320, score_threshold=1e-5,
        labels={"car": "vehicle", "truck": "vehicle"},
    )  # fmt: skip
    detector = create_detector(config)
    assert "vehicle" in detector.class_names
    assert "truck" not in detector.class_names
    frames = [np.random.default_rng(i).integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8) for i in range(2)]
    results = detector.detect(frames)
    assert len(results) == 2
    for dets in results:
        assert len(dets) > 0
        _assert_nms_invariants(dets, config.iou_threshold)
