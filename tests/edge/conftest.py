"""Fixtures of the edge tests: the project's own models (built offline), clips, and a local RTSP camera."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from detectors.yolo_build import COCO_NAMES, build_square_model, export_ultralytics, ultralytics_python
from edge.rtsp_testing import LocalRtspServer, vtest_clip


def _cache_dir(request: pytest.FixtureRequest, factory: pytest.TempPathFactory, name: str) -> Path:
    """pytest's persistent cache dir (built artefacts survive runs), or a temp dir without the cache plugin."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir(name)) if cache is not None else factory.mktemp(name)


@pytest.fixture(scope="session")
def square_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The colour-square YOLO graph (ONNX, dynamic batch, names red/green/blue in its metadata)."""
    return build_square_model(tmp_path_factory.mktemp("models") / "squares.onnx")


@pytest.fixture(scope="session")
def yolo11n_onnx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yolo11n built from its yaml by ultralytics (random weights) with COCO names, exported to ONNX at 320.

    Built once and cached in pytest's cache dir; needs the `models` extra (ultralytics), or an interpreter
    that has it in $QINGHE_MODELS_PYTHON.
    """
    python = ultralytics_python()
    if "QINGHE_MODELS_PYTHON" not in os.environ and importlib.util.find_spec("ultralytics") is None:
        pytest.skip("ultralytics (the `models` extra) is not installed: the yolo11n export cannot be built")
    cache = _cache_dir(request, tmp_path_factory, "qinghe-yolo11n")
    path = cache / "yolo11n-320-coco-names.onnx"
    if not path.is_file():
        export_ultralytics(path, cfg="yolo11n.yaml", imgsz=320, dynamic=True, names=COCO_NAMES, python=python)
    return path


@pytest.fixture(scope="session")
def vtest_mp4(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """opencv-doc's real CCTV clip, 20 s of it, as 640x360 H.264 (cached across runs)."""
    return vtest_clip(_cache_dir(request, tmp_path_factory, "qinghe-clips"), seconds=20)


@pytest.fixture
def rtsp_camera(tmp_path: Path, vtest_mp4: Path) -> Iterator[LocalRtspServer]:
    """A GStreamer RTSP server on a free loopback port serving the clip (looped) at /cam."""
    server = LocalRtspServer(tmp_path / "rtsp", {"/cam": vtest_mp4})
    server.start()
    yield server
    server.stop()
