"""YOLO on OpenVINO (the `openvino` extra), reading .onnx or OpenVINO IR (.xml) models.

Only the runtime API is used (Core.read_model/compile_model). It sends no telemetry; OpenVINO's
telemetry lives in its conversion tools (convert_model, ovc), which this module never calls, and
OPENVINO_TELEMETRY_DISABLE is set before import as a belt-and-braces measure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from detectors.core import FloatArray
from detectors.yolo import ModelError, YoloDetector, default_threads
from detectors.yolo_config import DetectorConfig
from detectors.yolo_ops import parse_names

log = logging.getLogger(__name__)


def _import_openvino() -> Any:
    os.environ.setdefault("OPENVINO_TELEMETRY_DISABLE", "1")
    try:
        import openvino
    except ImportError:
        raise ModelError("backend openvino needs the `openvino` extra: pip install 'qinghe[openvino]'") from None
    return openvino


class OpenVinoYoloDetector(YoloDetector):
    """YOLO compiled for an OpenVINO device (CPU by default), with a dynamic or fixed batch."""

    def __init__(self, config: DetectorConfig, path: Path) -> None:
        ov = _import_openvino()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with C++ messages
            raise ModelError(f"cannot load {path}: {exc}") from None
        names = _names(model, path)
        shape = model.inputs[0].get_partial_shape()
        batch_dim, h_dim, w_dim = shape[0], shape[2], shape[3]
        if h_dim.is_static and w_dim.is_static:
            size = (w_dim.get_length(), h_dim.get_length())
        elif config.input_size is not None:
            size = (config.input_size, config.input_size)
        else:
            raise ModelError("the model input size is dynamic: set detector.input_size")
        self._fixed_batch: int | None = batch_dim.get_length() if batch_dim.is_static else None
        properties = {"INFERENCE_NUM_THREADS": config.threads or default_threads(), "PERFORMANCE_HINT": "LATENCY"}
        self._compiled = core.compile_model(model, config.device, properties)
        self._request = self._compiled.create_infer_request()
        super().__init__(config, names, size)
        log.info("loaded %s on OpenVINO %s: input %sx%s", path.name, config.device, size[0], size[1])

    @property
    def max_batch(self) -> int:
        """A model with a static batch takes exactly that many frames per call."""
        return self._fixed_batch or self.config.batch_size

    def _infer(self, blob: FloatArray) -> FloatArray:
        n = blob.shape[0]
        if self._fixed_batch is not None and n < self._fixed_batch:
            blob = np.concatenate([blob, np.zeros((self._fixed_batch - n, *blob.shape[1:]), np.float32)])
        result = self._request.infer({0: blob})
        output = next(iter(result.values()))
        return np.asarray(output[:n], np.float32)


def _names(model: Any, path: Path) -> tuple[str, ...]:
    """Class names from IR rt_info (ultralytics writes model_info/labels) or ONNX metadata props."""
    for key in (("model_info", "labels"), ("framework", "names")):
        try:
            if model.has_rt_info(list(key)):
                text = str(model.get_rt_info(list(key)))
                return tuple(text.split()) if key[1] == "labels" else parse_names(text)
        except (RuntimeError, ValueError):
            continue
    if path.suffix.lower() == ".onnx":
        try:
            import onnx
        except ImportError:
            return ()
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if "names" in props:
            return parse_names(props["names"])
    return ()
