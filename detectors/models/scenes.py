"""Scene scripts: who moves where and when, for each analytic, with distractors and the true events.

Kinds and variants (positives first):
- parking: complied, violation | brief_stop, traffic (no parking at all)
- dumping: bag, pile | carry_through, pick_up
- smoke: smoke, smoke_fire | clear (lighting, shake, a warm static object on the thermal view)
- water: puddle | dry (a cloud shadow and traffic cross the road zone)
Times are scaled down from real deployments (warn after 8 s, grace 12 s...) so clips stay short;
the clip's `analytics` section carries the settings its events were labelled for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.analytics.common import point_in_polygon
from detectors.models.actors import CloudShadow, Dropped, Fire, Mover, Point, Polyline, Puddle, polygon_mask
from detectors.models.assets import SCENE_H, SCENE_W, Box, Library, Sprite
from detectors.models.labels import EventLabel, ZoneLabel
from detectors.models.render import Plume, garbage_bag, garbage_pile, person_height, smooth_noise

KINDS: dict[str, tuple[str, ...]] = {
    "parking": ("complied", "violation", "brief_stop", "traffic"),
    "dumping": ("bag", "pile", "carry_through", "pick_up"),
    "smoke": ("smoke", "smoke_fire", "clear"),
    "water": ("puddle", "dry"),
}

PARKING = {"stationary_s": 3.0, "warn_after_s": 8.0, "grace_s": 12.0, "occlusion_s": 8.0}
DUMPING = {"static_s": 6.0, "owner_window_s": 20.0, "clear_s": 6.0, "short_tau_s": 2.0, "long_tau_s": 120.0}
SMOKE = {"persist_frames": 4, "window_frames": 6, "clear_s": 10.0}
THERMAL = {"threshold_c": 80.0, "fire_c": 200.0, "growth_per_min": 0.5, "persist_frames": 3}
WATER = {"min_fraction": 0.15, "clear_fraction": 0.05, "check_interval_s": 2.0, "persist_checks": 3}

# Ground paths in vtest's view (pixels of 640x480): the road's middle lane, a near and a far lane.
MAIN_LANE = [(-170, 192), (150, 205), (330, 226), (480, 256), (640, 300), (830, 355)]
NEAR_LANE = [(-280, 214), (150, 234), (330, 258), (480, 290), (640, 336), (850, 396)]
FAR_LANE = [(-160, 176), (150, 186), (330, 204), (470, 226), (560, 190), (600, 120), (640, 60)]
NO_PARKING = [(220 / 640, 190 / 480), (480 / 640, 230 / 480), (480 / 640, 282 / 480), (220 / 640, 236 / 480)]
LAWN = [(15 / 640, 300 / 480), (330 / 640, 335 / 480), (400 / 640, 478 / 480), (15 / 640, 478 / 480)]
ROAD = [(378 / 640, 185 / 480), (520 / 640, 172 / 480), (630 / 640, 322 / 480), (400 / 640, 262 / 480)]
ROAD_SURFACE = [(0, 158), (250, 163), (560, 108), (640, 96), (640, 405), (560, 372), (300, 258), (0, 200)]
LAMP_POST = (340, 0, 373, 335)  # x1, y1, x2, y2: water is never drawn over the post and its sign
FIELD = [(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)]


@dataclass
class Script:
    """A scene ready to render: background, actors, distractors, zones, analytics and true events."""

    kind: str
    variant: str
    background: str
    duration_s: float
    movers: list[Mover] = field(default_factory=list)
    drops: list[Dropped] = field(default_factory=list)
    fire: Fire | None = None
    puddle: Puddle | None = None
    shadows: list[CloudShadow] = field(default_factory=list)
    gains: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 1.0)])
    shakes: list[tuple[float, float, float]] = field(default_factory=list)  # (from, to, amplitude px)
    zones: list[ZoneLabel] = field(default_factory=list)
    analytics: dict[str, Any] = field(default_factory=dict)
    events: list[EventLabel] = field(default_factory=list)
    thermal: ThermalScript | None = None
    noise_sigma: float = 2.0


@dataclass
class ThermalScript:
    """What the radiometric view shows: ambient field, a fire hotspot, a warm static object."""

    ambient: np.ndarray  # (h, w) degrees C
    source: Point  # fire position (scene pixels)
    ignite_t: float | None
    peak_c: float
    grow_s: float
    warm_object: tuple[Point, float] | None = None  # position, temperature (not growing)


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _lighting(rng: np.random.Generator, duration: float) -> list[tuple[float, float]]:
    """Gain keyframes: a few slow cloud/sun changes."""
    keys = [(0.0, _uniform(rng, 0.9, 1.1))]
    t = _uniform(rng, 3, 10)
    while t < duration:
        keys.append((t, keys[-1][1]))
        keys.append((t + _uniform(rng, 1.5, 4), _uniform(rng, 0.72, 1.22)))
        t += _uniform(rng, 6, 18)
    return keys


def _shakes(rng: np.random.Generator, duration: float) -> list[tuple[float, float, float]]:
    out = []
    for _ in range(int(rng.integers(0, 3))):
        start = _uniform(rng, 0, max(1.0, duration - 2))
        out.append((start, start + _uniform(rng, 0.6, 2.0), _uniform(rng, 1.5, 4.0)))
    return out


def _walker(
    lib: Library, rng: np.random.Generator, oid: int, points: list[Point], keys: list[tuple[float, float]]
) -> Mover:
    cycle = lib.walkers[int(rng.integers(len(lib.walkers)))]
    return Mover(oid, "person", cycle, Polyline(points), keys, 1.0)


def _vehicle(lib: Library, rng: np.random.Generator, allow_bus: bool = False) -> tuple[Sprite, float, bool]:
    """A vehicle sprite, its height as a multiple of a person's, and whether it faces right."""
    choices = [s for s in lib.vehicles if allow_bus or s.name != "bus"]
    sprite = choices[int(rng.integers(len(choices)))]
    factor = {"pickup": 1.05, "bus": 1.9, "van": 1.25}.get(sprite.name, 1.0) * _uniform(rng, 0.92, 1.08)
    return sprite, factor, sprite.name != "bus"


