"""standing_water: scheduled checks only, persistence, spreading updates, drying, reference comparison vs shadows."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.analytics.config import WaterConfig
from detectors.analytics.water import StandingWater, wet_blocks
from detectors.core import EventDraft
from tests.detectors.support import detections, kinds, observe, track

ZONE = [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]  # the lower half of the frame


def analytic(mode: str = "model", rain: float | None = None, **overrides: object) -> StandingWater:
    cfg = WaterConfig.model_validate({"zone": "road", "mode": mode, "min_fraction": 0.2, "clear_fraction": 0.05,
                                      "check_interval_s": 60.0, "persist_checks": 2, **overrides})  # fmt: skip

    class Gauge:
        def rain_mm_h(self, ts: float) -> float | None:
            return rain

    return StandingWater("cam", cfg, ZONE, water_labels=["water"], occluder_labels=["car", "person"],
                         rain=Gauge() if rain is not None else None)  # fmt: skip


def water_box(fraction_of_zone: float) -> tuple[float, float, float, float]:
    """A box covering that share of the lower half (full width)."""
    return (0.0, 0.5, 1.0, 0.5 + 0.5 * fraction_of_zone)


def check(a: StandingWater, ts: float, fraction: float | None, *, full: bool = True, **kw: object) -> list[EventDraft]:
    dets = detections([("water", water_box(fraction), 0.8)] if fraction else [], names=("water",))
    return a.step(observe(ts, dets=dets, full_check=full, **kw))  # type: ignore[arg-type]


def test_only_scheduled_full_checks_count() -> None:
    a = analytic()
    events = [e for i in range(20) for e in check(a, i * 5.0, 0.5, full=False)]
    assert events == []
    assert check(a, 100.0, 0.5) == []  # first check over the threshold
    assert check(a, 130.0, 0.5) == []  # too soon after the last check (interval 60 s): ignored
    (start,) = check(a, 160.0, 0.5)
    assert (start.type.value, start.label, start.zone) == ("start", "water", "road")
    assert start.attributes["water_fraction"] == pytest.approx(0.5, abs=0.02)
    assert "rain_mm_h" not in start.attributes


def test_spreading_updates_and_drying_ends() -> None:
    a = analytic(rain=12.5)
    drafts: list[EventDraft] = []
    for i, fraction in enumerate([0.25, 0.25, 0.3, 0.45, 0.6, 0.62, 0.02, 0.01, 0.0]):
        drafts += check(a, i * 60.0, fraction)
    assert kinds(drafts) == [("start", None, None), ("update", None, None), ("update", None, None),
                             ("end", None, "dried")]  # fmt: skip
    assert drafts[0].attributes["rain_mm_h"] == 12.5
    assert drafts[-1].dwell_s == pytest.approx(7 * 60.0 - 60.0)
    assert a.state_size() == 0


def test_puddle_under_the_threshold_or_not_persistent_is_ignored() -> None:
    a = analytic()
    drafts = [d for i, f in enumerate([0.1, 0.15, 0.3, 0.1, 0.3, 0.0]) for d in check(a, i * 60.0, f)]
    assert drafts == []


def test_vehicles_are_left_out_and_a_hidden_zone_gives_no_verdict() -> None:
    a = analytic()
    bus = track(1, "car", (0.0, 0.45, 1.0, 1.0))
    assert a.step(observe(0.0, [bus], detections([("water", water_box(0.9), 0.9)]), full_check=True)) == []
    assert a.last_fraction is None  # nothing measured: the zone was hidden
    car = track(2, "car", (0.0, 0.5, 0.5, 1.0))  # hides the left half of the zone, where the water box is
    a.step(observe(60.0, [car], detections([("water", (0.0, 0.5, 0.5, 1.0), 0.9)]), full_check=True))
    assert a.last_fraction == pytest.approx(0.0)


def road(rng: np.random.Generator, h: int = 120, w: int = 160) -> np.ndarray:
    """Textured grey asphalt, BGR."""
    base = 110 + rng.normal(0, 14, (h, w)).astype(np.float32)
    return np.clip(np.dstack([base, base, base]), 0, 255).astype(np.uint8)


def puddle(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Water over the lower-left quarter: darker, bluish, the texture replaced by a smooth reflection."""
    out = frame.copy()
    h, w = frame.shape[:2]
    sky = np.linspace(150, 200, w, dtype=np.float32)[None, :].repeat(h // 2, axis=0)
    region = out[h // 2 :, : w // 2].astype(np.float32)
    water = np.dstack([sky[:, : w // 2] * 0.7, sky[:, : w // 2] * 0.6, sky[:, : w // 2] * 0.5])
    out[h // 2 :, : w // 2] = np.clip(0.3 * region + 0.7 * water + rng.normal(0, 2, region.shape), 0, 255)
    return out


def shadow(frame: np.ndarray) -> np.ndarray:
    """A cloud shadow over the same quarter: darker by 45 %, texture and colour balance kept."""
    out = frame.astype(np.float32)
    h, w = frame.shape[:2]
    out[h // 2 :, : w // 2] *= 0.55
    return out.astype(np.uint8)


def test_reference_comparison_tells_water_from_shadow_and_light() -> None:
    rng = np.random.default_rng(3)
    dry = road(rng)
    small = dry.astype(np.float32)
    assert not wet_blocks(small, shadow(dry).astype(np.float32), 30.0).any()
    assert not wet_blocks(small, (dry.astype(np.float32) * 1.2 * 0.98), 30.0).any()  # brighter overall: gain
    wet = wet_blocks(small, puddle(dry, rng).astype(np.float32), 30.0)
    rows, cols = wet.shape
    assert wet[rows // 2 + 1 :, : cols // 2 - 1].mean() > 0.9
    assert wet[: rows // 2 - 1].mean() < 0.05


def test_reference_path_learns_the_dry_road_and_fires_on_a_puddle_not_a_shadow() -> None:
    rng = np.random.default_rng(5)
    dry = road(rng, 240, 320)
    a = analytic(mode="reference", analysis_width=160, persist_checks=2)
    drafts: list[EventDraft] = []
    frames = [dry, dry, shadow(dry), shadow(dry), shadow(dry), puddle(dry, rng), puddle(dry, rng)]
    for i, frame in enumerate(frames):
        drafts += a.step(observe(i * 60.0, frame=frame, full_check=True))
    assert kinds(drafts) == [("start", None, None)]
    assert drafts[0].attributes["water_fraction"] == pytest.approx(0.5, abs=0.1)
    x1, y1, x2, _y2 = drafts[0].box
    assert (x1, y1) == pytest.approx((0.0, 0.5), abs=0.06)
    assert x2 == pytest.approx(0.5, abs=0.06)


def test_given_reference_image_is_used_from_the_first_check() -> None:
    rng = np.random.default_rng(9)
    dry = road(rng, 240, 320)
    cfg = WaterConfig(zone="road", mode="reference", min_fraction=0.2, check_interval_s=1.0, persist_checks=1)
    a = StandingWater("cam", cfg, ZONE, water_labels=["water"], occluder_labels=[], reference=dry)
    (start,) = a.step(observe(0.0, frame=puddle(dry, rng), full_check=True))
    assert start.type.value == "start"


def test_config_fractions_are_ordered() -> None:
    with pytest.raises(ValueError, match="clear_fraction"):
        WaterConfig(zone="road", min_fraction=0.1, clear_fraction=0.2)
