"""Real imagery for the scene generator: backgrounds and cut-out sprites from files that packages ship.

Sources (all local, nothing downloaded):
- `vtest.avi` (Debian `opencv-doc`): real CCTV. Its per-pixel median is a people-free background with
  two real parked vehicles and real litter (labelled as background objects); its pedestrians are cut
  out by background subtraction, frame by frame, into walk cycles.
- `dog.jpg` (Debian `darknet`): the parked pickup truck, cut out with GrabCut.
- `bus.jpg` (the `ultralytics` wheel's assets, `models` extra): the bus, cut out with GrabCut.
- `horses.jpg` (Debian `darknet`): a field, background for smoke scenes.
Missing optional files only reduce variety; `vtest.avi` is required.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from detectors.core import Frame
from qinghe.errors import QingheError

log = logging.getLogger(__name__)

SCENE_W, SCENE_H = 640, 480
Box = tuple[float, float, float, float]
RGBA = npt.NDArray[np.uint8]  # H x W x 4, BGR + alpha

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
DARKNET_DATA = "/usr/share/darknet/data"
ASSETS_VERSION = 1

# Objects that are part of vtest's median background, in 640x480 pixels: they get labels in every frame.
VTEST_OBJECTS: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("car", (543, 36, 603, 84)),  # white van parked by the building
    ("car", (611, 39, 640, 78)),  # light blue car, cut by the frame edge
    ("garbage", (57, 414, 132, 440)),  # yellow litter on the grass
    ("garbage", (270, 375, 294, 389)),  # white litter on the grass
)


class AssetError(QingheError):
    """A required media file is missing or unreadable."""


@dataclass(frozen=True, slots=True)
class Sprite:
    """A cut-out object: BGR pixels plus alpha; its bottom row touches the ground."""

    name: str
    label: str
    rgba: RGBA


@dataclass(frozen=True, slots=True)
class Library:
    """Everything the scene generator composites from."""

    backgrounds: dict[str, Frame]  # name -> 640x480 BGR
    background_objects: dict[str, tuple[tuple[str, Box], ...]]  # name -> labelled static objects (pixels)
    vehicles: tuple[Sprite, ...]
    walkers: tuple[tuple[Sprite, ...], ...]  # pedestrian walk cycles (frames of one real person)
    sources: tuple[str, ...]  # media files used, for the labels' provenance


def media_path(name: str) -> Path | None:
    """Where a named media file lives on this machine (QINGHE_MEDIA dirs first), or None."""
    dirs = [Path(p) for p in os.environ.get("QINGHE_MEDIA", "").split(os.pathsep) if p]
    if name == "vtest.avi":
        dirs.append(Path(VTEST).parent)
    elif name in ("dog.jpg", "horses.jpg"):
        dirs.append(Path(DARKNET_DATA))
    elif name == "bus.jpg":
        spec = importlib.util.find_spec("ultralytics")
        if spec is not None and spec.origin:
            dirs.append(Path(spec.origin).parent / "assets")
    for directory in dirs:
        if (directory / name).is_file():
            return directory / name
    return None


def _read_image(name: str) -> Frame | None:
    path = media_path(name)
    if path is None:
        log.info("scene media %s not found: generating without it", name)
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else np.ascontiguousarray(image)


def _read_vtest(step: int = 2) -> list[Frame]:
    path = media_path("vtest.avi")
    if path is None:
        raise AssetError("vtest.avi not found: install Debian's opencv-doc (or put it in a QINGHE_MEDIA dir)")
    cap = cv2.VideoCapture(str(path))
    frames: list[Frame] = []
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(np.asarray(cv2.resize(frame, (SCENE_W, SCENE_H), interpolation=cv2.INTER_AREA), np.uint8))
            index += 1
    finally:
        cap.release()
    if len(frames) < 50:
        raise AssetError(f"{path}: only {len(frames)} frames could be read")
    return frames


def grabcut_sprite(image: Frame, rect: tuple[int, int, int, int], name: str, label: str) -> Sprite:
    """Cut the object inside `rect` (x1, y1, x2, y2) out of `image` with GrabCut; deterministic."""
    x1, y1, x2, y2 = rect
    cv2.setRNGSeed(12345)
    mask = np.zeros(image.shape[:2], np.uint8)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.grabCut(image, mask, (x1, y1, x2 - x1, y2 - y1), bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)
    alpha = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    alpha = np.asarray(cv2.morphologyEx(alpha, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)), np.uint8)
    return _sprite_from(image, alpha, rect, name, label)


def _sprite_from(image: Frame, alpha: RGBA, rect: tuple[int, int, int, int], name: str, label: str) -> Sprite:
    x1, y1, x2, y2 = rect
    crop_alpha = alpha[y1:y2, x1:x2]
    ys, xs = np.nonzero(crop_alpha)
    if len(xs) == 0:
        raise AssetError(f"sprite {name}: the cut-out is empty")
    ty1, ty2, tx1, tx2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    bgr = image[y1:y2, x1:x2][ty1:ty2, tx1:tx2]
    soft = cv2.GaussianBlur(crop_alpha[ty1:ty2, tx1:tx2], (3, 3), 0)
    return Sprite(name, label, np.ascontiguousarray(np.dstack([bgr, soft])))


def _vehicle_sprites() -> list[Sprite]:
    sprites: list[Sprite] = []
    dog = _read_image("dog.jpg")
    if dog is not None:
        sprites.append(grabcut_sprite(dog, (465, 70, 693, 173), "pickup", "truck"))
    bus = _read_image("bus.jpg")
    if bus is not None:
        sprites.append(grabcut_sprite(bus, (18, 228, 808, 730), "bus", "bus"))
    return sprites


def _components(diff: npt.NDArray[np.uint8]) -> list[tuple[int, int, int, int, npt.NDArray[np.uint8]]]:
    """Person-shaped foreground blobs: (x1, y1, x2, y2, mask crop)."""
    binary = (diff > 32).astype(np.uint8) * 255
    binary = np.asarray(cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)), np.uint8)
    binary = np.asarray(cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((7, 5), np.uint8)), np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary)
    out = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if 250 <= area <= 5000 and h >= 28 and h >= 1.4 * w and y > 60 and x > 2 and x + w < SCENE_W - 2:
            out.append((x, y, x + w, y + h, ((labels[y : y + h, x : x + w] == i) * 255).astype(np.uint8)))
    return out


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _walkers(frames: list[Frame], median: Frame, min_len: int = 10, max_tracks: int = 16) -> list[list[Sprite]]:
    """Real pedestrians of vtest as walk cycles: blobs linked frame to frame by overlap."""
    tracks: list[list[tuple[int, Sprite, tuple[int, int, int, int]]]] = []
    median16 = median.astype(np.int16)
    for index, frame in enumerate(frames):
        diff = np.abs(frame.astype(np.int16) - median16).max(axis=2).astype(np.uint8)
        for x1, y1, x2, y2, mask in _components(diff):
            box = (x1, y1, x2, y2)
            full = np.zeros(frame.shape[:2], np.uint8)
            full[y1:y2, x1:x2] = cv2.erode(mask, np.ones((3, 3), np.uint8))
            sprite = _sprite_from(frame, full, box, f"walker{index}", "person")
            for track in tracks:
                last_index, _, last_box = track[-1]
                if last_index == index - 1 and _iou(last_box, box) > 0.3:
                    track.append((index, sprite, box))
                    break
            else:
                tracks.append([(index, sprite, box)])
    long_tracks = sorted((t for t in tracks if len(t) >= min_len), key=len, reverse=True)[:max_tracks]
    return [[sprite for _, sprite, _ in track[:40]] for track in long_tracks]


def _field_background(horses: Frame | None, median: Frame) -> Frame:
    if horses is not None:
        return np.asarray(cv2.resize(horses, (SCENE_W, SCENE_H), interpolation=cv2.INTER_AREA), np.uint8)
    grass = median[260:480, 0:300]  # vtest's lawn, stretched into a field
    return np.asarray(cv2.resize(grass, (SCENE_W, SCENE_H), interpolation=cv2.INTER_LINEAR), np.uint8)


def _cache_file() -> Path | None:
    """Where the cut-out assets are cached: keyed by the source files' sizes and times (None: no cache)."""
    root = os.environ.get("QINGHE_CACHE") or str(Path.home() / ".cache" / "qinghe")
    if root in ("", "0", "off"):
        return None
    key = hashlib.sha256(str(ASSETS_VERSION).encode())
    for name in ("vtest.avi", "dog.jpg", "bus.jpg", "horses.jpg"):
        path = media_path(name)
        if path is not None:
            stat = path.stat()
            key.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return Path(root) / f"scene-assets-{key.hexdigest()[:16]}.pkl"


