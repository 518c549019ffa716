"""Config of a YOLO detector (backend, model file, input size, labels, thresholds), shared by edge and tools."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from qinghe.config import StrictModel


class Backend(StrEnum):
    """Inference runtimes behind the Detector protocol."""

    ONNX = "onnx"  # ONNX Runtime, CPU: the default and fastest here
    OPENVINO = "openvino"  # `openvino` extra
    ULTRALYTICS = "ultralytics"  # `models` extra (torch): for .pt files, experiments


class DetectorConfig(StrictModel):
    """One YOLO model and how its output is turned into labelled detections."""

    backend: Backend = Field(Backend.ONNX, description="onnx | openvino | ultralytics")
    model: str = Field(min_length=1, description="model file (.onnx, OpenVINO .xml, or .pt); relative to the config")
    input_size: int | None = Field(
        None, ge=32, le=2048, description="square model input in pixels; default: from the model metadata"
    )
    class_names: list[str] | None = Field(
        None, description="class id -> name; default: the model's `names` metadata (ultralytics exports embed it)"
    )
    labels: dict[str, str | None] = Field(
        default_factory=dict,
        description="model class name -> label used by zones and analytics; null drops the class; "
        "classes not listed keep their name",
    )
    score_threshold: float = Field(
        0.3, gt=0, le=1, description="default minimum score (the tracker's second pass uses the 0.3-0.5 band)"
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="per-label minimum score, overriding score_threshold"
    )
    iou_threshold: float = Field(0.45, gt=0, le=1, description="NMS IoU above which a lower box is dropped")
    max_detections: int = Field(100, ge=1, le=1000)
    batch_size: int = Field(4, ge=1, le=64, description="frames from several cameras inferred together")
    threads: int | None = Field(None, ge=1, le=64, description="intra-op threads; default: the CPU cores (at most 4)")
    device: str = Field("CPU", description="OpenVINO device name (CPU, GPU, AUTO)")

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for label, threshold in value.items():
            if not 0 < threshold <= 1:
                raise ValueError(f"threshold for {label!r} must be in (0, 1], got {threshold}")
        return value

    @model_validator(mode="after")
    def _check_model_suffix(self) -> DetectorConfig:
        suffix = Path(self.model).suffix.lower()
        allowed = {Backend.ONNX: {".onnx"}, Backend.OPENVINO: {".onnx", ".xml"}, Backend.ULTRALYTICS: {".pt", ".onnx"}}
        if suffix not in allowed[self.backend]:
            raise ValueError(
                f"model: backend {self.backend.value} reads {sorted(allowed[self.backend])} files, "
                f"got {suffix or 'none'!r}"
            )
        return self

    def model_path(self, base_dir: str | Path | None = None) -> Path:
        """The model file, absolute against `base_dir` (the config file's directory) when relative."""
        path = Path(self.model).expanduser()
        return path if path.is_absolute() or base_dir is None else Path(base_dir) / path
