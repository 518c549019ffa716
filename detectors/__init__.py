"""detectors package: detector runtimes, analytics, plates and the model toolkit."""

from pathlib import Path

SCENES_MODEL = Path(__file__).resolve().parent / "weights" / "qinghe-scenes-320.onnx"  # the shipped detector