def _pass_through(lib: Library, rng: np.random.Generator, oid: int, lane: Sequence[Point], *, t0: float, speed: float,
                  allow_bus: bool = False) -> Mover:  # fmt: skip
    points = lane if rng.random() < 0.5 else lane[::-1]
    path = Polyline(points)
    sprite, factor, right = _vehicle(lib, rng, allow_bus)
    return Mover(oid, sprite.label, [sprite], path, [(t0, 0.0), (t0 + path.length / speed, path.length)], factor, right)


def _crossing_walkers(
    lib: Library, rng: np.random.Generator, first_id: int, count: int, duration: float
) -> list[Mover]:
    out = []
    for i in range(count):
        a = (_uniform(rng, -20, 120), _uniform(rng, 200, 470))
        b = (_uniform(rng, 450, 660), _uniform(rng, 150, 470))
        if rng.random() < 0.5:
            a, b = b, a
        t0 = _uniform(rng, 0, max(1.0, duration - 8))
        path = Polyline([a, b])
        out.append(
            _walker(
                lib, rng, first_id + i, [a, b], [(t0, 0.0), (t0 + path.length / _uniform(rng, 22, 40), path.length)]
            )
        )
    return out


def _s_at_x(path: Polyline, x: float) -> float:
    """Arc length where the path crosses the vertical line at x."""
    samples = np.linspace(0, path.length, 800)
    return float(samples[int(np.argmin([abs(path.at(float(s))[0] - x) for s in samples]))])


def parking(lib: Library, rng: np.random.Generator, variant: str) -> Script:
    """A vehicle drives into the no-parking zone and stops (or not), with traffic, a bus and walkers."""
    cfg = PARKING
    warn, grace, still = cfg["warn_after_s"], cfg["grace_s"], cfg["stationary_s"]
    dwell = {
        "complied": _uniform(rng, warn + 2.5, warn + grace - 3.0),
        "violation": warn + grace + _uniform(rng, 4.0, 10.0),
        "brief_stop": _uniform(rng, 0.8, still - 1.4),
    }.get(variant, 0.0)
    lane = MAIN_LANE if rng.random() < 0.5 else MAIN_LANE[::-1]
    path = Polyline(lane)
    stop_s = _s_at_x(path, _uniform(rng, 290, 410)) if variant != "traffic" else 0.0
    t_enter = _uniform(rng, 0.5, 3.0)
    t_stop = t_enter + stop_s / _uniform(rng, 70, 100)
    t_go = t_stop + dwell
    t_gone = t_go + (path.length - stop_s) / _uniform(rng, 70, 100)
    # After it drove off, long enough for a departure nobody saw (detector lost it) to time out too.
    after = max(t_gone, t_go + cfg["occlusion_s"] + 2.0) if dwell >= still else t_gone
    duration = (after if variant != "traffic" else 30.0) + _uniform(rng, 1.0, 3.0)
    script = Script(
        "parking", variant, "vtest", duration, gains=_lighting(rng, duration), shakes=_shakes(rng, duration)
    )
    script.zones = [ZoneLabel(name="no_parking", polygon=NO_PARKING, kind="no_parking")]
    script.analytics = {"illegal_parking": [{"zone": "no_parking", **cfg}]}
    if variant != "traffic":
        sprite, factor, right = _vehicle(lib, rng)
        keys = [(t_enter, 0.0), (t_stop, stop_s), (t_go, stop_s), (t_gone, path.length)]
        script.movers.append(Mover(1, sprite.label, [sprite], path, keys, factor, right))
        if dwell >= still:
            outcome = "left" if dwell < warn or dwell >= warn + grace else "complied"
            milestones = {"dwelling": t_stop + still, "end": t_go}
            if dwell >= warn:
                milestones["warning"] = t_stop + warn
            if dwell >= warn + grace:
                milestones["violation"] = t_stop + warn + grace
            script.events.append(EventLabel(analytic="illegal_parking", zone="no_parking", object_id=1,
                                             label=sprite.label, start_s=t_stop, end_s=t_go, outcome=outcome,
                                             dwell_s=dwell, milestones=milestones))  # fmt: skip
        if dwell > 4 and rng.random() < 0.7:  # a bus slowly passes in front of the parked vehicle
            t_bus = t_stop + _uniform(rng, 0.5, max(1.0, dwell - 6))
            script.movers.append(
                _pass_through(lib, rng, 2, NEAR_LANE, t0=t_bus, speed=_uniform(rng, 45, 70), allow_bus=True)
            )
    for i in range(int(rng.integers(1, 4))):
        lane_i = FAR_LANE if rng.random() < 0.5 else NEAR_LANE
        t0 = _uniform(rng, 0, max(1.0, duration - 10))
        script.movers.append(
            _pass_through(lib, rng, 10 + i, lane_i, t0=t0, speed=_uniform(rng, 80, 140), allow_bus=rng.random() < 0.4)
        )
    script.movers += _crossing_walkers(lib, rng, 20, int(rng.integers(1, 4)), duration)
    return script


