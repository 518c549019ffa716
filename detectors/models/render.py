"""Compositing primitives for synthetic scenes: sprites, procedural garbage, smoke, flames, puddles, light, shake.

Every function is deterministic given its numpy Generator. Pixel coordinates are 640x480 scene pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors.core import Frame
from detectors.models.assets import RGBA, Box

F32 = npt.NDArray[np.float32]
Canvas = npt.NDArray[np.float32]  # H x W x 3 float BGR, composited in float then quantised once


def person_height(y_bottom: float) -> float:
    """Height in pixels of a 1.7 m person whose feet are at `y_bottom` (fitted on vtest's pedestrians)."""
    return max(12.0, 0.26 * y_bottom + 12.0)


def scaled(rgba: RGBA, height: float, flip: bool = False) -> RGBA:
    """The sprite resized to `height` pixels tall (aspect kept), mirrored when `flip`."""
    h, w = rgba.shape[:2]
    new_h = max(2, round(height))
    new_w = max(2, round(w * new_h / h))
    interp = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR
    out = cv2.resize(rgba, (new_w, new_h), interpolation=interp)
    return np.ascontiguousarray(out[:, ::-1] if flip else out, dtype=np.uint8)


@dataclass(slots=True)
class Layer:
    """The composited frame plus an owner map (which object id shows at each pixel) for visibility."""

    canvas: Canvas
    owner: npt.NDArray[np.int16]

    @classmethod
    def of(cls, background: Frame) -> Layer:
        """A fresh layer over a background frame."""
        return cls(background.astype(np.float32), np.full(background.shape[:2], -1, np.int16))

    def paste(self, rgba: RGBA, x_center: float, y_bottom: float, owner: int, opacity: float = 1.0) -> Box | None:
        """Alpha-blend `rgba` with its bottom centre at (x_center, y_bottom); returns its clipped box."""
        h, w = rgba.shape[:2]
        x1 = round(x_center - w / 2)
        y1 = round(y_bottom - h)
        return self.paste_at(rgba, x1, y1, owner, opacity)

    def paste_at(self, rgba: RGBA, x1: int, y1: int, owner: int, opacity: float = 1.0) -> Box | None:
        """Alpha-blend `rgba` with its top-left corner at (x1, y1); returns the clipped box or None."""
        height, width = self.owner.shape
        h, w = rgba.shape[:2]
        cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(width, x1 + w), min(height, y1 + h)
        if cx1 >= cx2 or cy1 >= cy2:
            return None
        sub = rgba[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
        alpha = sub[:, :, 3:4].astype(np.float32) * (opacity / 255.0)
        region = self.canvas[cy1:cy2, cx1:cx2]
        region *= 1.0 - alpha
        region += sub[:, :, :3].astype(np.float32) * alpha
        self.owner[cy1:cy2, cx1:cx2][alpha[:, :, 0] > 0.5] = owner
        return (float(cx1), float(cy1), float(cx2), float(cy2))

    def blend(self, alpha: F32, colour: F32 | tuple[float, float, float], owner: int | None = None) -> None:
        """Blend a full-frame alpha map (0..1) of a colour (or a colour image) over the canvas."""
        a = alpha[:, :, None]
        col = np.asarray(colour, np.float32)
        self.canvas *= 1.0 - a
        self.canvas += col * a
        if owner is not None:
            self.owner[alpha > 0.35] = owner

    def visible_fraction(self, owner: int, own_pixels: int) -> float:
        """Share of an object's own opaque pixels that are still on top after everything was drawn."""
        if own_pixels <= 0:
            return 0.0
        return min(1.0, float(np.count_nonzero(self.owner == owner)) / own_pixels)

    def frame(self) -> Frame:
        """The composited frame as uint8 BGR."""
        return np.asarray(np.clip(self.canvas + 0.5, 0, 255), np.uint8)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> F32:
    """Low-frequency noise in 0..1 (blurred uniform noise), `scale` pixels per feature."""
    h, w = shape
    small = rng.random((max(2, int(h / scale) + 2), max(2, int(w / scale) + 2))).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    big -= big.min()
    return (big / max(float(big.max()), 1e-6)).astype(np.float32)


_BAG_COLOURS = ((25, 25, 28), (40, 70, 30), (150, 80, 20), (225, 225, 225), (30, 30, 160), (20, 110, 170))


def garbage_bag(rng: np.random.Generator, height: float) -> RGBA:
    """A tied plastic rubbish bag: lumpy outline, shading and a highlight."""
    h = max(8, round(height))
    w = max(8, round(h * rng.uniform(0.8, 1.25)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w / 2, h * 0.58
    angle = np.arctan2(yy - cy, xx - cx)
    lumps = 1.0 + 0.08 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.05 * np.sin(5 * angle + rng.uniform(0, 6))
    r = np.sqrt(((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h * 0.42)) ** 2) / lumps
    knot = ((xx - cx) / (w * 0.12)) ** 2 + ((yy - h * 0.12) / (h * 0.14)) ** 2 < 1
    inside = (r < 1.0) | knot
    base = np.asarray(_BAG_COLOURS[int(rng.integers(len(_BAG_COLOURS)))], np.float32)
    shade = 0.55 + 0.55 * (1 - r.clip(0, 1)) - 0.25 * (yy / h)
    shine = np.exp(-(((xx - cx * 0.75) ** 2 + (yy - cy * 0.7) ** 2) / (0.02 * h * w))) * 70
    bgr = np.clip(base[None, None, :] * shade[:, :, None] + shine[:, :, None] + 18, 0, 255)
    alpha = cv2.GaussianBlur(inside.astype(np.float32), (3, 3), 0) * 255
    return np.dstack([bgr, alpha]).astype(np.uint8)


def garbage_pile(rng: np.random.Generator, width: float) -> RGBA:
    """A dumped pile: overlapping bags, boxes and rubble of many colours, wider than tall."""
    w = max(12, round(width))
    h = max(8, round(w * rng.uniform(0.4, 0.6)))
    canvas = np.zeros((h, w, 4), np.float32)
    for _ in range(int(rng.integers(6, 13))):
        if rng.random() < 0.5:
            piece = garbage_bag(rng, h * rng.uniform(0.35, 0.7)).astype(np.float32)
        else:
            ph, pw = int(h * rng.uniform(0.2, 0.45)) + 2, int(w * rng.uniform(0.1, 0.3)) + 2
            colour = rng.uniform(40, 220, 3)
            tex = smooth_noise(rng, (ph, pw), 3.0)[:, :, None] * 60 - 30
            piece = np.dstack([np.clip(colour + tex, 0, 255), np.full((ph, pw), 255.0)]).astype(np.float32)
        ph, pw = piece.shape[:2]
        if ph >= h or pw >= w:
            continue
        x = int(rng.integers(0, w - pw))
        y = int(rng.integers(max(0, int(h * 0.25)), h - ph + 1))
        a = piece[:, :, 3:4] / 255.0
        canvas[y : y + ph, x : x + pw, :3] = canvas[y : y + ph, x : x + pw, :3] * (1 - a) + piece[:, :, :3] * a
        canvas[y : y + ph, x : x + pw, 3:4] = np.maximum(canvas[y : y + ph, x : x + pw, 3:4], piece[:, :, 3:4])
    return canvas.clip(0, 255).astype(np.uint8)


@dataclass(slots=True)
class Particle:
    """One smoke puff: position, radius, opacity, age."""

    x: float
    y: float
    r: float
    a: float
    vx: float
    vy: float


class Plume:
    """A rising smoke plume from a ground source: puffs rise, bend with the wind, widen and thin out."""

    def __init__(self, rng: np.random.Generator, x: float, y: float, scale: float, shade: float) -> None:
        self.rng = rng
        self.x, self.y, self.scale = x, y, scale
        self.shade = shade  # 0 dark smoke .. 1 white smoke
        self.wind = rng.uniform(0.3, 1.0) * (1 if rng.random() < 0.5 else -1) * scale * 0.012
        self.particles: list[Particle] = []
        self.texture = smooth_noise(rng, (480, 640), 10.0)
        self.frame = 0

    def step(self, strength: float) -> None:
        """Advance one frame; `strength` 0..1 sets how many puffs are emitted and how dense they are."""
        self.frame += 1
        for p in self.particles:
            p.vx += self.wind
            p.x += p.vx
            p.y += p.vy
            p.vy *= 0.985
            p.r *= 1.03
            p.a *= 0.95
        self.particles = [p for p in self.particles if p.a > 0.03 and p.y + p.r > 0]
        rng, s = self.rng, self.scale
        for _ in range(round(5 * strength)):
            self.particles.append(
                Particle(self.x + rng.normal(0, s * 0.06), self.y - s * 0.1, s * rng.uniform(0.12, 0.2),
                         min(1.0, 0.4 + 0.55 * strength) * rng.uniform(0.7, 1.0), rng.normal(0, s * 0.01),
                         -s * rng.uniform(0.14, 0.2)),
            )  # fmt: skip

    def alpha(self, shape: tuple[int, int]) -> F32:
        """The plume's opacity map (0..1), textured with drifting noise (rendered at quarter size)."""
        h, w = shape
        small = np.zeros((h // 4, w // 4), np.float32)
        yy, xx = np.mgrid[0 : h // 4, 0 : w // 4].astype(np.float32)
        for p in self.particles:
            r = p.r / 4
            x1, x2 = int(max(0, p.x / 4 - 2 * r)), int(min(w // 4, p.x / 4 + 2 * r + 1))
            y1, y2 = int(max(0, p.y / 4 - 2 * r)), int(min(h // 4, p.y / 4 + 2 * r + 1))
            if x1 >= x2 or y1 >= y2:
                continue
            d2 = (xx[y1:y2, x1:x2] - p.x / 4) ** 2 + (yy[y1:y2, x1:x2] - p.y / 4) ** 2
            puff = p.a * np.exp(-d2 / (2 * (r * 0.6) ** 2))
            small[y1:y2, x1:x2] = 1 - (1 - small[y1:y2, x1:x2]) * (1 - puff)
        full = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        texture = np.roll(self.texture[:h, :w], -3 * self.frame, axis=0)
        return (full * (0.55 + 0.6 * texture)).clip(0, 0.95).astype(np.float32)

    def colour(self) -> tuple[float, float, float]:
        """BGR colour of the smoke."""
        g = 90 + 140 * self.shade
        return (g, g, g * 0.98)


def flames(rng: np.random.Generator, height: float) -> RGBA:
    """A flickering fire: a noisy heat field, narrow at the top, coloured red -> orange -> yellow-white."""
    h = max(8, round(height * rng.uniform(0.8, 1.2)))
    w = max(8, round(height * 0.9))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx - w / 2) / (w / 2)
    v = yy / h
    noise = smooth_noise(rng, (h, w), max(2.0, h / 6))
    profile = np.maximum(v**0.9 * (0.45 + 0.55 * noise), 1e-3)
    heat = (1 - np.abs(u) / profile).clip(0, 1) * (v * 1.3 - 0.15 + 0.6 * (noise - 0.5)).clip(0, 1)
    heat = cv2.GaussianBlur(heat.astype(np.float32), (5, 5), 0)
    heat /= max(float(heat.max()), 1e-6)
    bgr = np.stack([heat**3 * 190, 50 + heat * 200, 190 + heat * 65], axis=2)
    alpha = (heat * 2.2).clip(0, 1) * 255
    return np.dstack([bgr, alpha]).clip(0, 255).astype(np.uint8)


def puddle_mask(noise: F32, centre: tuple[float, float], radius: float, region: npt.NDArray[np.bool_]) -> F32:
    """Soft water mask (0..1) of a puddle of `radius` pixels, irregular edge from `noise`, inside `region`."""
    h, w = noise.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Flattened vertically: a puddle on the ground seen at an oblique angle.
    d = np.sqrt((xx - centre[0]) ** 2 + ((yy - centre[1]) * 2.2) ** 2) / max(radius, 1.0)
    field = 1.0 - d + 0.45 * (noise - 0.5)
    mask = np.clip(field * 6.0, 0, 1) * region
    return np.asarray(mask, np.float32)


def render_water(layer: Layer, mask: F32, sky: Frame, ripple: F32, owner: int) -> None:
    """Draw standing water: darker, cooler road, a wavy reflection of the scene's upper part, soft edge."""
    h, w = mask.shape
    reflection = cv2.resize(cv2.flip(sky, 0), (w, h)).astype(np.float32)
    shift = (ripple * 6 - 3).astype(np.float32)
    map_x = (np.tile(np.arange(w, dtype=np.float32), (h, 1)) + shift).astype(np.float32)
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    reflection = np.asarray(
        cv2.remap(reflection, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), np.float32
    )
    wet = layer.canvas * np.asarray([0.62, 0.58, 0.55], np.float32) + np.asarray([18, 10, 4], np.float32)
    water = 0.55 * wet + 0.45 * reflection * 0.8
    a = mask[:, :, None]
    layer.canvas *= 1 - a
    layer.canvas += water * a
    layer.owner[mask > 0.5] = owner


def apply_light(frame_f: Canvas, gain: float, shadow: F32 | None = None) -> None:
    """Global illumination change (gain) and an optional moving soft shadow map (0..1 darkening)."""
    frame_f *= gain
    if shadow is not None:
        frame_f *= (1.0 - 0.45 * shadow)[:, :, None]


def shake(frame: Frame, dx: float, dy: float) -> Frame:
    """Translate the frame (camera shake), replicating the border."""
    if dx == 0 and dy == 0:
        return frame
    matrix = np.asarray([[1, 0, dx], [0, 1, dy]], np.float32)
    h, w = frame.shape[:2]
    return np.asarray(cv2.warpAffine(frame, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE), np.uint8)


def sensor_noise(frame: Frame, rng: np.random.Generator, sigma: float) -> Frame:
    """Add camera sensor noise."""
    if sigma <= 0:
        return frame
    noisy = frame.astype(np.float32) + rng.normal(0, sigma, frame.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def smoothstep(x: float) -> float:
    """Ease-in-out 0..1."""
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def clamp_box(box: Box, width: int, height: int) -> Box | None:
    """The box clipped to the frame, or None if nothing is left."""
    x1, y1, x2, y2 = max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3])
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return (x1, y1, x2, y2)


def angle_towards(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Direction from a to b in radians."""
    return math.atan2(b[1] - a[1], b[0] - a[0])