@functools.lru_cache(maxsize=1)
def load_library() -> Library:
    """Load and cut out every asset (about 15 s the first time; then from the disk cache and memory)."""
    cache = _cache_file()
    if cache is not None and cache.is_file():
        try:
            with cache.open("rb") as f:
                cached = pickle.load(f)  # our own cache file, written below
            if isinstance(cached, Library):
                return cached
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            log.warning("scene asset cache %s is unreadable: rebuilding it", cache)
    library = _build_library()
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                pickle.dump(library, f, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(cache)
        except OSError as exc:
            log.info("scene asset cache not written (%s)", exc)
    return library


def _build_library() -> Library:
    frames = _read_vtest()
    median = np.median(np.stack(frames[::3]), axis=0).astype(np.uint8)
    walkers = _walkers(frames, median)
    if not walkers:
        raise AssetError("no pedestrian could be cut out of vtest.avi")
    vehicles = _vehicle_sprites()
    van_sprite = grabcut_sprite(median, (541, 34, 605, 86), "van", "car")
    vehicles.append(van_sprite)
    sources = [str(media_path("vtest.avi"))]
    sources += [str(p) for p in (media_path("dog.jpg"), media_path("bus.jpg"), media_path("horses.jpg")) if p]
    vtest_objects = tuple((label, (float(b[0]), float(b[1]), float(b[2]), float(b[3]))) for label, b in VTEST_OBJECTS)
    horses = _read_image("horses.jpg")
    return Library(
        backgrounds={"vtest": median, "field": _field_background(horses, median)},
        background_objects={"vtest": vtest_objects, "field": ()},
        vehicles=tuple(vehicles),
        walkers=tuple(tuple(w) for w in walkers),
        sources=tuple(sources),
    )


def library_fingerprint(library: Library) -> str:
    """A short hash of the assets, so labels record exactly which imagery a clip was made from."""
    digest = hashlib.sha256()
    for name in sorted(library.backgrounds):
        digest.update(library.backgrounds[name].tobytes())
    for sprite in library.vehicles:
        digest.update(sprite.rgba.tobytes())
    digest.update(str(len(library.walkers)).encode())
    return f"v{ASSETS_VERSION}-{digest.hexdigest()[:12]}"
