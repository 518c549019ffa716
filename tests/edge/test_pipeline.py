"""Camera pipeline and shared worker on real frames and the square model: gating, batching, leaks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from detectors.core import Analytic, Detections, Detector, EventDraft, Frame, FrameObservation
from detectors.yolo import create_detector
from detectors.yolo_config import DetectorConfig
from edge.camera import CameraPipeline, WorkItem
from edge.config import EventConfig
from edge.config_camera import CameraConfig
from edge.objects import ObjectAnalytic
from edge.scheduling import Reason
from edge.worker import DetectorWorker
from qinghe.contracts import EventType
from tests.edge.clips import frame_with

LOT = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]


def camera(cid: str = "c1", **kw: object) -> CameraConfig:
    base: dict[str, object] = {
        "id": cid,
        "detect": {"path": "clip.mp4"},
        "detect_fps": 5,
        "full_check_interval_s": 60,
        "tracking": {"min_hits": 2, "max_disappeared": 5, "stationary_s": 2, "stationary_max_disappeared": 10},
        "zones": [{"name": "lot", "polygon": LOT, "inertia": 2, "dwell_milestones_s": [3]}],
    }
    return CameraConfig.model_validate({**base, **kw})


def pipeline(config: CameraConfig, analytics: Sequence[Analytic] | None = None) -> CameraPipeline:
    chosen = list(analytics) if analytics is not None else [ObjectAnalytic(config.id, config.zones, EventConfig())]
    return CameraPipeline(config, 60.0, chosen)


class Recorder:
    """Collects what the worker hands back."""

    def __init__(self) -> None:
        self.drafts: list[EventDraft] = []
        self.items: list[WorkItem] = []

    def __call__(self, p: CameraPipeline, item: WorkItem, obs: FrameObservation, drafts: list[EventDraft]) -> None:
        del p, obs
        self.items.append(item)
        self.drafts.extend(drafts)


def drive(worker: DetectorWorker, pipelines: dict[str, CameraPipeline], frames: Sequence[tuple[float, Frame]]) -> None:
    """Gate frames at 10 fps for every camera, and run the worker synchronously after each time step."""
    for ts, frame in frames:
        items = [item for p in pipelines.values() if (item := p.gate(frame, ts)) is not None]
        if items:
            worker.run_once(items)


def square_walk(n: int, stay: int) -> list[tuple[float, Frame]]:
    """A red square drives into the lot, parks for `stay` frames, leaves; then an empty scene."""
    out = []
    for i in range(n):
        if i < 20:
            frame = frame_with([("red", (20 + 10 * i, 240))])
        elif i < 20 + stay:
            frame = frame_with([("red", (220, 240))])
        else:
            frame = frame_with([])
        out.append((i / 10, frame))
    return out


@pytest.fixture
def squares(square_model: Path) -> Detector:
    return create_detector(DetectorConfig(model=str(square_model), batch_size=4))


def test_gate_paces_and_holds_a_static_scene(squares: Detector) -> None:
    p = pipeline(camera())
    still = frame_with([])
    items = [p.gate(still, i / 10) for i in range(50)]  # 5 s at 10 fps
    due = [i for i in items if i is not None]
    assert len(due) == 25  # 5 detect fps
    assert due[0].decision.reason is Reason.SCHEDULED  # the first frame is a full check
    assert all(i.decision.reason is Reason.NO_MOTION for i in due[1:])


def test_parked_square_gives_start_milestone_and_end(squares: Detector) -> None:
    p = pipeline(camera())
    rec = Recorder()
    worker = DetectorWorker(squares, {"c1": p}, rec)
    # The parked square was absorbed into the background, so its departure shows no motion; the
    # stationary re-check (every 10 s) finds it gone and the track then expires.
    drive(worker, {"c1": p}, square_walk(220, 60))
    kinds = [(d.type, d.phase) for d in rec.drafts]
    assert kinds[0] == (EventType.START, "enter")
    assert (EventType.UPDATE, "dwell") in kinds
    assert kinds[-1] == (EventType.END, "exit")
    assert rec.drafts[-1].outcome == "lost"
    assert {d.label for d in rec.drafts} == {"red"}
    inferred = worker.counters.per_camera["c1"].inferred
    analysed = worker.counters.per_camera["c1"].analysed
    assert analysed == 110
    assert inferred < analysed, "still stretches must be gated"
    assert p.state_size() == {"tracks": 0, "zone_membership": 0, "analytic.object": 0}


def test_one_worker_batches_frames_of_several_cameras(square_model: Path) -> None:
    calls: list[int] = []

    class Counting:
        def __init__(self, inner: Detector) -> None:
            self.inner = inner

        @property
        def class_names(self) -> tuple[str, ...]:
            return self.inner.class_names

        def detect(self, frames: Sequence[Frame]) -> list[Detections]:
            calls.append(len(frames))
            return self.inner.detect(frames)

    detector = Counting(create_detector(DetectorConfig(model=str(square_model))))
    pipelines = {f"c{i}": pipeline(camera(f"c{i}", motion={"enabled": False})) for i in range(6)}
    worker = DetectorWorker(detector, pipelines, Recorder(), batch_size=4)
    drive(worker, pipelines, [(i / 10, frame_with([("green", (100, 200))])) for i in range(10)])
    assert calls
    assert all(n <= 4 for n in calls)
    assert sum(calls) == 6 * 5  # every due frame of every camera went through the one model
    assert max(calls) == 4
    assert len(calls) == 10


def test_a_failing_analytic_does_not_stop_the_others(squares: Detector) -> None:
    class Broken:
        name = "broken"

        def step(self, observation: FrameObservation) -> list[EventDraft]:
            raise RuntimeError("bug")

        def state_size(self) -> int:
            return 0

    config = camera()
    p = pipeline(config, [Broken(), ObjectAnalytic(config.id, config.zones, EventConfig())])
    rec = Recorder()
    drive(DetectorWorker(squares, {"c1": p}, rec), {"c1": p}, square_walk(60, 40))
    assert p.analytic_errors > 0
    assert any(d.type is EventType.START for d in rec.drafts)


def test_motion_camera_tracks_motion_blobs_without_a_model() -> None:
    config = camera(detector="motion", zones=[{"name": "lot", "polygon": LOT, "inertia": 1, "objects": ["motion"]}])
    p = pipeline(config)
    rec = Recorder()
    drive(DetectorWorker(None, {"c1": p}, rec), {"c1": p}, square_walk(60, 0))
    assert any(d.type is EventType.START and d.label == "motion" for d in rec.drafts)


def test_ten_minutes_of_traffic_leave_bounded_state(squares: Detector) -> None:
    p = pipeline(
        camera(tracking={"min_hits": 2, "max_disappeared": 3, "stationary_s": 2, "stationary_max_disappeared": 6})
    )
    rec = Recorder()
    worker = DetectorWorker(squares, {"c1": p}, rec)
    rng = np.random.default_rng(3)
    peak: dict[str, int] = {}
    t = 0.0
    empty = frame_with([])
    for _visitor in range(40):  # a visitor every 15 s, staying a few seconds somewhere in the lot
        x, y = int(rng.integers(40, 560)), int(rng.integers(140, 280))
        stay = int(rng.integers(10, 70))
        frames = [frame_with([("blue", (x, y))])] * stay + [empty] * (150 - stay)
        for frame in frames:
            item = p.gate(frame, t)
            if item is not None:
                worker.run_once([item])
            t += 0.1
        for key, value in p.state_size().items():
            peak[key] = max(peak.get(key, 0), value)
    sizes = p.state_size()
    assert sizes["tracks"] == 0
    assert sizes["zone_membership"] == 0
    assert sizes["analytic.object"] == 0
    assert peak["tracks"] <= 2
    assert peak["analytic.object"] <= 1
    starts = sum(d.type is EventType.START for d in rec.drafts)
    ends = sum(d.type is EventType.END for d in rec.drafts)
    assert starts == ends >= 30


def test_zones_only_gating_ignores_motion_far_from_the_zones() -> None:
    zone = {"name": "kerb", "polygon": [[0.0, 0.7], [0.4, 0.7], [0.4, 1.0], [0.0, 1.0]]}
    p = pipeline(camera(zones=[zone], motion={"zones_only": True, "zone_margin": 0.05}))
    still = frame_with([])
    assert p.gate(still, 0.0) is not None  # full check, seeds the background
    far = p.gate(frame_with([("red", (500, 40))]), 0.2)  # top right: nowhere near the kerb
    assert far is not None
    assert far.decision.reason is Reason.NO_MOTION
    near = p.gate(frame_with([("red", (60, 280))]), 0.4)  # on the kerb
    assert near is not None
    assert near.decision.reason is Reason.MOTION
    assert p.near_zones((0.1, 0.6, 0.2, 0.72))  # within the margin above the kerb
    assert not p.near_zones((0.8, 0.0, 0.9, 0.1))  # a tracked walker up there does not keep the model busy


def test_thermal_frames_ride_along_with_the_video(tmp_path: Path, squares: Detector) -> None:
    from edge.camera import ThermalReplay

    stack = np.stack([np.full((12, 16), 20.0 + i, np.float16) for i in range(3)])
    np.savez(tmp_path / "thermal.npz", temps=stack)
    replay = ThermalReplay(tmp_path / "thermal.npz")
    config = camera(kind="thermal")
    p = CameraPipeline(config, 60.0, [], thermal=replay)
    seen: list[float] = []

    def record(pl: CameraPipeline, item: WorkItem, obs: FrameObservation, drafts: list[EventDraft]) -> None:
        assert obs.thermal is not None
        seen.append(float(obs.thermal[0, 0]))

    drive(DetectorWorker(squares, {"c1": p}, record), {"c1": p}, [(i / 10, frame_with([])) for i in range(10)])
    assert seen == [20.0, 21.0, 22.0, 20.0, 21.0]  # one radiometric frame per analysed frame, looping


def test_held_frames_carry_the_last_detections_and_say_so(squares: Detector) -> None:
    p = pipeline(camera())
    seen: list[tuple[bool, int]] = []

    def record(pl: CameraPipeline, item: WorkItem, obs: FrameObservation, drafts: list[EventDraft]) -> None:
        seen.append((obs.inferred, len(obs.detections)))

    parked = frame_with([("green", (300, 240))])
    drive(DetectorWorker(squares, {"c1": p}, record), {"c1": p}, [(i / 10, parked) for i in range(40)])
    assert seen[0] == (True, 1)  # the first frame is a full check
    held = [n for inferred, n in seen if not inferred]
    assert held, "a still scene must be held"
    assert all(n == 1 for n in held)  # the parked square is still described on held frames


def test_configured_analytics_come_from_the_analytics_package(tmp_path: Path, squares: Detector) -> None:
    from edge.analytics_hook import build_camera_analytics
    from edge.config import EdgeConfig

    lot = {"name": "lot", "polygon": [[0.2, 0.5], [0.6, 0.5], [0.6, 1.0], [0.2, 1.0]]}
    plain = camera(zones=[lot])
    parking = {"zone": "lot", "stationary_s": 2, "warn_after_s": 4, "grace_s": 4, "plates": False}
    enforced = camera(kind="road_warden", speaker_id="s1", zones=[lot], analytics={"illegal_parking": [parking]})
    edge = EdgeConfig(edge_id="e")
    assert [a.name for a in build_camera_analytics(plain, edge, tmp_path)] == ["object"]
    analytics = build_camera_analytics(enforced, edge, tmp_path)
    assert [a.name for a in analytics] == ["illegal_parking"]
    # A red square ("car" through the label map) parks in the lot: the analytic's drafts come through.
    p = CameraPipeline(enforced, 30.0, analytics)
    cars = create_detector(DetectorConfig(model=str(squares_model_path(squares)), labels={"red": "car"}))
    rec = Recorder()
    frames = [(1000 + i / 10, frame_with([("red", (min(200, 10 * i), 240))])) for i in range(150)]
    drive(DetectorWorker(cars, {"c1": p}, rec), {"c1": p}, frames)
    assert rec.drafts
    assert {d.analytic for d in rec.drafts} == {"illegal_parking"}


def squares_model_path(detector: Detector) -> Path:
    """The model file behind the `squares` fixture's detector."""
    config = getattr(detector, "config", None)
    assert config is not None
    return Path(config.model)


def test_a_tentative_track_keeps_the_detector_looking_without_motion() -> None:
    # one detection makes a tentative track (min_hits 2); if nothing moves afterwards (a car that has
    # just pulled in and stopped), only that track can ask the detector to look again: otherwise it
    # would wait for the 60 s full check to be confirmed
    p = pipeline(camera())
    still = frame_with([])
    first = p.gate(still, 0.0)
    assert first is not None
    p.process(first, Detections.empty(("red",)))
    seen = Detections(np.array([[0.3, 0.5, 0.4, 0.6]], np.float32), np.array([0.9], np.float32),
                      np.array([0], np.int32), ("red",))  # fmt: skip
    second = p.gate(still, 0.2)
    assert second is not None
    assert second.decision.reason is Reason.NO_MOTION
    p.process(replace(second, decision=first.decision), seen)  # as if a full check had found it
    assert p.tracker.tentative()
    third = p.gate(still, 0.4)
    assert third is not None
    assert third.decision.reason is Reason.TRACKING
    p.process(third, seen)
    assert p.tracker.tracks(), "confirmed by the second detection"
