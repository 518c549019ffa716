"""Frame-sequence tests of the tracker: confirmation, identity, two-stage matching, occlusion, stillness, eviction."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from detectors.core import Detections
from edge.config_camera import TrackingConfig
from edge.tracking import Track, Tracker

NAMES = ("car", "person")
DT = 0.2  # 5 detect fps


def dets(*items: tuple[str, tuple[float, float, float, float], float]) -> Detections:
    """Detections from (label, box, score) triples."""
    if not items:
        return Detections.empty(NAMES)
    return Detections(
        np.asarray([box for _, box, _ in items], np.float32),
        np.asarray([score for _, _, score in items], np.float32),
        np.asarray([NAMES.index(label) for label, _, _ in items], np.int32),
        NAMES,
    )


def moving(x: float, y: float = 0.5, w: float = 0.1) -> tuple[float, float, float, float]:
    return (x, y, x + w, y + w)


def run(tracker: Tracker, frames: list[Detections], start: float = 0.0) -> list[list[Track]]:
    """Update per frame; tracks are live objects, so keep a copy of each frame's state."""
    return [[copy.copy(t) for t in tracker.update(d, start + i * DT)] for i, d in enumerate(frames)]


def test_track_is_reported_after_min_hits_with_a_good_median_score() -> None:
    tracker = Tracker(TrackingConfig(min_hits=3, confirm_score=0.5), DT)
    out = run(tracker, [dets(("car", moving(0.1 + 0.01 * i), 0.8)) for i in range(4)])
    assert [len(frame) for frame in out] == [0, 0, 1, 1]
    assert out[-1][0].label == "car"
    assert out[-1][0].hits == 4


def test_low_median_score_is_never_confirmed() -> None:
    tracker = Tracker(TrackingConfig(min_hits=3, confirm_score=0.7, high_score=0.5), DT)
    out = run(tracker, [dets(("car", moving(0.1), s)) for s in (0.6, 0.65, 0.62, 0.9)])
    assert all(not frame for frame in out[:3])
    # median of (0.6, 0.65, 0.62) is 0.62 < 0.7 at the 3rd hit; a one-off 0.9 does not confirm it either
    assert not out[3]


def test_identity_follows_a_moving_object_and_a_second_object_gets_a_new_id() -> None:
    tracker = Tracker(TrackingConfig(min_hits=1), DT)
    frames = [
        dets(("car", moving(0.05 * i), 0.9), ("person", moving(0.9 - 0.02 * i, 0.1, 0.05), 0.8)) for i in range(10)
    ]
    out = run(tracker, frames)
    ids = {(t.label, t.track_id) for frame in out for t in frame}
    assert ids == {("car", 1), ("person", 2)}
    car = next(t for t in out[-1] if t.label == "car")
    assert car.velocity[0] == pytest.approx(0.05 / DT, rel=0.2)


def test_labels_must_agree_to_match() -> None:
    tracker = Tracker(TrackingConfig(min_hits=1), DT)
    run(tracker, [dets(("car", moving(0.3), 0.9))])
    out = tracker.update(dets(("person", moving(0.3), 0.9)), DT)
    assert [t.label for t in out] == ["car", "person"]
    assert out[0].missed == 1


def test_second_pass_keeps_a_track_on_a_low_score_detection() -> None:
    settings = TrackingConfig(min_hits=1, high_score=0.6, low_match_iou=0.5)
    tracker = Tracker(settings, DT)
    run(tracker, [dets(("car", moving(0.3), 0.9))])
    out = tracker.update(dets(("car", moving(0.31), 0.3)), DT)  # partly hidden: low score
    assert len(out) == 1
    assert out[0].missed == 0
    assert out[0].score == pytest.approx(0.3)
    # A low-score detection never starts a track by itself.
    fresh = Tracker(settings, DT)
    assert fresh.update(dets(("car", moving(0.3), 0.3)), 0.0) == []
    assert fresh.state_size() == 0


