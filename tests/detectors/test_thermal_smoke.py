"""Thermal hotspot tables and smoke_fire sequences: visual persistence, thermal growth, fusion, clearing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from detectors.analytics.config import SmokeFireConfig, ThermalSettings
from detectors.analytics.smoke import SmokeFire
from detectors.core import EventDraft
from detectors.thermal import HotspotTracker, as_temperatures, counts_to_celsius, find_hotspots
from tests.detectors.support import detections, kinds, observe


def field(hot: list[tuple[int, int, int, int, float]], ambient: float = 20.0) -> np.ndarray:
    """A 40x60 temperature frame with rectangles (x1, y1, x2, y2, degrees C)."""
    temps = np.full((40, 60), ambient, np.float32)
    for x1, y1, x2, y2, t in hot:
        temps[y1:y2, x1:x2] = t
    return temps


@pytest.mark.parametrize(
    ("hot", "threshold", "min_area", "expected"),
    [
        ([], 80.0, 0.0, []),
        ([(10, 10, 14, 13, 120.0)], 80.0, 0.0, [(12, 120.0)]),
        ([(10, 10, 14, 13, 79.0)], 80.0, 0.0, []),  # below the threshold
        ([(10, 10, 11, 11, 300.0)], 80.0, 0.001, []),  # 1 px of 2400 < 0.1 %
        ([(10, 10, 12, 12, 300.0)], 80.0, 0.001, [(4, 300.0)]),
        ([(0, 0, 2, 2, 100.0), (2, 2, 4, 4, 90.0)], 80.0, 0.0, [(8, 100.0)]),  # diagonal neighbours: 8-connected
        ([(0, 0, 2, 2, 100.0), (50, 30, 53, 33, 400.0)], 80.0, 0.0, [(9, 400.0), (4, 100.0)]),  # hottest first
    ],
)
def test_find_hotspots(hot: list[tuple[int, int, int, int, float]], threshold: float, min_area: float,
                       expected: list[tuple[int, float]]) -> None:  # fmt: skip
    spots = find_hotspots(field(hot), threshold, min_area)
    assert [(s.pixels, s.max_c) for s in spots] == expected


def test_hotspot_box_is_normalised() -> None:
    (spot,) = find_hotspots(field([(30, 20, 45, 30, 150.0)]), 80.0)
    assert spot.box == pytest.approx((0.5, 0.5, 0.75, 0.75))
    assert spot.area == pytest.approx(150 / 2400)


@pytest.mark.parametrize(
    ("raw", "scale", "offset", "celsius"),
    [(7315, 0.04, 0.0, 19.45), (29315, 0.01, 0.0, 20.0), (0, 0.04, 273.15, 0.0)],
)
def test_counts_to_celsius(raw: int, scale: float, offset: float, celsius: float) -> None:
    assert float(counts_to_celsius(np.array([[raw]]), scale, offset)[0, 0]) == pytest.approx(celsius, abs=0.01)


def test_temperature_matrix_validation() -> None:
    with pytest.raises(ValueError, match="2-D matrix"):
        as_temperatures(np.zeros((4, 4, 3)))
    cleaned = as_temperatures(np.array([[np.nan, np.inf], [5000.0, 20.0]]))
    assert cleaned.tolist() == [[-60.0, 2000.0], [2000.0, 20.0]]


def test_tracker_measures_growth_and_evicts() -> None:
    tracker = HotspotTracker(max_missed_s=2.0)
    for i in range(30):
        size = 2 + i // 3  # the fire spreads
        tracks = tracker.step(i * 0.5, find_hotspots(field([(20, 10, 20 + size, 10 + size, 150.0)]), 80.0))
    assert len(tracks) == 1
    growth = tracks[0].growth_per_min()
    assert growth is not None
    assert growth > 5.0
    for i in range(30, 38):
        tracker.step(i * 0.5, [])
    assert tracker.tracks == []


def test_static_warm_object_does_not_grow() -> None:
    tracker = HotspotTracker()
    rng = np.random.default_rng(1)
    for i in range(40):
        temps = field([(20, 10, 24, 14, 110.0)]) + rng.normal(0, 0.5, (40, 60)).astype(np.float32)
        (track,) = tracker.step(i * 0.5, find_hotspots(temps, 80.0))
    growth = track.growth_per_min()
    assert growth is not None
    assert abs(growth) < 0.1


def smoke_analytic(**overrides: object) -> SmokeFire:
    cfg = SmokeFireConfig.model_validate({"persist_frames": 4, "window_frames": 6, "clear_s": 5.0, **overrides})
    return SmokeFire("tower", cfg, None, smoke_labels=["smoke"], fire_labels=["fire"])


def feed(a: SmokeFire, frames: Sequence[tuple[Sequence[tuple[str, float]], np.ndarray | None]], t0: float = 0.0,
         dt: float = 0.5) -> list[tuple[float, EventDraft]]:  # fmt: skip
    out = []
    for i, (labels, thermal) in enumerate(frames):
        ts = t0 + i * dt
        dets = detections([(label, (0.4, 0.3, 0.6, 0.7), score) for label, score in labels], names=("smoke", "fire"))
        out += [(ts, d) for d in a.step(observe(ts, dets=dets, thermal=thermal))]
    return out


def test_visual_smoke_must_persist() -> None:
    a = smoke_analytic()
    smoke = [("smoke", 0.6)]
    flicker = [(smoke, None), ([], None)] * 4  # 1 in 2 frames: never 4 of 6
    assert feed(a, flicker) == []
    events = feed(a, [(smoke, None)] * 6, t0=10.0)
    assert kinds(d for _, d in events) == [("start", None, None)]
    assert events[0][0] == pytest.approx(10.5)  # the flicker left 3 of 6 in the window; the 2nd new frame makes 4
    assert events[0][1].label == "smoke"
    assert events[0][1].attributes["sources"] == "visual"


def test_low_scores_do_not_count() -> None:
    a = smoke_analytic()
    assert feed(a, [([("smoke", 0.2)], None)] * 10) == []


def test_smoke_turning_into_fire_raises_and_clears() -> None:
    a = smoke_analytic()
    events = feed(a, [([("smoke", 0.6)], None)] * 6 + [([("fire", 0.7), ("smoke", 0.6)], None)] * 6)
    events += feed(a, [([], None)] * 14, t0=6.0)
    assert kinds(d for _, d in events) == [("start", None, None), ("update", None, None), ("end", None, "cleared")]
    assert events[1][1].label == "fire"
    assert events[2][0] == pytest.approx(5.5 + 5.0)  # last evidence at 5.5, clear_s 5


def test_thermal_growing_hotspot_fires_and_static_one_does_not() -> None:
    settings = {"thermal": {"threshold_c": 80.0, "fire_c": 250.0, "growth_per_min": 0.5, "persist_frames": 3},
                "visual": False}  # fmt: skip
    static = smoke_analytic(**settings)
    assert feed(static, [([], field([(20, 10, 24, 14, 120.0)]))] * 40) == []
    growing = smoke_analytic(**settings)
    frames: list[tuple[list[tuple[str, float]], np.ndarray | None]] = [
        ([], field([(20, 10, 22 + i // 4, 12 + i // 4, 120.0)])) for i in range(40)
    ]
    events = feed(growing, frames)
    assert kinds(d for _, d in events) == [("start", None, None)]
    start = events[0][1]
    assert start.label == "smoke"  # hot but below fire_c: smouldering
    assert start.attributes == {"sources": "thermal", "max_c": 120.0}
    hot = smoke_analytic(**settings)
    events = feed(hot, [([], field([(20, 10, 23, 13, 400.0)]))] * 4)
    assert [(ts, d.label) for ts, d in events] == [(1.0, "fire")]  # above fire_c: no growth needed, 3 frames


def test_fusion_updates_when_the_second_source_confirms() -> None:
    a = smoke_analytic(thermal=ThermalSettings(threshold_c=80.0, fire_c=250.0, persist_frames=3).model_dump())
    cold = field([])
    events = feed(a, [([("smoke", 0.6)], cold)] * 6 + [([("smoke", 0.6)], field([(5, 5, 9, 9, 300.0)]))] * 4)
    assert kinds(d for _, d in events) == [("start", None, None), ("update", None, None)]
    update = events[1][1]
    assert update.attributes["sources"] == "thermal+visual"
    assert update.label == "fire"
    assert update.score > events[0][1].score  # 1 - (1 - visual)(1 - thermal)
    assert a.state_size() > 0


def test_config_needs_a_source() -> None:
    with pytest.raises(ValueError, match="nothing would be analysed"):
        SmokeFireConfig(visual=False)
    with pytest.raises(ValueError, match="persist_frames"):
        SmokeFireConfig(persist_frames=7, window_frames=6)
