"""Pure numpy pre- and post-processing for YOLO detectors: letterbox, blob, decode, class-aware NMS.

Shared by every backend (ONNX Runtime, OpenVINO) so they return identical Detections for the same
raw model output. The output layout is the YOLOv8/YOLO11 one: `[B, 4 + nc, N]`, boxes as centre x,
centre y, width, height in model-input pixels, class scores already through a sigmoid.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors.core import Detections, FloatArray, Frame

PAD_VALUE = 114  # ultralytics' letterbox grey


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a source frame was fitted into the model input: scale, then padding on the left/top."""

    scale: float
    pad_x: float
    pad_y: float
    src_w: int
    src_h: int


def letterbox(frame: Frame, size: tuple[int, int], pad_value: int = PAD_VALUE) -> tuple[Frame, Letterbox]:
    """Resize `frame` to fit `size` (width, height) keeping its aspect ratio, centred on a grey canvas."""
    dst_w, dst_h = size
    src_h, src_w = frame.shape[:2]
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"cannot letterbox an empty frame of shape {frame.shape}")
    scale = min(dst_w / src_w, dst_h / src_h)
    new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    pad_x, pad_y = (dst_w - new_w) / 2, (dst_h - new_h) / 2
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    canvas = np.full((dst_h, dst_w, 3), pad_value, dtype=np.uint8)
    resized = (
        frame
        if (new_w, new_h) == (src_w, src_h)
        else np.asarray(cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR), np.uint8)
    )
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox(scale, float(left), float(top), src_w, src_h)


def to_blob(images: Sequence[Frame]) -> FloatArray:
    """BGR uint8 images (same size) -> float32 NCHW RGB in 0..1, the layout YOLO exports expect."""
    batch = np.stack(images)[..., ::-1]  # BGR -> RGB
    blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
    blob *= 1.0 / 255.0
    return blob


@dataclass(frozen=True, slots=True)
class Candidates:
    """Boxes of one image above their class threshold, before NMS: xyxy in model-input pixels."""

    xyxy: FloatArray
    scores: FloatArray
    class_ids: npt.NDArray[np.int32]


def decode(output: FloatArray, thresholds: FloatArray, max_candidates: int = 3000) -> Candidates:
    """One image's raw output `[4 + nc, N]` -> candidates whose best class beats that class's threshold.

    `thresholds` has one score threshold per class. At most `max_candidates` (highest scores) are kept
    so NMS stays cheap on a noisy frame.
    """
    if output.ndim != 2 or output.shape[0] < 5:
        raise ValueError(f"expected YOLO output [4 + nc, N], got shape {output.shape}")
    nc = output.shape[0] - 4
    if thresholds.shape != (nc,):
        raise ValueError(f"model has {nc} classes but {thresholds.shape[0]} thresholds were given")
    class_scores = output[4:]
    class_ids = class_scores.argmax(axis=0).astype(np.int32)
    scores = class_scores[class_ids, np.arange(class_scores.shape[1])]
    keep = np.flatnonzero(scores >= thresholds[class_ids])
    if len(keep) > max_candidates:
        keep = keep[np.argsort(-scores[keep], kind="stable")[:max_candidates]]
    cx, cy, w, h = output[0, keep], output[1, keep], output[2, keep], output[3, keep]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return Candidates(xyxy.reshape(-1, 4), scores[keep].astype(np.float32), class_ids[keep])


def box_iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one xyxy box against each of `boxes` (M, 4)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(
    xyxy: FloatArray, scores: FloatArray, class_ids: npt.NDArray[np.int32], iou_threshold: float, max_det: int = 300
) -> npt.NDArray[np.intp]:
    """Class-aware greedy NMS: indices kept, best score first; boxes of different classes never suppress."""
    if len(scores) == 0:
        return np.zeros((0,), np.intp)
    # Shift each class to its own region of the plane so one greedy pass is class-aware.
    offset = float(np.abs(xyxy).max()) + 1.0
    shifted = xyxy + (class_ids.astype(np.float32) * offset)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order) and len(keep) < max_det:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        if not len(rest):
            break
        order = rest[box_iou(shifted[best], shifted[rest]) <= iou_threshold]
    return np.asarray(keep, np.intp)


def to_normalised(xyxy: FloatArray, box: Letterbox) -> FloatArray:
    """Model-input pixel boxes -> 0..1 boxes of the source frame, clipped to the frame."""
    out = np.empty_like(xyxy, dtype=np.float32)
    out[:, [0, 2]] = (xyxy[:, [0, 2]] - box.pad_x) / box.scale / box.src_w
    out[:, [1, 3]] = (xyxy[:, [1, 3]] - box.pad_y) / box.scale / box.src_h
    return np.clip(out, 0.0, 1.0)


def postprocess(
    output: FloatArray,
    box: Letterbox,
    thresholds: FloatArray,
    class_names: tuple[str, ...],
    *,
    iou_threshold: float,
    max_det: int,
) -> Detections:
    """One image's raw output -> final Detections (decoded, NMS, normalised to the source frame)."""
    cand = decode(output, thresholds)
    keep = nms(cand.xyxy, cand.scores, cand.class_ids, iou_threshold, max_det)
    xyxy = to_normalised(cand.xyxy[keep], box)
    valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return Detections(xyxy[valid], cand.scores[keep][valid], cand.class_ids[keep][valid], class_names)


def parse_names(text: str) -> tuple[str, ...]:
    """Class names from an ultralytics `names` metadata string, e.g. "{0: 'person', 1: 'car'}"."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"model metadata 'names' is not a dict or list literal: {text[:80]!r}") from None
    if isinstance(value, Mapping):
        if not all(isinstance(k, int) for k in value):
            raise ValueError("model metadata 'names' keys must be class ids")
        ids = sorted(value)
        if ids != list(range(len(ids))):
            raise ValueError(f"model metadata 'names' ids are not 0..{len(ids) - 1}")
        return tuple(str(value[i]) for i in ids)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    raise ValueError(f"model metadata 'names' must be a dict or list, got {type(value).__name__}")


def class_thresholds(class_names: Sequence[str], per_class: Mapping[str, float], default: float) -> FloatArray:
    """One score threshold per class id: the per-label value where given, else `default`."""
    return np.asarray([per_class.get(name, default) for name in class_names], np.float32)
