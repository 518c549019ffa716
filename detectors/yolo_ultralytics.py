"""YOLO through the ultralytics package (the `models` extra, with torch): for .pt weights and experiments.

Offline: YOLO_OFFLINE and YOLO_AUTOINSTALL are set before import so ultralytics never reaches the
network; only local files are opened. Boxes go through the same label map, thresholds and NMS as the
other backends, so results are comparable.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.core import Detections, Frame
from detectors.yolo import ModelError, YoloDetector, _per_label_nms
from detectors.yolo_config import DetectorConfig


def _import_yolo() -> Any:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    try:
        module = importlib.import_module("ultralytics")
    except ImportError:
        raise ModelError("backend ultralytics needs the `models` extra: pip install 'qinghe[models]'") from None
    return module.YOLO


class UltralyticsYoloDetector(YoloDetector):
    """Runs `YOLO(path).predict` and converts its boxes; ultralytics does its own letterbox and NMS."""

    def __init__(self, config: DetectorConfig, path: Path) -> None:
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        yolo = _import_yolo()
        self._model = yolo(str(path), task="detect")
        names = self._model.names
        model_names = tuple(str(names[i]) for i in sorted(names)) if isinstance(names, dict) else tuple(names)
        size = config.input_size or 640
        super().__init__(config, model_names, (size, size))

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """Predict a batch with ultralytics, then apply our label map, thresholds and NMS."""
        if not frames:
            return []
        threshold = float(min(self._thresholds.min(), 1.0))
        results = self._model.predict(
            list(frames), imgsz=self.input_size[0], conf=threshold, iou=self.config.iou_threshold, verbose=False
        )
        return [self._convert(result) for result in results]

    def _convert(self, result: Any) -> Detections:
        boxes = result.boxes
        xyxy = np.asarray(boxes.xyxyn.cpu().numpy(), np.float32).reshape(-1, 4)
        scores = np.asarray(boxes.conf.cpu().numpy(), np.float32)
        classes = np.asarray(boxes.cls.cpu().numpy(), np.int32)
        keep = scores >= self._thresholds[classes]
        label_ids = self.label_map.label_of_class[classes[keep]]
        mapped = label_ids >= 0
        dets = Detections(xyxy[keep][mapped], scores[keep][mapped], label_ids[mapped], self.class_names)
        return _per_label_nms(dets, self.config.iou_threshold, self.config.max_detections)
