"""YOLO-format datasets from scene scripts: images/{train,val}, labels/{train,val} and data.yaml."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import yaml

from detectors.models.assets import load_library
from detectors.models.clips import plan, render_frames
from detectors.models.labels import SCENE_CLASSES, FrameLabel
from detectors.models.scenes import build_script

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What was written."""

    root: Path
    images: dict[str, int]  # split -> image count
    boxes: dict[str, int]  # class -> box count (all splits)
    clips: int


def yolo_lines(label: FrameLabel, classes: tuple[str, ...] = SCENE_CLASSES) -> list[str]:
    """YOLO label lines `cls cx cy w h` (normalised) for one frame's objects."""
    lines = []
    for obj in label.objects:
        if obj.label not in classes:
            continue
        x1, y1, x2, y2 = obj.box
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        lines.append(f"{classes.index(obj.label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def write_data_yaml(root: Path, classes: tuple[str, ...] = SCENE_CLASSES) -> Path:
    """The ultralytics dataset description."""
    data = {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
            "names": dict(enumerate(classes))}  # fmt: skip
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=False), encoding="utf-8")
    return path


def build_dataset(root: Path, kinds: list[str], clips_per_kind: dict[str, int], *, every: int, seed: int,
                  fps: float = 5.0) -> DatasetSummary:  # fmt: skip
    """Render clips (train from `seed`, val from `seed + 1`) and keep every `every`-th frame as an image.

    `clips_per_kind` maps "train"/"val" to clips per kind. Nothing is decoded from video: images are the
    rendered frames saved as JPEG (quality 90), labels their exact boxes.
    """
    lib = load_library()
    images: dict[str, int] = {}
    boxes: Counter[str] = Counter()
    clips = 0
    for split, split_seed in (("train", seed), ("val", seed + 1)):
        img_dir, lbl_dir = root / "images" / split, root / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        count = 0
        for kind, variant, clip_seed in plan(kinds, clips_per_kind[split], split_seed):
            script = build_script(lib, kind, variant, clip_seed)
            clips += 1
            for frame in render_frames(lib, script, fps, clip_seed):
                if frame.label.index % every != 0:
                    continue
                name = f"{kind}-{variant}-{clip_seed}-{frame.label.index:04d}"
                cv2.imwrite(str(img_dir / f"{name}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                lines = yolo_lines(frame.label)
                (lbl_dir / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
                boxes.update(line.split()[0] for line in lines)
                count += 1
            log.info("dataset %s: %s/%s seed %d -> %d images so far", split, kind, variant, clip_seed, count)
        images[split] = count
    write_data_yaml(root)
    by_class = {SCENE_CLASSES[int(k)]: v for k, v in sorted(boxes.items(), key=lambda kv: int(kv[0]))}
    return DatasetSummary(root, images, by_class, clips)
