"""Models the project makes itself, offline: a colour-square YOLO graph for tests, yolo11n exports for benches.

`build_square_model` writes a real ONNX detector (no training, no torch) that finds 32 px squares of
pure colour and emits the YOLOv8/11 output layout `[B, 4 + nc, N]` with ultralytics-style `names`
metadata, so the whole ONNX path (letterbox, batch, decode, NMS, class names) runs for real.
`export_ultralytics` builds `yolo11n.yaml` (random weights, real compute cost) with ultralytics and
exports it to ONNX, in a subprocess so torch never loads into the caller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SQUARE_PX = 32  # model-input pixels: the object size the square model is tuned for
SQUARE_STRIDE = 8


def build_square_model(
    path: str | Path,
    names: Sequence[str] = ("red", "green", "blue"),
    input_size: int = 320,
    gain: float = 10.0,
    offset: float = 1.6,
) -> Path:
    """Write an ONNX model that detects `SQUARE_PX` squares of pure red, green or blue (model pixels).

    Per class c the logit of a 32 px window is `gain * (3 * mean(c) - mean(R + G + B) - offset)`: 2 * gain
    minus the offset for a window fully on a pure-colour square, 0 minus the offset on grey. Windows are
    laid on an 8 px grid, so one square yields several overlapping candidates and NMS must keep one.
    """
    import onnx
    from onnx import TensorProto, helper

    if len(names) != 3:
        raise ValueError("the square model has exactly three classes (one per colour channel)")
    cells = input_size // SQUARE_STRIDE
    graph = helper.make_graph(
        _square_nodes(),
        "qinghe-squares",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, input_size, input_size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 7, cells * cells])],
        initializer=_square_initializers(cells, gain, offset),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="qinghe")
    model.ir_version = 8
    meta = {
        "names": repr(dict(enumerate(names))),
        "imgsz": f"[{input_size}, {input_size}]",
        "stride": str(SQUARE_STRIDE),
        "task": "detect",
        "description": "Qinghe test model: pure-colour 32 px squares",
    }
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def _square_nodes() -> list[Any]:
    """Pool to 8x8 cells, mean over 4x4 cells (a 32 px window per cell), colour logits, YOLO layout."""
    from onnx import helper

    # Window i spans [8i - 16, 8i + 16): centred on the grid, so 8-aligned squares are covered exactly.
    span = SQUARE_PX // SQUARE_STRIDE
    before, after = span // 2, span // 2 - 1
    return [
        helper.make_node(
            "AveragePool", ["images"], ["cells"], kernel_shape=[SQUARE_STRIDE] * 2, strides=[SQUARE_STRIDE] * 2
        ),
        helper.make_node(
            "AveragePool",
            ["cells"],
            ["pooled"],
            kernel_shape=[span, span],
            strides=[1, 1],
            pads=[before, before, after, after],
            count_include_pad=0,
        ),
        helper.make_node("Conv", ["pooled", "weight", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
        helper.make_node("Shape", ["probs"], ["probs_shape"]),
        helper.make_node("Slice", ["probs_shape", "zero", "one"], ["batch"]),
        helper.make_node("Concat", ["batch", "score_tail"], ["score_shape"], axis=0),
        helper.make_node("Reshape", ["probs", "score_shape"], ["scores"]),
        helper.make_node("Concat", ["batch", "box_tail"], ["box_shape"], axis=0),
        helper.make_node("Expand", ["boxes", "box_shape"], ["boxes_b"]),
        helper.make_node("Concat", ["boxes_b", "scores"], ["output0"], axis=1),
    ]


def _square_initializers(cells: int, gain: float, offset: float) -> list[Any]:
    """Colour weights (3 * own channel - sum), the bias, and one fixed 32 px box per grid cell."""
    from onnx import TensorProto, helper

    weight = np.full((3, 3, 1, 1), -1.0, np.float32)
    for c in range(3):
        weight[c, c, 0, 0] = 2.0
    weight *= gain
    bias = np.full((3,), -gain * offset, np.float32)
    centres = (np.arange(cells, dtype=np.float32) * SQUARE_STRIDE).astype(np.float32)
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    size = np.full(cells * cells, SQUARE_PX, np.float32)
    boxes = np.stack([cx.ravel(), cy.ravel(), size, size])[None].astype(np.float32)
    return [
        helper.make_tensor("weight", TensorProto.FLOAT, weight.shape, weight.ravel()),
        helper.make_tensor("bias", TensorProto.FLOAT, bias.shape, bias),
        helper.make_tensor("boxes", TensorProto.FLOAT, boxes.shape, boxes.ravel()),
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("score_tail", TensorProto.INT64, [2], [3, cells * cells]),
        helper.make_tensor("box_tail", TensorProto.INT64, [2], [4, cells * cells]),
    ]


# the 80 COCO classes, in the order COCO-trained YOLO models use
COCO_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip

_EXPORT_SCRIPT = textwrap.dedent(
    """
    import json, shutil, sys
    from ultralytics import YOLO
    cfg, out, imgsz, dynamic, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
    names = json.loads(sys.argv[6])
    model = YOLO(cfg)
    if names:
        if len(names) != len(model.model.names):
            sys.exit(f"{len(names)} names given but the model has {len(model.model.names)} classes")
        model.model.names = dict(enumerate(names))
    exported = model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, batch=batch, simplify=True, verbose=False)
    shutil.move(exported, out)
    """
)


def ultralytics_python() -> str:
    """Interpreter that has ultralytics: $QINGHE_MODELS_PYTHON, else the current one."""
    return os.environ.get("QINGHE_MODELS_PYTHON") or sys.executable


def export_ultralytics(
    path: str | Path,
    *,
    cfg: str = "yolo11n.yaml",
    imgsz: int = 320,
    dynamic: bool = True,
    batch: int = 1,
    names: Sequence[str] = (),
    python: str | None = None,
    workdir: str | Path | None = None,
    timeout_s: float = 600.0,
) -> Path:
    """Build `cfg` with ultralytics (random weights unless cfg is a .pt) and export ONNX to `path`, offline.

    `names` (one per class) replace the placeholder names a model built from a .yaml has ('0', '1', ...).
    Runs in a child interpreter (`python`, default `ultralytics_python()`), so the caller never imports
    torch. Raises RuntimeError with the child's output when ultralytics is missing or the export fails.
    """
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(workdir or out.parent / "ultralytics-work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "YOLO_CONFIG_DIR": str(work / "config"),
        "YOLO_VERBOSE": "false",
        "MPLBACKEND": "Agg",
    }
    argv = [
        python or ultralytics_python(),
        "-c",
        _EXPORT_SCRIPT,
        cfg,
        str(out),
        str(imgsz),
        str(int(dynamic)),
        str(batch),
        json.dumps(list(names)),
    ]
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise RuntimeError(f"ultralytics export of {cfg} failed (rc {proc.returncode}):\n{tail}")
    return out
