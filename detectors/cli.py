"""Command-line verbs of the detectors package: `qinghe models scenes|train|export|eval`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from qinghe.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from qinghe.errors import QingheError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `qinghe models ...`."""
    models = subparsers.add_parser("models", help="make, train, export and evaluate detection models")
    verbs = models.add_subparsers(dest="models_verb", metavar="ACTION", required=True)
    _register_scenes(verbs)
    _register_train(verbs)
    _register_export(verbs)
    _register_eval(verbs)


def _register_scenes(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = verbs.add_parser(
        "scenes",
        help="generate labelled synthetic clips (or a YOLO dataset) for the four analytics",
        description="Composite real imagery (vtest.avi, dog.jpg, bus.jpg) with scripted events. Clips: "
        "video.mp4 + labels.json (+ thermal.npy) per directory. With --dataset: images/labels/data.yaml.",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--kinds", default="parking,dumping,smoke,water", help="comma list (default all four)")
    p.add_argument("--only", default="", help="comma list of kind/variant, e.g. parking/complied,smoke/smoke_fire")
    p.add_argument("--per-kind", type=int, default=4, help="clips per kind; variants cycle (default 4)")
    p.add_argument("--seed", type=int, default=1, help="base seed (default 1); same seed, same clips")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second of the clips (default 5)")
    p.add_argument("--codec", choices=("mp4v", "h264"), default="mp4v", help="h264 needs ffmpeg (for RTSP serving)")
    p.add_argument("--dataset", action="store_true", help="write a YOLO dataset instead of clips")
    p.add_argument("--val-per-kind", type=int, default=1, help="dataset: validation clips per kind (seed + 1)")
    p.add_argument("--every", type=int, default=5, help="dataset: keep every N-th frame (default 5)")
    p.set_defaults(handler=_scenes)


def _register_train(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = verbs.add_parser("train", help="train or fine-tune a YOLO model with ultralytics (models extra)")
    p.add_argument("--data", required=True, type=Path, help="data.yaml of a YOLO-format dataset")
    p.add_argument("--out", required=True, type=Path, help="run directory (weights in OUT/train/weights)")
    p.add_argument("--model", default="yolo11n.yaml", help="architecture yaml (random init) or local .pt to fine-tune")
    p.add_argument("--width", type=float, help="width multiple override (yolo11n: 0.25)")
    p.add_argument("--depth", type=float, help="depth multiple override (yolo11n: 0.50)")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--patience", type=int, default=100, help="stop after this many epochs without improvement")
    p.add_argument("--onnx", type=Path, help="also export the best weights to this ONNX file")
    p.set_defaults(handler=_train)


def _register_export(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = verbs.add_parser("export", help="export weights to ONNX or OpenVINO with class names embedded, offline")
    p.add_argument("--weights", required=True, type=Path, help="ultralytics .pt file")
    p.add_argument("--format", choices=("onnx", "openvino"), default="onnx")
    p.add_argument("--out", required=True, type=Path, help="output .onnx file or OpenVINO directory")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--static", action="store_true", help="fixed batch 1 instead of a dynamic batch")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import this module first (weights that pickle custom layers, e.g. fire_detector)")  # fmt: skip
    p.set_defaults(handler=_export)


def _register_eval(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = verbs.add_parser(
        "eval",
        help="run a model plus the analytics over labelled clips: frame and event precision/recall, delays, plots",
    )
    p.add_argument("clips", type=Path, help="a clip directory or a directory of clips")
    p.add_argument(
        "--model", type=Path, help="ONNX/OpenVINO/.pt detector; default: ground-truth boxes (analytics only)"
    )
    p.add_argument("--no-detector", action="store_true", help="no detections at all: only the model-free paths work")
    p.add_argument("--backend", choices=("onnx", "openvino", "ultralytics"), default="onnx")
    p.add_argument("--score", type=float, default=0.25, help="detector score threshold (default 0.25)")
    p.add_argument("--labels", default="", help="model class renames, e.g. 'van=car,lorry=truck'")
    p.add_argument("--plots", type=Path, help="directory for per-clip timeline PNGs")
    p.add_argument("--json", type=Path, help="write the full report as JSON here")
    p.add_argument("--iou", type=float, default=0.5, help="frame-level match IoU (default 0.5)")
    p.add_argument("--edge", action="store_true", help="run through the real edge agent and an MQTT broker")
    p.add_argument("--broker", default="", help="--edge: broker URL (default: start a private mosquitto)")
    p.set_defaults(handler=_eval)


def _scenes(args: argparse.Namespace) -> int:
    from detectors.models.clips import plan, write_clip
    from detectors.models.dataset import build_dataset
    from detectors.models.scenes import KINDS

    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        print(f"unknown kind {unknown[0]!r}; kinds: {', '.join(KINDS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.dataset:
            summary = build_dataset(args.out, kinds, {"train": args.per_kind, "val": args.val_per_kind},
                                    every=args.every, seed=args.seed, fps=args.fps)  # fmt: skip
            print(json.dumps({"dataset": str(summary.root / "data.yaml"), "images": summary.images,
                              "boxes": summary.boxes, "clips": summary.clips}))  # fmt: skip
            return EXIT_OK
        jobs = plan(kinds, args.per_kind, args.seed)
        if args.only:
            wanted = [tuple(item.split("/", 1)) for item in args.only.split(",") if item]
            bad = [w for w in wanted if len(w) != 2 or w[0] not in KINDS or w[1] not in KINDS[w[0]]]
            if bad:
                print(f"unknown scene {'/'.join(bad[0])!r}; scenes: {KINDS}", file=sys.stderr)
                return EXIT_USAGE
            jobs = [(k, v, args.seed * 100_003 + i) for i, (k, v) in enumerate(wanted)]
        for kind, variant, seed in jobs:
            clip = write_clip(
                args.out / f"{kind}-{variant}-{seed}", kind, variant, seed, fps=args.fps, codec=args.codec
            )
            print(json.dumps({"clip": str(args.out / clip.clip), "kind": kind, "variant": variant,
                              "frames": clip.frame_count, "events": len(clip.events)}))  # fmt: skip
    except (QingheError, RuntimeError, ValueError) as exc:
        print(f"scenes: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from detectors.models.train import ToolkitError, TrainSettings, export, train

    settings = TrainSettings(
        data=args.data, out=args.out, model=args.model, width=args.width, depth=args.depth, imgsz=args.imgsz,
        epochs=args.epochs, batch=args.batch, seed=args.seed, workers=args.workers, patience=args.patience,
        threads=args.threads,
    )  # fmt: skip
    try:
        result = train(settings)
        summary = {"weights": str(result.weights), "elapsed_s": round(result.elapsed_s, 1),
                   "parameters": result.parameters, "metrics": result.metrics}  # fmt: skip
        if args.onnx:
            summary["onnx"] = str(export(result.weights, "onnx", args.onnx, args.imgsz))
    except ToolkitError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(summary))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from detectors.models.train import ToolkitError, export

    try:
        out = export(args.weights, args.format, args.out, args.imgsz, dynamic=not args.static, imports=args.imports)
    except ToolkitError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"exported": str(out), "format": args.format}))
    return EXIT_OK


def _eval(args: argparse.Namespace) -> int:
    from detectors.models.evaluate import run_eval_command

    return run_eval_command(args)