def dumping(lib: Library, rng: np.random.Generator, variant: str) -> Script:
    """A person walks onto the lawn and leaves a bag or a pile (or carries it on, or picks it back up)."""
    cfg = DUMPING
    drop = (_uniform(rng, 110, 270), _uniform(rng, 360, 450))  # the bag lands right of the feet, inside the lawn
    start = (-30.0, _uniform(rng, 330, 460)) if rng.random() < 0.5 else (_uniform(rng, 420, 640), 500.0)
    end = (_uniform(rng, 450, 660), 490.0) if start[0] < 0 else (-40.0, _uniform(rng, 330, 460))
    speed = _uniform(rng, 25, 40)
    t_in = _uniform(rng, 1.0, 4.0)
    t_arrive = t_in + math.dist(start, drop) / speed
    pause = _uniform(rng, 2.0, 4.0)
    t_drop = t_arrive + pause * 0.5
    t_exit = t_arrive + pause + math.dist(drop, end) / speed
    duration = max(t_exit, t_drop + cfg["static_s"]) + _uniform(rng, 8.0, 14.0)
    if variant == "carry_through":
        keys = [(t_in, 0.0), (t_in + math.dist(start, end) / speed, math.dist(start, end))]
        walker = _walker(lib, rng, 1, [start, end], keys)
    else:
        d1 = math.dist(start, drop)
        keys = [(t_in, 0.0), (t_arrive, d1), (t_arrive + pause, d1), (t_exit, d1 + math.dist(drop, end))]
        walker = _walker(lib, rng, 1, [start, drop, end], keys)
    script = Script(
        "dumping", variant, "vtest", duration, gains=_lighting(rng, duration), shakes=_shakes(rng, duration)
    )
    script.movers.append(walker)
    script.zones = [ZoneLabel(name="lawn", polygon=LAWN, kind="watched")]
    script.analytics = {"dumping": [{"zone": "lawn", **cfg}]}
    if variant == "pile":
        script.drops.append(Dropped(2, walker, garbage_pile(rng, 160), t_drop, grow_s=1.5))
    elif variant == "pick_up":
        pickup = t_drop + _uniform(rng, 1.5, cfg["static_s"] - 2.5)
        script.drops.append(Dropped(2, walker, garbage_bag(rng, 120), t_drop, pickup_t=pickup))
        script.movers[0].keys[2] = (max(pickup + 0.4, t_arrive + pause), script.movers[0].keys[2][1])
        script.movers[0].keys[3] = (
            script.movers[0].keys[2][0] + math.dist(drop, end) / speed,
            script.movers[0].keys[3][1],
        )
    else:
        script.drops.append(Dropped(2, walker, garbage_bag(rng, 120), None if variant == "carry_through" else t_drop))
    landing = (drop[0] + person_height(drop[1]) * 0.35, drop[1] + 2)
    inside = point_in_polygon(landing[0] / SCENE_W, landing[1] / SCENE_H, LAWN)
    if variant in ("bag", "pile") and inside:
        script.events.append(EventLabel(analytic="dumping", zone="lawn", object_id=2, label="garbage", start_s=t_drop,
                                         milestones={"start": t_drop + cfg["static_s"]}))  # fmt: skip
    script.movers += _crossing_walkers(lib, rng, 20, int(rng.integers(0, 3)), duration)
    return script