def test_short_occlusion_keeps_the_track_and_its_id() -> None:
    tracker = Tracker(TrackingConfig(min_hits=1, max_disappeared=5), DT)
    frames = [dets(("car", moving(0.1 + 0.02 * i), 0.9)) for i in range(5)]
    frames += [dets()] * 4  # hidden for 4 frames: predicted forward
    frames += [dets(("car", moving(0.1 + 0.02 * i), 0.9)) for i in range(9, 12)]
    out = run(tracker, frames)
    assert all(len(frame) == 1 and frame[0].track_id == 1 for frame in out)
    assert out[6][0].missed == 2
    assert out[8][0].box[0] == pytest.approx(0.1 + 0.02 * 8, abs=0.02), "position predicted while hidden"


def test_long_disappearance_deletes_the_track_and_its_state() -> None:
    tracker = Tracker(TrackingConfig(min_hits=1, max_disappeared=3), DT)
    out = run(tracker, [dets(("car", moving(0.3), 0.9))] + [dets()] * 4)
    assert [len(f) for f in out] == [1, 1, 1, 1, 0]
    assert tracker.state_size() == 0
    # It comes back: a new id.
    assert tracker.update(dets(("car", moving(0.3), 0.9)), 2.0)[0].track_id == 2


def test_stationary_after_stationary_s_and_moving_again_resets() -> None:
    tracker = Tracker(TrackingConfig(min_hits=1, stationary_s=2.0, stationary_iou=0.7), DT)
    still = [dets(("car", moving(0.4), 0.9)) for _ in range(15)]  # 3 s still
    out = run(tracker, still)
    assert out[9][0].stationary_since is None  # 1.8 s
    assert out[10][0].stationary_since == pytest.approx(0.0)  # 2.0 s: still since the first frame
    moved = tracker.update(dets(("car", moving(0.43), 0.9)), 15 * DT)  # IoU 0.54: same car, moved
    assert moved[0].stationary_since is None
    assert moved[0].track_id == 1


def test_stationary_track_survives_a_longer_occlusion() -> None:
    settings = TrackingConfig(min_hits=1, stationary_s=1.0, max_disappeared=3, stationary_max_disappeared=20)
    tracker = Tracker(settings, DT)
    out = run(tracker, [dets(("car", moving(0.4), 0.9))] * 10 + [dets()] * 15)  # a bus hides it for 3 s
    assert all(len(frame) == 1 and frame[0].track_id == 1 for frame in out)
    assert out[-1][0].stationary_since == pytest.approx(0.0)


def test_hold_ages_nothing_for_seen_tracks_but_a_vanished_one_expires_by_time() -> None:
    tracker = Tracker(TrackingConfig(min_hits=1, max_disappeared=5), DT)
    run(tracker, [dets(("car", moving(0.4), 0.9), ("person", moving(0.1, 0.1, 0.05), 0.9))])
    tracker.update(dets(("car", moving(0.4), 0.9)), DT)  # the person vanished (motion showed it)
    t = DT
    for _ in range(100):  # then no motion for 20 s: held frames only
        t += DT
        out = tracker.hold(t)
    assert [tr.label for tr in out] == ["car"]
    assert tracker.state_size() == 1


def test_region_limited_detection_does_not_age_tracks_outside_it() -> None:
    tracker = Tracker(TrackingConfig(min_hits=1, max_disappeared=2), DT)
    run(tracker, [dets(("car", moving(0.1), 0.9), ("person", moving(0.8), 0.9))])
    for i in range(1, 6):
        out = tracker.update(dets(("car", moving(0.1), 0.9)), i * DT, region=(0.0, 0.0, 0.5, 1.0))
    assert sorted(t.label for t in out) == ["car", "person"]


def test_many_objects_passing_through_leave_no_state() -> None:
    tracker = Tracker(TrackingConfig(min_hits=2, max_disappeared=3), DT)
    rng = np.random.default_rng(7)
    t = 0.0
    for wave in range(30):
        y = float(rng.uniform(0.05, 0.8))
        for step in range(12):
            t += DT
            tracker.update(dets(("person", moving(0.05 * step, y, 0.08), 0.9)), t)
        assert tracker.state_size() <= 1, f"wave {wave}"
    for _ in range(5):
        t += DT
        tracker.update(dets(), t)
    assert tracker.state_size() == 0
