"""Table tests for letterbox, decode, NMS and metadata parsing (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.yolo_ops import (
    box_iou,
    decode,
    iou_matrix,
    letterbox,
    nms,
    parse_names,
    postprocess,
    to_blob,
    to_normalised,
)


@pytest.mark.parametrize(
    ("src", "dst", "scale", "pad"),
    [
        ((640, 360), (320, 320), 0.5, (0, 70)),
        ((360, 640), (320, 320), 0.5, (70, 0)),
        ((320, 320), (320, 320), 1.0, (0, 0)),
        ((1920, 1080), (640, 640), 1 / 3, (0, 140)),
        ((100, 50), (320, 320), 3.2, (0, 80)),
    ],
)
def test_letterbox_scale_and_padding(
    src: tuple[int, int], dst: tuple[int, int], scale: float, pad: tuple[int, int]
) -> None:
    frame = np.full((src[1], src[0], 3), 200, np.uint8)
    image, box = letterbox(frame, dst)
    assert image.shape == (dst[1], dst[0], 3)
    assert box.scale == pytest.approx(scale)
    assert box.pad_x == pad[0]
    assert box.pad_y == pad[1]
    # Padding is grey 114, content is the frame's 200.
    if pad[1]:
        assert (image[: pad[1] - 1] == 114).all()
        assert (image[-(pad[1] - 1) :] == 114).all()
    assert (image[pad[1] + 2 : dst[1] - pad[1] - 2, pad[0] + 2 : dst[0] - pad[0] - 2] == 200).all()


def test_letterbox_round_trip_maps_a_box_back() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    _, box = letterbox(frame, (320, 320))
    # A box drawn at source pixels (100, 50)-(300, 150) lands at model pixels scale * x + pad.
    model_box = np.asarray([[50.0, 95.0, 150.0, 145.0]], np.float32)
    out = to_normalised(model_box, box)
    assert out[0] == pytest.approx([100 / 640, 50 / 360, 300 / 640, 150 / 360], abs=1e-6)


def test_letterbox_rejects_empty_frame() -> None:
    with pytest.raises(ValueError, match="empty"):
        letterbox(np.zeros((0, 10, 3), np.uint8), (320, 320))


def test_to_blob_is_rgb_nchw_scaled() -> None:
    frame = np.zeros((2, 3, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    blob = to_blob([frame, frame])
    assert blob.shape == (2, 3, 2, 3)
    assert blob.dtype == np.float32
    assert (blob[:, 2] == 1.0).all()
    assert (blob[:, 0] == 0.0).all()


def _raw(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """Raw YOLO output [4 + nc, N] from (cx, cy, w, h, class scores) rows."""
    return np.asarray([[cx, cy, w, h, *scores] for cx, cy, w, h, scores in rows], np.float32).T


def test_decode_keeps_best_class_above_its_threshold() -> None:
    raw = _raw([(50, 50, 20, 20, [0.9, 0.1]), (80, 80, 10, 10, [0.2, 0.6]), (10, 10, 4, 4, [0.3, 0.2])])
    cand = decode(raw, np.asarray([0.5, 0.5], np.float32))
    assert cand.class_ids.tolist() == [0, 1]
    assert cand.xyxy.tolist() == [[40, 40, 60, 60], [75, 75, 85, 85]]
    # A per-class threshold: class 1 needs 0.7, so its 0.6 box goes.
    assert decode(raw, np.asarray([0.5, 0.7], np.float32)).class_ids.tolist() == [0]


def test_decode_validates_shapes() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        decode(_raw([(1, 1, 1, 1, [0.9, 0.1])]), np.asarray([0.5], np.float32))
    with pytest.raises(ValueError, match="expected YOLO output"):
        decode(np.zeros((3, 10), np.float32), np.asarray([0.5], np.float32))


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "iou", "kept"),
    [
        # Two heavy overlaps of one class: the better one survives.
        ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.8, 0.9], [0, 0], 0.5, [1]),
        # Same boxes, different classes: both survive (class-aware).
        ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.8, 0.9], [0, 1], 0.5, [1, 0]),
        # Light overlap (IoU 0.1): both survive.
        ([[0, 0, 10, 10], [8, 0, 18, 10]], [0.8, 0.9], [0, 0], 0.5, [1, 0]),
        # A chain: A suppresses B, B would have suppressed C, but C survives because B is gone.
        ([[0, 0, 10, 10], [4, 0, 14, 10], [9, 0, 19, 10]], [0.9, 0.8, 0.7], [0, 0, 0], 0.3, [0, 2]),
        # Empty input.
        ([], [], [], 0.5, []),
    ],
)
def test_nms_table(
    boxes: list[list[float]], scores: list[float], classes: list[int], iou: float, kept: list[int]
) -> None:
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    keep = nms(xyxy, np.asarray(scores, np.float32), np.asarray(classes, np.int32), iou)
    assert keep.tolist() == kept


def test_nms_respects_max_det() -> None:
    xyxy = np.asarray([[i * 20, 0, i * 20 + 10, 10] for i in range(10)], np.float32)
    keep = nms(xyxy, np.linspace(0.9, 0.5, 10).astype(np.float32), np.zeros(10, np.int32), 0.5, max_det=3)
    assert keep.tolist() == [0, 1, 2]


def test_iou_helpers_agree() -> None:
    a = np.asarray([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30]], np.float32)
    b = np.asarray([[5, 0, 15, 10]], np.float32)
    matrix = iou_matrix(a, b)
    assert matrix.shape == (3, 1)
    assert matrix[2, 0] == 0.0
    assert matrix[0, 0] == pytest.approx(50 / 150)
    assert matrix[1, 0] == pytest.approx(50 / 150)  # x 5..15, y 5..10 overlap
    assert box_iou(b[0], a).tolist() == pytest.approx(matrix[:, 0].tolist())
    assert iou_matrix(a[:0], b).shape == (0, 1)


def test_postprocess_end_to_end_on_raw_output() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    _, box = letterbox(frame, (320, 320))
    raw = _raw([(100, 120, 40, 40, [0.9, 0.0]), (102, 121, 40, 40, [0.8, 0.0]), (250, 160, 20, 20, [0.0, 0.7])])
    dets = postprocess(raw, box, np.asarray([0.5, 0.5], np.float32), ("car", "person"), iou_threshold=0.5, max_det=10)
    assert dets.labels() == ["car", "person"]
    # The car at model (80..120, 100..140) is source (160..240, 60..140) of 640x360.
    assert dets.xyxy[0].tolist() == pytest.approx([160 / 640, 60 / 360, 240 / 640, 140 / 360], abs=1e-6)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("{0: 'person', 1: 'car'}", ("person", "car")),
        ("{1: 'car', 0: 'person'}", ("person", "car")),
        ("['a', 'b', 'c']", ("a", "b", "c")),
    ],
)
def test_parse_names(text: str, names: tuple[str, ...]) -> None:
    assert parse_names(text) == names


@pytest.mark.parametrize("text", ["{0: 'a', 2: 'b'}", "not python", "42", "{'a': 'b'}"])
def test_parse_names_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="names"):
        parse_names(text)
