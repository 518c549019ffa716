"""YOLO (v8/11 layout) detectors behind the Detector protocol; ONNX Runtime here, other backends lazily.

Nothing here downloads anything: models are local files, and ONNX Runtime's telemetry is switched off
before the first session is created.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.core import Detections, Detector, FloatArray, Frame
from detectors.yolo_config import Backend, DetectorConfig
from detectors.yolo_ops import Letterbox, class_thresholds, letterbox, nms, parse_names, postprocess, to_blob
from qinghe.errors import QingheError

log = logging.getLogger(__name__)


class ModelError(QingheError):
    """A model file is missing, unreadable, or not a YOLO detection model we understand."""


class LabelMap:
    """Model class ids -> our labels: renames, merges (car+truck -> vehicle) and drops (null)."""

    def __init__(self, model_names: Sequence[str], renames: Mapping[str, str | None]) -> None:
        unknown = sorted(set(renames) - set(model_names))
        if unknown:
            raise ModelError(f"labels: model has no class {unknown[0]!r} (it has {', '.join(model_names[:20])}...)")
        mapped = [renames.get(name, name) for name in model_names]
        self.labels: tuple[str, ...] = tuple(dict.fromkeys(label for label in mapped if label is not None))
        index = {label: i for i, label in enumerate(self.labels)}
        # Dropped classes map to -1 and are removed before NMS.
        self.label_of_class = np.asarray([index[m] if m is not None else -1 for m in mapped], np.int32)
        self.model_names = tuple(model_names)

    def thresholds(self, per_label: Mapping[str, float], default: float) -> FloatArray:
        """Per model class: the threshold of its label; dropped classes can never pass (2.0)."""
        by_label = class_thresholds(self.labels, per_label, default)
        return np.asarray([by_label[i] if i >= 0 else 2.0 for i in self.label_of_class.tolist()], np.float32)


class YoloDetector:
    """Shared letterbox -> infer -> decode/NMS pipeline; subclasses only run the network."""

    def __init__(self, config: DetectorConfig, model_names: Sequence[str], input_size: tuple[int, int]) -> None:
        names = tuple(config.class_names) if config.class_names else tuple(model_names)
        if not names:
            raise ModelError("the model has no `names` metadata: list the classes under detector.class_names")
        self.config = config
        self.input_size = input_size  # (width, height)
        self.label_map = LabelMap(names, config.labels)
        self._thresholds = self.label_map.thresholds(config.thresholds, config.score_threshold)
        unknown = sorted(set(config.thresholds) - set(self.label_map.labels))
        if unknown:
            raise ModelError(
                f"thresholds: no class is labelled {unknown[0]!r} (labels: {', '.join(self.label_map.labels)})"
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        """Labels this detector emits (after renames and drops), indexed by class id."""
        return self.label_map.labels

    @property
    def max_batch(self) -> int:
        """Largest batch one inference call takes."""
        return self.config.batch_size

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """Detect in a batch of BGR frames (any sizes); one Detections per frame, boxes normalised."""
        results: list[Detections] = []
        step = self.max_batch
        for start in range(0, len(frames), step):
            chunk = frames[start : start + step]
            boxed = [letterbox(frame, self.input_size) for frame in chunk]
            outputs = self._infer(to_blob([image for image, _ in boxed]))
            results.extend(self._post(outputs[i], boxed[i][1]) for i in range(len(chunk)))
        return results

    def _post(self, output: FloatArray, box: Letterbox) -> Detections:
        raw = postprocess(
            output,
            box,
            self._thresholds,
            self.label_map.model_names,
            iou_threshold=self.config.iou_threshold,
            max_det=10_000,
        )
        # Map to labels, then run NMS again per label so merged classes (car+truck) do not double-count.
        label_ids = self.label_map.label_of_class[raw.class_ids]
        keep = label_ids >= 0
        mapped = Detections(raw.xyxy[keep], raw.scores[keep], label_ids[keep], self.class_names)
        return _per_label_nms(mapped, self.config.iou_threshold, self.config.max_detections)

    def _infer(self, blob: FloatArray) -> FloatArray:
        """Run the network on an NCHW float blob; returns `[B, 4 + nc, N]`."""
        raise NotImplementedError


def _per_label_nms(dets: Detections, iou: float, max_det: int) -> Detections:
    keep = nms(dets.xyxy, dets.scores, dets.class_ids, iou, max_det)
    return Detections(dets.xyxy[keep], dets.scores[keep], dets.class_ids[keep], dets.class_names)


def default_threads() -> int:
    """Intra-op threads: the cores this process may use, at most 4 (more rarely helps a 320 px model)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class OnnxYoloDetector(YoloDetector):
    """YOLO on ONNX Runtime (CPU), the default backend."""

    def __init__(self, config: DetectorConfig, path: Path) -> None:
        import onnxruntime as ort

        ort.disable_telemetry_events()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.threads or default_threads()
        options.inter_op_num_threads = 1
        # Idle intra-op threads otherwise spin between runs; the detector runs in bursts (a batch per due
        # frame set), so spinning burns CPU the capture threads need: measured 85 vs 30 ms of CPU per frame.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"cannot load {path}: {exc}") from None
        meta = self._session.get_modelmeta().custom_metadata_map
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        size = _input_size(config, model_input.shape, meta)
        names = parse_names(meta["names"]) if "names" in meta else ()
        self._fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
        super().__init__(config, names, size)
        log.info(
            "loaded %s: input %sx%s, %d classes, batch %s, %d threads",
            path.name,
            size[0],
            size[1],
            len(self.label_map.model_names),
            self._fixed_batch or "dynamic",
            options.intra_op_num_threads,
        )

    @property
    def max_batch(self) -> int:
        """A model exported with a fixed batch takes exactly that many frames per call."""
        return self._fixed_batch or self.config.batch_size

    def _infer(self, blob: FloatArray) -> FloatArray:
        n = blob.shape[0]
        if self._fixed_batch is not None and n < self._fixed_batch:
            pad = np.zeros((self._fixed_batch - n, *blob.shape[1:]), np.float32)
            blob = np.concatenate([blob, pad])
        output = self._session.run(None, {self._input_name: blob})[0]
        return np.asarray(output[:n], np.float32)


def _input_size(config: DetectorConfig, shape: Sequence[Any], meta: Mapping[str, str]) -> tuple[int, int]:
    """(width, height) of the model input: fixed dims win, then config, then metadata `imgsz`."""
    height, width = shape[2], shape[3]
    if isinstance(width, int) and isinstance(height, int):
        if config.input_size is not None and (width, height) != (config.input_size, config.input_size):
            raise ModelError(f"input_size {config.input_size} does not match the model's fixed {width}x{height}")
        return width, height
    if config.input_size is not None:
        return config.input_size, config.input_size
    if "imgsz" in meta:
        dims = [int(v) for v in meta["imgsz"].strip("[]() ").split(",") if v.strip()]
        if len(dims) == 2:
            return dims[1], dims[0]
    raise ModelError("the model input size is dynamic and not in its metadata: set detector.input_size")


def create_detector(config: DetectorConfig, base_dir: str | Path | None = None) -> Detector:
    """Open the configured model on its backend; raises ModelError with a readable reason."""
    path = config.model_path(base_dir)
    if config.backend is Backend.ONNX:
        return OnnxYoloDetector(config, path)
    if config.backend is Backend.OPENVINO:
        from detectors.yolo_openvino import OpenVinoYoloDetector

        return OpenVinoYoloDetector(config, path)
    from detectors.yolo_ultralytics import UltralyticsYoloDetector

    return UltralyticsYoloDetector(config, path)
