"""Scripted actors of a synthetic scene: vehicles and walkers on paths, dropped garbage, smoke, puddles.

An actor draws itself for time `t` into a Layer and reports its box (pixels) and opaque pixel count,
so the scene can label it and measure how much of it others hide.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from detectors.models.assets import RGBA, Box, Sprite
from detectors.models.render import F32, Layer, Plume, flames, person_height, puddle_mask, render_water, scaled

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Drawn:
    """What an actor drew this frame."""

    box: Box
    pixels: int  # opaque pixels it owns before anything else is drawn over it
    label: str


class Polyline:
    """A path through pixel waypoints, addressed by arc length."""

    def __init__(self, points: Sequence[Point]) -> None:
        self.points: list[Point] = [(float(p[0]), float(p[1])) for p in points]
        self.lengths = [0.0]
        for a, b in zip(self.points, self.points[1:], strict=False):
            self.lengths.append(self.lengths[-1] + math.dist(a, b))

    @property
    def length(self) -> float:
        """Total length in pixels."""
        return self.lengths[-1]

    def at(self, s: float) -> Point:
        """The point at arc length `s` (clamped to the ends)."""
        s = min(max(s, 0.0), self.length)
        for i in range(1, len(self.lengths)):
            if s <= self.lengths[i] or i == len(self.lengths) - 1:
                seg = self.lengths[i] - self.lengths[i - 1]
                f = 0.0 if seg == 0 else (s - self.lengths[i - 1]) / seg
                (x1, y1), (x2, y2) = self.points[i - 1], self.points[i]
                return (x1 + f * (x2 - x1), y1 + f * (y2 - y1))
        return self.points[-1]


def keyframed(keys: Sequence[tuple[float, float]], t: float) -> tuple[float, bool]:
    """Position along a path at time t from (time, arc length) keys, eased per segment; (s, moving)."""
    if t <= keys[0][0]:
        return keys[0][1], False
    for (t1, s1), (t2, s2) in itertools.pairwise(keys):
        if t1 <= t <= t2:
            x = (t - t1) / (t2 - t1) if t2 > t1 else 1.0
            eased = x * x * (3 - 2 * x)
            return s1 + (s2 - s1) * eased, s1 != s2
    return keys[-1][1], False


def _pixels(rgba: RGBA) -> int:
    return int(np.count_nonzero(rgba[:, :, 3] > 127))


@dataclass(slots=True)
class Mover:
    """A vehicle or pedestrian following a path with keyframes; visible between its first and last key."""

    id: int
    label: str
    frames: Sequence[Sprite]
    path: Polyline
    keys: list[tuple[float, float]]
    height_factor: float  # sprite height as a multiple of a person's height at that spot
    faces_right: bool = True
    _facing_right: bool = True
    _cycle: int = 0
    _last_s: float | None = None

    def depth(self, t: float) -> float:
        """Bottom y at time t (draw far objects first)."""
        s, _ = keyframed(self.keys, t)
        return self.path.at(s)[1]

    def active(self, t: float) -> bool:
        """Whether the mover is on screen at time t."""
        return self.keys[0][0] <= t <= self.keys[-1][0]

    def draw(self, layer: Layer, t: float) -> Drawn | None:
        """Draw at time t; walk cycles advance only while moving."""
        if not self.active(t):
            return None
        s, moving = keyframed(self.keys, t)
        if self._last_s is not None:
            dx = self.path.at(s)[0] - self.path.at(self._last_s)[0]
            if abs(dx) > 0.1:
                self._facing_right = dx > 0
        if moving:
            self._cycle += 1
        self._last_s = s
        x, y = self.path.at(s)
        sprite = self.frames[self._cycle % len(self.frames)].rgba
        rgba = scaled(sprite, person_height(y) * self.height_factor, flip=self._facing_right != self.faces_right)
        box = layer.paste(rgba, x, y, self.id)
        return None if box is None else Drawn(box, _pixels(rgba), self.label)

    def ground_point(self, t: float) -> Point:
        """Where the mover stands at time t."""
        s, _ = keyframed(self.keys, t)
        return self.path.at(s)


@dataclass(slots=True)
class Dropped:
    """Garbage carried by a walker until `drop_t`, then lying still; optionally picked up at `pickup_t`."""

    id: int
    carrier: Mover
    rgba: RGBA
    drop_t: float | None  # None: carried all the way through
    pickup_t: float | None = None
    grow_s: float = 0.0  # > 0: a pile that appears over this many seconds instead of being carried
    _ground: Point | None = None

    def depth(self, t: float) -> float:
        """Bottom y at time t."""
        return self._position(t)[1] + (0.0 if self._on_ground(t) else -0.01)

    def _on_ground(self, t: float) -> bool:
        return self.drop_t is not None and t >= self.drop_t and (self.pickup_t is None or t < self.pickup_t)

    def _position(self, t: float) -> Point:
        if self._on_ground(t):
            if self._ground is None:
                x, y = self.carrier.ground_point(self.drop_t or t)
                self._ground = (x + person_height(y) * 0.35, y + 2)
            return self._ground
        x, y = self.carrier.ground_point(t)
        return (x + person_height(y) * 0.25, y - person_height(y) * 0.25)

    def draw(self, layer: Layer, t: float) -> Drawn | None:
        """Draw carried, lying, or nothing (before the carrier appears / after pick-up and exit)."""
        on_ground = self._on_ground(t)
        if not on_ground and (self.grow_s > 0 or not self.carrier.active(t)):
            return None
        x, y = self._position(t)
        height = person_height(y) * (0.32 if self.grow_s == 0 else 0.3)
        if self.grow_s > 0 and self.drop_t is not None:
            height *= 0.3 + 0.7 * min(1.0, (t - self.drop_t) / self.grow_s)
        rgba = scaled(self.rgba, height)
        box = layer.paste(rgba, x, y, self.id)
        return None if box is None else Drawn(box, _pixels(rgba), "garbage")


@dataclass(slots=True)
class Fire:
    """A field fire: a smoke plume from `ignite_t` (growing to full strength over `grow_s`) and flames."""

    id: int
    flame_id: int
    source: Point
    ignite_t: float
    grow_s: float
    flames_from: float | None
    plume: Plume
    rng: np.random.Generator
    last_alpha: F32 | None = None

    def strength(self, t: float) -> float:
        """Emission strength 0..1."""
        return 0.0 if t < self.ignite_t else min(1.0, 0.15 + (t - self.ignite_t) / self.grow_s)

    def draw(self, layer: Layer, t: float) -> list[Drawn]:
        """Step the plume one frame and draw smoke, then flames at its base; smoke is labelled where dense."""
        out: list[Drawn] = []
        self.plume.step(self.strength(t))
        alpha = self.plume.alpha(layer.owner.shape)
        self.last_alpha = alpha
        layer.blend(alpha, self.plume.colour())  # smoke is see-through: it owns no pixels
        ys, xs = np.nonzero(alpha > 0.3)
        if len(xs) > 150:  # the dense body of the plume: thin wisps at its edges do not widen the box
            x1, x2 = np.percentile(xs, [1, 99])
            y1, y2 = np.percentile(ys, [1, 99])
            out.append(Drawn((float(x1), float(y1), float(x2 + 1), float(y2 + 1)), len(xs), "smoke"))
        if self.flames_from is not None and t >= self.flames_from:
            rgba = flames(self.rng, person_height(self.source[1]) * 0.7)
            flame_box = layer.paste(rgba, self.source[0], self.source[1] + 2, self.flame_id)
            if flame_box is not None:
                out.append(Drawn(flame_box, _pixels(rgba), "fire"))
        return out


@dataclass(slots=True)
class Puddle:
    """Standing water spreading from `start_t` to full `radius` at `full_t` inside a road region."""

    id: int
    centre: Point
    radius: float
    start_t: float
    full_t: float
    region: np.ndarray
    noise: F32
    ripple: F32
    sky: np.ndarray
    mask: F32 | None = field(default=None)

    def draw(self, layer: Layer, t: float) -> Drawn | None:
        """Draw the puddle at its current size; keeps its mask for the wet-fraction ground truth."""
        if t < self.start_t:
            self.mask = None
            return None
        grow = min(1.0, (t - self.start_t) / max(self.full_t - self.start_t, 1e-6))
        self.mask = puddle_mask(self.noise, self.centre, self.radius * (0.15 + 0.85 * grow), self.region)
        ys, xs = np.nonzero(self.mask > 0.5)
        if len(xs) < 40:
            return None
        render_water(layer, self.mask, self.sky, self.ripple, self.id)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        return Drawn(box, len(xs), "water")


@dataclass(slots=True)
class CloudShadow:
    """A soft moving shadow (a cloud or a tree in the wind): the classic false wet-road look."""

    start_t: float
    speed: float  # pixels per second, left to right
    radius: float
    y: float

    def shadow(self, shape: tuple[int, int], t: float) -> F32 | None:
        """Darkening map 0..1 or None when off screen."""
        h, w = shape
        x = -self.radius + (t - self.start_t) * self.speed
        if t < self.start_t or x - self.radius > w:
            return None
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d2 = ((xx - x) / self.radius) ** 2 + ((yy - self.y) / (self.radius * 0.6)) ** 2
        return np.asarray(np.exp(-d2 * 1.5), np.float32)


def polygon_mask(polygon: Sequence[Point], width: int, height: int) -> np.ndarray:
    """Boolean mask of a normalised polygon at pixel resolution."""
    pts = np.asarray([[x * width, y * height] for x, y in polygon], np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)
