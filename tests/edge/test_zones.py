"""Zones: polygon tests, filters, inertia on entry and exit, schedule hook, masks, and eviction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.core import Detections
from edge.config_camera import ZoneConfig
from edge.tracking import Track
from edge.zones import ObjectMask, Zone, ZoneMembership, anchor_points, mask_image, points_in_polygon

SQUARE = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)]
TRIANGLE = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]


@pytest.mark.parametrize(
    ("polygon", "point", "inside"),
    [
        (SQUARE, (0.4, 0.4), True),
        (SQUARE, (0.1, 0.4), False),
        (SQUARE, (0.4, 0.7), False),
        (TRIANGLE, (0.2, 0.2), True),
        (TRIANGLE, (0.6, 0.6), False),  # beyond the hypotenuse
        ([(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.3), (0.1, 0.9)], (0.5, 0.8), False),  # concave notch
        ([(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.3), (0.1, 0.9)], (0.12, 0.8), True),
    ],
)
def test_points_in_polygon(polygon: list[tuple[float, float]], point: tuple[float, float], inside: bool) -> None:
    result = points_in_polygon(np.asarray([point], np.float32), np.asarray(polygon, np.float32))
    assert result.tolist() == [inside]


def test_anchor_is_bottom_centre_or_centre() -> None:
    boxes = np.asarray([[0.2, 0.1, 0.4, 0.5]], np.float32)
    np.testing.assert_allclose(anchor_points(boxes), [[0.3, 0.5]], atol=1e-6)
    np.testing.assert_allclose(anchor_points(boxes, "center"), [[0.3, 0.3]], atol=1e-6)


def zone(**kw: object) -> Zone:
    return Zone(ZoneConfig.model_validate({"name": "z", "polygon": SQUARE, **kw}))


def test_trigger_mask_applies_label_area_and_score_filters() -> None:
    names = ("car", "person")
    dets = Detections(
        np.asarray(
            [
                [0.3, 0.3, 0.4, 0.5],  # car inside
                [0.3, 0.3, 0.31, 0.31],  # tiny car inside
                [0.3, 0.3, 0.4, 0.5],  # person inside
                [0.7, 0.3, 0.8, 0.5],  # car outside
                [0.3, 0.3, 0.4, 0.5],  # weak car inside
            ],
            np.float32,
        ),
        np.asarray([0.9, 0.9, 0.9, 0.9, 0.3], np.float32),
        np.asarray([0, 0, 1, 0, 0], np.int32),
        names,
    )
    assert zone().trigger(dets).tolist() == [True, True, True, False, True]
    z = zone(objects=["car"], min_area=0.001, min_score=0.5)
    assert z.trigger(dets).tolist() == [True, False, False, False, False]


def track(tid: int, box: tuple[float, float, float, float], label: str = "car", score: float = 0.9) -> Track:
    return Track(tid, label, box, score, 0.0, 0.0)


INSIDE = (0.3, 0.3, 0.4, 0.5)
OUTSIDE = (0.7, 0.3, 0.8, 0.5)


def test_inertia_on_entry_and_exit_and_since_is_the_first_inside_frame() -> None:
    membership = ZoneMembership([zone(inertia=3)])
    seq = [INSIDE, INSIDE, INSIDE, OUTSIDE, INSIDE, OUTSIDE, OUTSIDE, OUTSIDE]
    results = [membership.update([track(1, box)], t) for t, box in enumerate(seq, start=10)]
    inside = [("z" in r[1]) for r in results]
    assert inside == [False, False, True, True, True, True, True, False]
    assert results[2][1]["z"] == 10  # counted as in from the first of the 3 frames
    assert membership.state_size() == 0  # out after inertia: nothing kept


def test_jitter_on_the_edge_never_enters() -> None:
    membership = ZoneMembership([zone(inertia=3)])
    for t in range(20):
        out = membership.update([track(1, INSIDE if t % 2 else OUTSIDE)], float(t))
        assert out[1] == {}


def test_schedule_hook_gates_membership() -> None:
    active = {"on": False}
    membership = ZoneMembership([Zone(ZoneConfig(name="z", polygon=SQUARE, inertia=1), lambda _t: active["on"])])
    assert membership.update([track(1, INSIDE)], 0.0)[1] == {}
    active["on"] = True
    assert membership.update([track(1, INSIDE)], 1.0)[1] == {"z": 1.0}
    active["on"] = False
    assert membership.update([track(1, INSIDE)], 2.0)[1] == {}


def test_state_is_evicted_when_tracks_disappear() -> None:
    membership = ZoneMembership([zone(inertia=2), Zone(ZoneConfig(name="all", polygon=TRIANGLE, inertia=1))])
    tracks = [track(i, INSIDE) for i in range(50)]
    membership.update(tracks, 0.0)
    membership.update(tracks, 1.0)
    assert membership.state_size() == 100
    membership.update(tracks[:10], 2.0)
    assert membership.state_size() == 20
    membership.update([], 3.0)
    assert membership.state_size() == 0


def test_object_mask_drops_detections_anchored_in_it() -> None:
    mask = ObjectMask([[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]])
    dets = Detections(
        np.asarray([[0.1, 0.1, 0.2, 0.4], [0.1, 0.3, 0.2, 0.7], [0.6, 0.1, 0.7, 0.2]], np.float32),
        np.ones(3, np.float32),
        np.zeros(3, np.int32),
        ("car",),
    )
    kept = mask.apply(dets)
    np.testing.assert_array_equal(kept.xyxy, dets.xyxy[1:])
    assert ObjectMask([]).apply(dets) is dets


def test_mask_image_fills_polygons() -> None:
    image = mask_image([[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]], 100, 50)
    assert image is not None
    assert image.shape == (50, 100)
    assert image[:, :45].min() == 255
    assert image[:, 55:].max() == 0
    assert mask_image([], 10, 10) is None


def test_zone_schedule_hook_uses_the_cameras_named_schedules(tmp_path: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from edge.analytics_hook import compile_zone_schedules
    from edge.config_camera import CameraConfig

    camera = CameraConfig.model_validate(
        {
            "id": "c1",
            "detect": {"path": "clip.mp4"},
            "zones": [{"name": "kerb", "polygon": SQUARE, "schedule": "daytime"}],
            "analytics": {
                "schedules": {"daytime": {"windows": [{"days": ["weekday"], "from": "07:00", "to": "19:00"}]}}
            },
        }
    )
    hooks = compile_zone_schedules(camera, tmp_path)
    shanghai = ZoneInfo("Asia/Shanghai")
    monday_10 = datetime(2026, 11, 30, 10, 0, tzinfo=shanghai).timestamp()
    monday_20 = datetime(2026, 11, 30, 20, 0, tzinfo=shanghai).timestamp()
    sunday_10 = datetime(2026, 11, 29, 10, 0, tzinfo=shanghai).timestamp()
    assert [hooks["daytime"](t) for t in (monday_10, monday_20, sunday_10)] == [True, False, False]
    membership = ZoneMembership([Zone(camera.zones[0], hooks["daytime"])])
    assert membership.update([track(1, INSIDE)], monday_10)[1] == {}  # inertia 3: not yet
    membership.update([track(1, INSIDE)], monday_10 + 1)
    assert "kerb" in membership.update([track(1, INSIDE)], monday_10 + 2)[1]
    for i in range(3):
        out = membership.update([track(1, INSIDE)], monday_20 + i)
    assert out[1] == {}  # the schedule ended: nobody counts as in
