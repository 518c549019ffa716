"""dumping: left-behind objects from the garbage class and from the dual background model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from detectors.analytics.background import DualBackground, blobs
from detectors.analytics.config import DumpingConfig
from detectors.analytics.dumping import Dumping
from detectors.core import EventDraft, Frame, TrackedObject
from tests.detectors.support import detections, kinds, observe, track

ZONE = [(0.0, 0.4), (1.0, 0.4), (1.0, 1.0), (0.0, 1.0)]
BAG = (0.50, 0.70, 0.56, 0.78)
FPS = 5.0
Box = tuple[float, float, float, float]
Found = tuple[list[TrackedObject], list[tuple[str, Box, float]]]
Scene = Callable[[float], Found]


def analytic(mode: str = "model", **overrides: object) -> Dumping:
    base = {"static_s": 5.0, "owner_window_s": 10.0, "clear_s": 4.0, "short_tau_s": 1.0, "long_tau_s": 60.0}
    cfg = DumpingConfig.model_validate({"zone": "lawn", "mode": mode, **base, **overrides})
    return Dumping("cam", cfg, ZONE, garbage_labels=["garbage"], owner_labels=["person", "car"])


def run(a: Dumping, t0: float, t1: float, scene: Scene, frames: Callable[[float], Frame] | None = None
        ) -> list[tuple[float, EventDraft]]:  # fmt: skip
    out = []
    for i in range(round((t1 - t0) * FPS)):
        ts = t0 + i / FPS
        tracks, dets = scene(ts)
        obs = observe(ts, tracks, detections(dets, names=("garbage", "person")), frame=frames(ts) if frames else None)
        out += [(ts, d) for d in a.step(obs)]
    return out


def walker(ts: float, start: float, stop_at: float, leave_at: float) -> tuple[float, float, float, float]:
    """A person walking right, standing at x=0.45 between stop_at and leave_at."""
    x = 0.1 + 0.1 * (min(ts, stop_at) - start) + 0.1 * max(0.0, ts - leave_at)
    return (x, 0.5, x + 0.06, 0.8)


def drop_scene(drop_at: float, pickup_at: float | None = None, carry: bool = True) -> Scene:
    def scene(ts: float) -> Found:
        person = walker(ts, 0.0, 3.5, 5.0)
        tracks = [track(1, "person", person)] if person[0] < 1.0 else []
        on_ground = ts >= drop_at and (pickup_at is None or ts < pickup_at)
        if on_ground:
            bag = BAG
        elif carry and person[0] < 1.0:
            bag = (person[2], 0.6, person[2] + 0.05, 0.68)  # in the hand
        else:
            return tracks, []
        return tracks, [("garbage", bag, 0.8)]

    return scene


def test_bag_left_behind_fires_with_appeared_and_before_times() -> None:
    a = analytic()
    events = run(a, 0.0, 15.0, drop_scene(drop_at=4.0))
    assert kinds(d for _, d in events) == [("start", None, None)]
    ts, start = events[0]
    assert ts == pytest.approx(9.0)  # at rest from 4.0 (dropped), static_s 5: fires at 9.0
    assert start.snapshot_roles == ("appeared", "before")
    assert start.attributes["appeared_ts"] == pytest.approx(4.0)
    assert start.attributes["before_ts"] == pytest.approx(1.0)
    assert start.attributes["owner"] == "person"
    assert start.attributes["source"] == "model"
    assert start.box == pytest.approx(BAG)


def test_removed_object_ends_the_episode() -> None:
    a = analytic()
    events = run(a, 0.0, 12.0, drop_scene(drop_at=4.0, pickup_at=11.0))
    events += run(a, 12.0, 40.0, lambda ts: ([], []))
    assert kinds(d for _, d in events) == [("start", None, None), ("end", None, "removed")]
    assert events[1][0] == pytest.approx(10.8 + 4.0 + 0.2, abs=0.01)  # last seen 10.8, clear_s 4
    assert a.state_size() == 0  # candidates and presence records are both evicted


def test_carried_through_or_picked_up_again_never_fires() -> None:
    assert run(analytic(), 0.0, 20.0, drop_scene(drop_at=99.0)) == []  # carried across and away
    assert run(analytic(), 0.0, 20.0, drop_scene(drop_at=4.0, pickup_at=7.0)) == []  # put down 3 s only


def test_held_while_standing_is_not_left_behind() -> None:
    """Someone stands still holding the bag for longer than static_s: it is attended, nothing fires."""

    def scene(ts: float) -> Found:
        person = (0.45, 0.5, 0.51, 0.8)
        return [track(1, "person", person)], [("garbage", (0.50, 0.6, 0.55, 0.68), 0.8)]

    assert run(analytic(), 0.0, 20.0, scene) == []


def test_litter_that_was_there_at_startup_or_without_anyone_never_fires() -> None:
    def always(ts: float) -> Found:
        return [], [("garbage", BAG, 0.9)]

    def late_no_owner(ts: float) -> Found:
        return [], [("garbage", BAG, 0.9)] if ts >= 5.0 else []

    assert run(analytic(), 0.0, 30.0, always) == []
    assert run(analytic(), 0.0, 30.0, late_no_owner) == []
    relaxed = analytic(require_owner=False)
    assert kinds(d for _, d in run(relaxed, 0.0, 30.0, late_no_owner)) == [("start", None, None)]


def test_expired_episode_and_bounded_state() -> None:
    a = analytic(max_episode_s=20.0, max_objects=3)
    events = run(a, 0.0, 30.0, drop_scene(drop_at=4.0))
    assert kinds(d for _, d in events) == [("start", None, None), ("end", None, "expired")]

    def crowd(ts: float) -> Found:
        return [], [("garbage", (0.1 * i, 0.6, 0.1 * i + 0.05, 0.65), 0.9) for i in range(8)]

    b = analytic(max_objects=3)
    run(b, 0.0, 2.0, crowd)
    assert len(b.candidates) == 3
    run(b, 2.0, 10.0, lambda ts: ([], []))
    assert len(b.candidates) == 0


# ----- model-free path --------------------------------------------------------------------------------


def grass(rng: np.random.Generator, h: int = 240, w: int = 320) -> Frame:
    base = rng.normal(0, 10, (h, w)).astype(np.float32)
    green = np.dstack([60 + base, 140 + base, 70 + base])
    return np.clip(green, 0, 255).astype(np.uint8)


def paint(frame: Frame, box: tuple[float, float, float, float], colour: tuple[int, int, int], texture: int = 0
          ) -> Frame:  # fmt: skip
    out = frame.copy()
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    out[y1:y2, x1:x2] = colour
    if texture:
        out[y1:y2:2, x1:x2] = np.clip(np.asarray(colour, np.int32) + texture, 0, 255)
    return out


def test_background_path_finds_a_dropped_bag_without_any_detector() -> None:
    rng = np.random.default_rng(2)
    lawn = grass(rng)

    def frame(ts: float) -> Frame:
        image = lawn.copy()
        person = walker(ts, 0.0, 3.5, 5.0)
        if ts >= 4.0:
            image = paint(image, BAG, (30, 30, 35), texture=60)
        if person[0] < 1.0:
            image = paint(image, person, (40, 40, 120))
        return image

    a = analytic(mode="background")
    events = run(a, 0.0, 16.0, lambda ts: ([], []), frames=frame)
    assert kinds(d for _, d in events) == [("start", None, None)]
    start = events[0][1]
    assert start.attributes["source"] == "background"
    assert start.attributes["owner"] == "motion"  # someone moved there just before (no detector to say who)
    x1, _y1, _x2, y2 = start.box
    assert x1 == pytest.approx(BAG[0], abs=0.03)
    assert y2 == pytest.approx(BAG[3], abs=0.03)


def test_background_path_ignores_lighting_changes_and_standing_people() -> None:
    rng = np.random.default_rng(4)
    lawn = grass(rng)

    def frame(ts: float) -> Frame:
        gain = 1.0 + 0.3 * min(1.0, max(0.0, (ts - 3.0) / 2.0))  # the sun comes out
        image = np.clip(lawn.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        return paint(image, (0.3, 0.45, 0.34, 0.75), (40, 40, 120)) if ts > 6.0 else image  # someone stands still

    assert run(analytic(mode="background"), 0.0, 25.0, lambda ts: ([], []), frames=frame) == []


def test_dual_background_static_versus_moving() -> None:
    rng = np.random.default_rng(6)
    lawn = grass(rng, 120, 160)
    model = DualBackground(width=160, long_tau_s=60.0, short_tau_s=1.0, threshold=28.0)
    model.update(lawn, 0.0)
    placed = paint(lawn, (0.4, 0.4, 0.5, 0.5), (20, 20, 20))
    first = model.update(placed, 0.2)
    assert first.moving[55, 70]
    assert not first.static[55, 70]
    for i in range(2, 40):
        fg = model.update(placed, i * 0.2)
    assert fg.static[55, 70]
    assert not fg.moving[55, 70]
    (box,) = blobs(fg.static, 10, 10_000)
    assert box == pytest.approx((0.4, 0.4, 0.5, 0.5), abs=0.02)


def test_litter_noticed_late_by_the_detector_is_not_new() -> None:
    """The litter was in the picture from the start but is detected only when someone walks by: the long-term
    background already contains it, so it never fires."""
    rng = np.random.default_rng(8)
    lawn = paint(grass(rng), BAG, (220, 220, 230), texture=-40)  # old litter, part of the scene

    def scene(ts: float) -> Found:
        person = walker(ts, 0.0, 3.5, 5.0)
        tracks = [track(1, "person", person)] if person[0] < 1.0 else []
        return tracks, [("garbage", BAG, 0.8)] if ts >= 3.0 else []

    assert run(analytic(), 0.0, 20.0, scene, frames=lambda ts: lawn) == []


def test_bag_left_on_top_of_old_litter_still_fires() -> None:
    small = (0.52, 0.74, 0.55, 0.78)  # old litter, known from start-up
    bigger = (0.49, 0.70, 0.58, 0.80)

    def scene(ts: float) -> Found:
        tracks, _ = drop_scene(drop_at=4.0)(ts)
        return tracks, [("garbage", bigger if ts >= 4.0 else small, 0.8)]

    events = run(analytic(), 0.0, 14.0, scene)
    assert kinds(d for _, d in events) == [("start", None, None)]
    assert events[0][1].box == pytest.approx(bigger)


def test_several_boxes_on_one_pile_give_one_episode() -> None:
    parts = [(0.40, 0.70, 0.48, 0.78), (0.45, 0.70, 0.55, 0.78), (0.40, 0.69, 0.55, 0.79)]

    def scene(ts: float) -> Found:
        tracks, _ = drop_scene(drop_at=4.0)(ts)
        if ts < 4.0:
            return tracks, []
        shown = parts if int(ts * 5) % 3 else parts[:2]  # the detector splits the pile, not always the same way
        return tracks, [("garbage", p, 0.7) for p in shown]

    events = run(analytic(), 0.0, 20.0, scene)
    assert kinds(d for _, d in events) == [("start", None, None)]


def test_a_pile_first_seen_in_part_then_whole_gives_one_episode() -> None:
    # the detector first boxes one corner of the pile; seconds later it boxes the rest, which barely
    # overlaps that corner: still the same dumping
    corner, rest = (0.40, 0.72, 0.45, 0.78), (0.44, 0.69, 0.56, 0.79)

    def scene(ts: float) -> Found:
        tracks, _ = drop_scene(drop_at=4.0)(ts)
        found = [("garbage", corner, 0.7)] if ts >= 4.0 else []
        found += [("garbage", rest, 0.7)] if ts >= 7.0 else []
        return tracks, found

    events = run(analytic(), 0.0, 20.0, scene)
    assert kinds(d for _, d in events) == [("start", None, None)]


def test_two_bags_apart_in_space_are_two_episodes() -> None:
    far = (0.10, 0.70, 0.16, 0.78)

    def scene(ts: float) -> Found:
        tracks, found = drop_scene(drop_at=4.0)(ts)
        person2 = (0.05, 0.5, 0.11, 0.8)
        if 4.0 <= ts < 6.0:
            tracks = [*tracks, track(2, "person", person2)]
        return tracks, found + ([("garbage", far, 0.8)] if ts >= 5.0 else [])

    events = run(analytic(), 0.0, 20.0, scene)
    assert [d.type.value for _, d in events] == ["start", "start"]