def smoke(lib: Library, rng: np.random.Generator, variant: str) -> Script:
    """Smoke (and flames) rise from a point of the field; thermal frames show the growing hotspot."""
    duration = _uniform(rng, 30, 40)
    source = (_uniform(rng, 120, 520), _uniform(rng, 260, 400))
    ignite = _uniform(rng, 3.0, 8.0) if variant != "clear" else None
    script = Script("smoke", variant, "field", duration, gains=_lighting(rng, duration), shakes=_shakes(rng, duration))
    script.zones = [ZoneLabel(name="field", polygon=FIELD, kind="field")]
    script.analytics = {"smoke_fire": [{"zone": None, **SMOKE, "thermal": THERMAL}]}
    if ignite is not None:
        plume = Plume(rng, source[0], source[1], 0.2 * source[1], _uniform(rng, 0.3, 1.0))
        flames_from = ignite + _uniform(rng, 0, 3) if variant == "smoke_fire" else None
        script.fire = Fire(5, 6, source, ignite, _uniform(rng, 6, 12), flames_from, plume, rng)
        script.events.append(EventLabel(analytic="smoke_fire", zone="", label="smoke", start_s=ignite))
    ambient = 14 + 8 * smooth_noise(rng, (120, 160), 30.0)
    warm = None
    if variant == "clear" or rng.random() < 0.4:
        warm = ((_uniform(rng, 60, 580), _uniform(rng, 250, 450)), _uniform(rng, 85, 140))
    peak = _uniform(rng, 250, 450) if variant == "smoke_fire" else _uniform(rng, 95, 160)
    script.thermal = ThermalScript(ambient.astype(np.float32), source, ignite, peak, _uniform(rng, 8, 15), warm)
    script.movers += _crossing_walkers(lib, rng, 20, int(rng.integers(0, 2)), duration)
    return script


def water(lib: Library, rng: np.random.Generator, variant: str) -> Script:
    """A puddle spreads across the road zone (or the road stays dry under a passing cloud shadow)."""
    duration = _uniform(rng, 35, 45)
    script = Script("water", variant, "vtest", duration, gains=_lighting(rng, duration), shakes=_shakes(rng, duration))
    script.zones = [ZoneLabel(name="road", polygon=ROAD, kind="road")]
    script.analytics = {"standing_water": [{"zone": "road", **WATER}]}
    road = polygon_mask([(x / SCENE_W, y / SCENE_H) for x, y in ROAD_SURFACE], SCENE_W, SCENE_H)
    road[LAMP_POST[1] : LAMP_POST[3], LAMP_POST[0] : LAMP_POST[2]] = False
    if variant == "puddle":
        start = _uniform(rng, 2.0, 6.0)
        centre = (_uniform(rng, 470, 530), _uniform(rng, 225, 255))
        script.puddle = Puddle(3, centre, _uniform(rng, 80, 120), start, start + _uniform(rng, 12, 20), road,
                               smooth_noise(rng, (SCENE_H, SCENE_W), 40.0), smooth_noise(rng, (SCENE_H, SCENE_W), 6.0),
                               lib.backgrounds["vtest"][0:200])  # fmt: skip
        script.events.append(
            EventLabel(analytic="standing_water", zone="road", object_id=3, label="water", start_s=start)
        )
    if variant == "dry" or rng.random() < 0.5:
        script.shadows.append(CloudShadow(_uniform(rng, 0, 15), _uniform(rng, 25, 50), _uniform(rng, 110, 170), 250.0))
    for i in range(int(rng.integers(1, 4))):
        t0 = _uniform(rng, 0, max(1.0, duration - 10))
        script.movers.append(
            _pass_through(
                lib, rng, 10 + i, MAIN_LANE, t0=t0, speed=_uniform(rng, 80, 140), allow_bus=rng.random() < 0.3
            )
        )
    return script


BUILDERS = {"parking": parking, "dumping": dumping, "smoke": smoke, "water": water}


def build_script(lib: Library, kind: str, variant: str, seed: int) -> Script:
    """The scripted scene for kind/variant with its own random stream."""
    if kind not in BUILDERS or variant not in KINDS[kind]:
        raise ValueError(f"unknown scene {kind}/{variant}; kinds: {KINDS}")
    return BUILDERS[kind](lib, np.random.default_rng(seed), variant)


def background_labels(lib: Library, name: str) -> list[tuple[str, Box]]:
    """Static labelled objects of a background."""
    return list(lib.background_objects.get(name, ()))
