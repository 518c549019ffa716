"""Render scene scripts into labelled clips (video.mp4 + labels.json [+ thermal.npy]) and YOLO datasets."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.core import Frame
from detectors.models.actors import Drawn, Dropped, Mover, polygon_mask
from detectors.models.assets import SCENE_H, SCENE_W, Box, Library, library_fingerprint, load_library
from detectors.models.labels import (
    SCENE_CLASSES,
    THERMAL_FILE,
    VIDEO_FILE,
    ClipLabels,
    EventLabel,
    FrameLabel,
    ObjectLabel,
    write_labels,
)
from detectors.models.render import Layer, apply_light, sensor_noise, shake
from detectors.models.scenes import KINDS, Script, ThermalScript, background_labels, build_script

log = logging.getLogger(__name__)

THERMAL_W, THERMAL_H = 160, 120
MIN_VISIBLE = 0.3  # objects hidden more than this are not labelled in that frame


@dataclass(frozen=True, slots=True)
class RenderedFrame:
    """One rendered frame with its labels."""

    image: Frame
    label: FrameLabel
    thermal: np.ndarray | None


def _gain(keys: list[tuple[float, float]], t: float) -> float:
    times = [k[0] for k in keys]
    return float(np.interp(t, times, [k[1] for k in keys]))


def _shake_offset(script: Script, rng: np.random.Generator, t: float) -> tuple[float, float]:
    for start, end, amplitude in script.shakes:
        if start <= t <= end:
            return (float(rng.uniform(-amplitude, amplitude)), float(rng.uniform(-amplitude, amplitude)))
    return (0.0, 0.0)


def _normalised(box: Box, dx: float, dy: float) -> Box | None:
    x1, y1 = max(0.0, box[0] + dx), max(0.0, box[1] + dy)
    x2, y2 = min(float(SCENE_W), box[2] + dx), min(float(SCENE_H), box[3] + dy)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return (x1 / SCENE_W, y1 / SCENE_H, x2 / SCENE_W, y2 / SCENE_H)


def _draw_actors(script: Script, layer: Layer, t: float) -> list[tuple[int, Drawn]]:
    drawn: list[tuple[int, Drawn]] = []
    if script.puddle is not None:
        d = script.puddle.draw(layer, t)
        if d is not None:
            drawn.append((script.puddle.id, d))
    actors: list[Mover | Dropped] = sorted([*script.movers, *script.drops], key=lambda a: a.depth(t))
    for actor in actors:
        d = actor.draw(layer, t)
        if d is not None:
            drawn.append((actor.id, d))
    if script.fire is not None:
        for d in script.fire.draw(layer, t):
            drawn.append((script.fire.id if d.label == "smoke" else script.fire.flame_id, d))
    return drawn


def render_frames(lib: Library, script: Script, fps: float, seed: int) -> Iterator[RenderedFrame]:
    """Render every frame of a script with its labels (deterministic for a given seed)."""
    rng = np.random.default_rng(seed + 7919)
    background = lib.backgrounds[script.background]
    statics = background_labels(lib, script.background)
    zone_masks = {z.name: polygon_mask(z.polygon, SCENE_W, SCENE_H) for z in script.zones}
    for index in range(int(script.duration_s * fps)):
        t = index / fps
        layer = Layer.of(background)
        drawn = _draw_actors(script, layer, t)
        shadow = None
        for cloud in script.shadows:
            s = cloud.shadow((SCENE_H, SCENE_W), t)
            shadow = s if shadow is None else np.maximum(shadow, s) if s is not None else shadow
        apply_light(layer.canvas, _gain(script.gains, t), shadow)
        dx, dy = _shake_offset(script, rng, t)
        image = shake(sensor_noise(layer.frame(), rng, script.noise_sigma), dx, dy)
        objects: list[ObjectLabel] = []
        for i, (label, box) in enumerate(statics):
            x1, y1, x2, y2 = (int(v) for v in box)
            free = float(np.mean(layer.owner[y1:y2, x1:x2] < 0))
            nbox = _normalised(box, dx, dy)
            if nbox is not None and free >= MIN_VISIBLE:
                objects.append(ObjectLabel(id=1000 + i, label=label, box=nbox, visible=round(free, 3)))
        for oid, d in drawn:
            visible = 1.0 if d.label in ("smoke", "water") else layer.visible_fraction(oid, d.pixels)
            nbox = _normalised(d.box, dx, dy)
            if nbox is not None and visible >= MIN_VISIBLE:
                objects.append(ObjectLabel(id=oid, label=d.label, box=nbox, visible=round(visible, 3)))
        wet: dict[str, float] = {}
        if script.puddle is not None:
            mask = script.puddle.mask
            for name, zmask in zone_masks.items():
                wet[name] = 0.0 if mask is None else round(float((mask[zmask] > 0.5).mean()), 4)
        thermal = _thermal(script.thermal, t, rng) if script.thermal is not None else None
        yield RenderedFrame(image, FrameLabel(index=index, t=round(t, 4), objects=objects, water_fraction=wet), thermal)


def _thermal(spec: ThermalScript, t: float, rng: np.random.Generator) -> np.ndarray:
    """A radiometric frame (degrees C, 160x120) of the same view: ambient, fire hotspot, warm object."""
    temps = spec.ambient + rng.normal(0, 0.4, spec.ambient.shape).astype(np.float32)
    yy, xx = np.mgrid[0:THERMAL_H, 0:THERMAL_W].astype(np.float32)
    sx, sy = THERMAL_W / SCENE_W, THERMAL_H / SCENE_H
    if spec.ignite_t is not None and t >= spec.ignite_t:
        grow = min(1.0, (t - spec.ignite_t) / spec.grow_s)
        radius = 1.2 + 5.0 * grow
        cx, cy = spec.source[0] * sx, spec.source[1] * sy - radius * 0.5
        d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / radius**2
        heat = (spec.peak_c * (0.4 + 0.6 * grow)) * np.exp(-d2) * rng.uniform(0.9, 1.1)
        temps = np.maximum(temps, heat.astype(np.float32))
    if spec.warm_object is not None:
        (wx, wy), temp = spec.warm_object
        d2 = ((xx - wx * sx) / 3.0) ** 2 + ((yy - wy * sy) / 2.0) ** 2
        temps = np.maximum(temps, (temp * np.exp(-d2 * 0.7)).astype(np.float32))
    return temps.astype(np.float32)


def _writer(path: Path, fps: float, codec: str) -> Callable[[Frame], None] | subprocess.Popen[bytes]:
    if codec == "h264":
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("codec h264 needs ffmpeg on PATH")
        cmd = [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{SCENE_W}x{SCENE_H}",
               "-r", f"{fps}", "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
               "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", str(max(1, round(fps))), "-bf", "0",
               "-threads", "1", str(path)]  # fmt: skip
        return subprocess.Popen(cmd, stdin=subprocess.PIPE)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (SCENE_W, SCENE_H))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path} with OpenCV's mp4v encoder")
    write: Callable[[Frame], None] = writer.write
    return write


def write_clip(out_dir: Path, kind: str, variant: str, seed: int, *, fps: float = 5.0, codec: str = "mp4v",
               frames_dir: bool = False) -> ClipLabels:  # fmt: skip
    """Render one clip into `out_dir` (video.mp4, labels.json, thermal.npy) and return its labels."""
    lib = load_library()
    script = build_script(lib, kind, variant, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    sink = _writer(out_dir / VIDEO_FILE, fps, codec)
    labels: list[FrameLabel] = []
    thermal: list[np.ndarray] = []
    try:
        for rendered in render_frames(lib, script, fps, seed):
            if isinstance(sink, subprocess.Popen):
                assert sink.stdin is not None
                sink.stdin.write(rendered.image.tobytes())
            else:
                sink(rendered.image)
            if frames_dir:
                (out_dir / "frames").mkdir(exist_ok=True)
                cv2.imwrite(str(out_dir / "frames" / f"{rendered.label.index:05d}.jpg"), rendered.image)
            labels.append(rendered.label)
            if rendered.thermal is not None:
                thermal.append(rendered.thermal)
    finally:
        if isinstance(sink, subprocess.Popen):
            assert sink.stdin is not None
            sink.stdin.close()
            sink.wait()
        else:
            release = getattr(sink, "__self__", None)
            if release is not None:
                release.release()
    if thermal:
        np.save(out_dir / THERMAL_FILE, np.stack(thermal).astype(np.float16))
    events = water_onsets(script, labels)
    clip = ClipLabels(
        clip=out_dir.name, kind=kind, variant=variant, seed=seed, fps=fps, width=SCENE_W, height=SCENE_H,
        frame_count=len(labels), thermal=THERMAL_FILE if thermal else None, classes=list(SCENE_CLASSES),
        zones=script.zones, analytics=script.analytics, assets=library_fingerprint(lib), sources=list(lib.sources),
        frames=labels, events=events,
    )  # fmt: skip
    write_labels(out_dir, clip)
    return clip


def water_onsets(script: Script, frames: list[FrameLabel]) -> list[EventLabel]:
    """Standing water starts when the true wet share first reaches the zone's min_fraction (not when it
    starts to spread); a puddle that never gets there is no event."""
    out: list[EventLabel] = []
    settings = {w["zone"]: float(w["min_fraction"]) for w in script.analytics.get("standing_water", [])}
    for event in script.events:
        if event.analytic != "standing_water":
            out.append(event)
            continue
        threshold = settings.get(event.zone, 0.0)
        over = next((f.t for f in frames if f.water_fraction.get(event.zone, 0.0) >= threshold), None)
        if over is not None:
            out.append(event.model_copy(update={"start_s": over, "milestones": {"puddle_start": event.start_s}}))
    return out


def plan(kinds: list[str], per_kind: int, seed: int) -> list[tuple[str, str, int]]:
    """(kind, variant, seed) of every clip: variants cycle, seeds derived from the base seed."""
    out = []
    for kind in kinds:
        variants = KINDS[kind]
        for i in range(per_kind):
            out.append((kind, variants[i % len(variants)], seed * 100_003 + hash_kind(kind) * 1009 + i))
    return out


def hash_kind(kind: str) -> int:
    """A stable small integer per kind (Python's hash() is salted per process)."""
    return sum(ord(c) * (i + 1) for i, c in enumerate(kind)) % 997
