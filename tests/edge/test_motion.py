"""Motion gating on the small grayscale frame, and motion blobs behind the Detector protocol."""

from __future__ import annotations

import numpy as np

from detectors.core import Detector
from detectors.motion import MotionBlobDetector, MotionDetector, merge_boxes
from edge.zones import mask_image
from tests.edge.clips import frame_with


def test_static_scene_has_no_motion_and_a_moving_square_is_found_where_it_is() -> None:
    motion = MotionDetector()
    background = frame_with([])
    assert motion.update(background).recalibrated  # the first frame only seeds the background
    for _ in range(5):
        assert not motion.update(background).moving
    result = motion.update(frame_with([("red", (320, 160))]))
    assert result.moving
    box = merge_boxes(result.boxes, margin=0.0)
    assert box is not None
    # The square covers x 320..384 of 640 and y 160..224 of 360; blur and dilation grow it a little.
    assert 0.45 < box[0] <= 0.5
    assert 0.6 <= box[2] < 0.66
    assert 0.40 < box[1] <= 0.445
    assert 0.62 <= box[3] < 0.68


def test_whole_frame_change_is_a_lighting_change_not_motion() -> None:
    motion = MotionDetector()
    motion.update(frame_with([]))
    bright = np.full((360, 640, 3), 230, np.uint8)
    result = motion.update(bright)
    assert result.recalibrated
    assert not result.moving
    assert result.area > 0.8
    assert not motion.update(bright).moving  # the new light is the background now


def test_masked_area_is_ignored() -> None:
    mask = mask_image([[(0.4, 0.3), (0.7, 0.3), (0.7, 0.8), (0.4, 0.8)]], 640, 360)
    motion = MotionDetector(mask=mask)
    motion.update(frame_with([]))
    assert not motion.update(frame_with([("red", (320, 160))])).moving
    assert motion.update(frame_with([("red", (40, 40))])).moving


def test_background_adapts_to_an_object_that_stays() -> None:
    motion = MotionDetector()
    motion.update(frame_with([]))
    parked = frame_with([("blue", (100, 100))])
    moving = [motion.update(parked).moving for _ in range(400)]
    assert moving[0]
    assert not moving[-1]


def test_motion_blobs_are_a_detector() -> None:
    detector: Detector = MotionBlobDetector()
    frames = [frame_with([]), frame_with([]), frame_with([("green", (500, 50))])]
    results = detector.detect(frames)
    assert [len(r) for r in results] == [0, 0, 1]
    assert results[2].labels() == ["motion"]
    assert detector.class_names == ("motion",)
