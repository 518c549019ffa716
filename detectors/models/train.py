"""`qinghe models train` and `export`: ultralytics (the `models` extra), imported lazily, strictly offline.

Offline means: YOLO_OFFLINE=1, YOLO_AUTOINSTALL=false, a private YOLO_CONFIG_DIR, no pretrained
download (`pretrained=False` unless a local .pt is given), no plots (ultralytics' plotter fetches a font).
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qinghe.errors import QingheError

log = logging.getLogger(__name__)


class ToolkitError(QingheError):
    """Training or export cannot run (missing extra, bad dataset, failed export)."""


def offline_environment(workdir: Path) -> None:
    """Make ultralytics unable to reach the network or install anything; call before importing it."""
    config_dir = workdir / "ultralytics-config"
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("MPLBACKEND", "Agg")


def _ultralytics() -> Any:
    try:
        import ultralytics
    except ImportError:
        raise ToolkitError("ultralytics is not installed: pip install -e '.[models]' (the models extra)") from None
    return ultralytics


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """One training run."""

    data: Path  # data.yaml of a YOLO-format dataset
    out: Path  # run directory
    model: str = "yolo11n.yaml"  # architecture yaml (random init) or a local .pt to fine-tune
    width: float | None = None  # width multiple override (yolo11n: 0.25)
    depth: float | None = None  # depth multiple override (yolo11n: 0.50)
    imgsz: int = 320
    epochs: int = 60
    batch: int = 16
    seed: int = 0
    workers: int = 1
    patience: int = 100
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more ultralytics train arguments


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Where the weights are and how good they were on the validation split."""

    weights: Path
    metrics: dict[str, float]
    elapsed_s: float
    parameters: int


def _class_names(data: Path) -> list[str]:
    try:
        spec = yaml.safe_load(data.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ToolkitError(f"{data}: cannot read the dataset description: {exc}") from None
    names = spec.get("names") if isinstance(spec, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise ToolkitError(f"{data}: no `names` list (a YOLO data.yaml maps class ids to names)")


def model_yaml(settings: TrainSettings, nc: int) -> str:
    """The model to build: a local .pt as is, else the architecture yaml with our class count and scale."""
    if settings.model.endswith(".pt"):
        if not Path(settings.model).is_file():
            raise ToolkitError(f"{settings.model}: no such weights file (nothing is downloaded)")
        return settings.model
    ultralytics = _ultralytics()
    yaml_model_load: Any = importlib.import_module("ultralytics.nn.tasks").yaml_model_load
    cfg = yaml_model_load(settings.model)  # resolves yolo11n.yaml -> yolo11.yaml with scale n
    scale = cfg.get("scale") or "n"
    depth, width, max_channels = cfg["scales"][scale]
    cfg["scales"] = {scale: [settings.depth or depth, settings.width or width, max_channels]}
    cfg["scale"] = scale
    cfg["nc"] = nc
    cfg.pop("yaml_file", None)
    settings.out.mkdir(parents=True, exist_ok=True)
    path = settings.out / f"{Path(settings.model).stem}-qinghe.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    log.info("ultralytics %s: building %s (depth %s, width %s)", ultralytics.__version__, path.name,
             cfg["scales"][scale][0], cfg["scales"][scale][1])  # fmt: skip
    return str(path)


def train(settings: TrainSettings) -> TrainResult:
    """Train with ultralytics on a YOLO dataset; progress goes to the console; reproducible with `seed`."""
    offline_environment(settings.out)
    if not settings.data.is_file():
        raise ToolkitError(f"{settings.data}: no such dataset description (make one with `qinghe models scenes`)")
    names = _class_names(settings.data)
    if any(not name.isascii() for name in names):
        raise ToolkitError("class names must be ASCII (ultralytics would try to download a font to draw others)")
    _ultralytics()
    import torch

    yolo: Any = importlib.import_module("ultralytics").YOLO

    if settings.threads:
        torch.set_num_threads(settings.threads)
    model = yolo(model_yaml(settings, len(names)))
    started = time.monotonic()
    args: dict[str, Any] = {
        "data": str(settings.data.resolve()), "epochs": settings.epochs, "imgsz": settings.imgsz,
        "batch": settings.batch, "seed": settings.seed, "deterministic": True, "workers": settings.workers,
        "device": "cpu", "project": str(settings.out.resolve()), "name": "train", "exist_ok": True,
        "plots": False, "pretrained": settings.model.endswith(".pt"), "amp": False, "patience": settings.patience,
        "cache": "disk", "verbose": True, **settings.extra,
    }  # fmt: skip
    model.train(**args)
    elapsed = time.monotonic() - started
    weights = settings.out / "train" / "weights" / "best.pt"
    if not weights.is_file():
        raise ToolkitError(f"training finished without {weights}")
    metrics = {k: float(v) for k, v in (getattr(model.trainer, "metrics", None) or {}).items()}
    params = sum(p.numel() for p in model.model.parameters())
    return TrainResult(weights, metrics, elapsed, int(params))


def export(weights: Path, fmt: str, out: Path, imgsz: int = 320, *, dynamic: bool = True,
           imports: list[str] | None = None) -> Path:  # fmt: skip
    """Export weights to ONNX (class names in the model metadata) or OpenVINO IR; offline.

    `imports` are modules imported first, for weights that pickle custom layers (fire-detector's model
    refers to classes its package registers on import).
    """
    if fmt not in ("onnx", "openvino"):
        raise ToolkitError(f"format must be onnx or openvino, not {fmt!r}")
    if not weights.is_file():
        raise ToolkitError(f"{weights}: no such weights file")
    offline_environment(out.resolve().parent)
    _ultralytics()
    needed = {"onnx": ("onnx", "onnxslim"), "openvino": ("onnx", "openvino")}[fmt]
    for module in needed:
        try:
            __import__(module)
        except ImportError:
            raise ToolkitError(
                f"export to {fmt} needs the {module!r} package installed (nothing is auto-installed)"
            ) from None
    for module in imports or []:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ToolkitError(f"--import {module}: {exc}") from None
    yolo: Any = importlib.import_module("ultralytics").YOLO
    model = yolo(str(weights))
    # ONNX: dynamic batch for the shared detector (size in the metadata); OpenVINO IR: a fixed 1x3xNxN input.
    options: dict[str, Any] = {"simplify": True, "dynamic": dynamic} if fmt == "onnx" else {"dynamic": False}
    produced = Path(model.export(format=fmt, imgsz=imgsz, **options))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        if out.resolve() != produced.resolve():
            produced.replace(out)
        return out
    if out.exists() and out.resolve() != produced.resolve():
        raise ToolkitError(f"{out} exists: remove it first")
    if out.resolve() != produced.resolve():
        produced.rename(out)
    return out
