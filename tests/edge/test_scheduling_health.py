"""Detect-fps pacing and gating decisions; camera health, debounce, flapping, watchdog, backoff (fake time)."""

from __future__ import annotations

import pytest

from edge.config_camera import WatchdogConfig
from edge.health import Backoff, CameraHealth, FpsMeter
from edge.scheduling import FrameScheduler, Reason, SchedulerSettings
from qinghe.contracts import CameraState, CameraStatus


def scheduler(**kw: float | bool) -> FrameScheduler:
    settings = {"detect_fps": 5.0, "full_check_interval_s": 30.0, "stationary_recheck_s": 10.0, **kw}
    return FrameScheduler(SchedulerSettings(**settings))  # type: ignore[arg-type]


def test_pacing_takes_detect_fps_out_of_a_faster_stream() -> None:
    s = scheduler(detect_fps=5.0)
    due = [s.due(i / 25) for i in range(250)]  # 10 s of a 25 fps stream
    assert sum(due) == pytest.approx(50, abs=1)


def test_pacing_after_a_stall_does_not_burst() -> None:
    s = scheduler(detect_fps=5.0)
    assert s.due(0.0)
    assert s.due(10.0)  # 10 s later: one frame, not 50 to catch up
    assert not s.due(10.05)
    assert s.due(10.2)


@pytest.mark.parametrize(
    ("motion", "moving", "stationary", "since_detect", "reason"),
    [
        (True, False, False, 0.2, Reason.MOTION),
        (False, True, False, 0.2, Reason.TRACKING),
        (False, False, True, 11.0, Reason.STATIONARY_RECHECK),
        (False, False, True, 5.0, Reason.NO_MOTION),
        (False, False, False, 0.2, Reason.NO_MOTION),
    ],
)
def test_decision_table(motion: bool, moving: bool, stationary: bool, since_detect: float, reason: Reason) -> None:
    s = scheduler()
    assert s.decide(0.0, False, False, False).reason is Reason.SCHEDULED  # first frame: full check
    decision = s.decide(since_detect, motion, moving, stationary)
    assert decision.reason is reason
    assert decision.detect is (reason is not Reason.NO_MOTION)
    assert not decision.full_check


def test_full_check_comes_on_schedule_without_motion() -> None:
    s = scheduler(full_check_interval_s=30.0)
    reasons = [s.decide(t * 0.2, False, False, False) for t in range(0, 400)]  # 80 s, nothing moving
    full = [i * 0.2 for i, d in enumerate(reasons) if d.full_check]
    assert full == pytest.approx([0.0, 30.0, 60.0])
    assert s.detections == 3
    assert s.decisions == 400


def test_gating_off_detects_every_due_frame() -> None:
    s = scheduler(motion_gating=False)
    s.decide(0.0, False, False, False)
    assert s.decide(0.2, False, False, False).reason is Reason.GATING_OFF


# ----- health ------------------------------------------------------------------------------------


def health(**kw: float) -> CameraHealth:
    settings = WatchdogConfig.model_validate(
        {"offline_after_s": 5, "fps_window_s": 2, "degraded_after_s": 4, "recover_s": 2, "max_recover_s": 16,
         "reconnect_on_collapse_s": 10, **kw}
    )  # fmt: skip
    return CameraHealth(settings, min_fps=4.0, started_at=0.0)


def feed(h: CameraHealth, start: float, end: float, fps: float) -> list[CameraStatus]:
    """Frames at `fps` from start to end, ticking at each frame; returns the statuses published."""
    out = []
    t = start
    while t < end:
        h.on_frame(t)
        verdict = h.tick(t)
        if verdict.status is not None:
            out.append(verdict.status)
        t += 1 / fps
    return out


def silence(h: CameraHealth, start: float, end: float) -> list[CameraStatus]:
    out = []
    t = start
    while t < end:
        verdict = h.tick(t)
        if verdict.status is not None:
            out.append(verdict.status)
        t += 0.5
    return out


def test_first_frame_is_online_then_silence_goes_offline_at_the_timeout() -> None:
    h = health()
    statuses = feed(h, 0.0, 10.0, 10)
    assert [s.state for s in statuses] == [CameraState.ONLINE]
    h.on_error(10.0, "read failed")
    (offline,) = silence(h, 10.0, 30.0)
    assert offline.state is CameraState.OFFLINE
    assert offline.since == pytest.approx(9.9 + 5, abs=0.51)
    assert "read failed" in offline.reason


def test_never_connecting_is_offline_after_the_timeout_not_before() -> None:
    h = health()
    h.on_error(0.5, "cannot open rtsp://cam")
    statuses = silence(h, 0.0, 8.0)
    assert [(s.state, s.since) for s in statuses] == [(CameraState.OFFLINE, 5.0)]
    assert "cannot open" in statuses[0].reason


def test_a_camera_that_never_connects_is_offline_even_when_it_retries_faster_than_the_timeout() -> None:
    h = health()
    statuses: list[CameraStatus] = []
    t = 0.0
    while t < 12.0:  # connection refused at once, a new attempt every second
        h.on_reconnect(t)
        h.on_error(t, "cannot open rtsp://cam")
        verdict = h.tick(t + 0.5)
        statuses += [verdict.status] if verdict.status else []
        t += 1.0
    assert [(s.state, s.since) for s in statuses] == [(CameraState.OFFLINE, 5.5)]
    assert "cannot open" in statuses[0].reason


def test_recovery_is_held_before_online_is_published() -> None:
    h = health()
    feed(h, 0.0, 1.0, 10)
    silence(h, 1.0, 8.0)  # offline
    statuses = feed(h, 8.0, 12.0, 10)
    assert [s.state for s in statuses] == [CameraState.ONLINE]
    assert statuses[0].since == pytest.approx(10.0, abs=0.11)  # 2 s after frames came back


def test_a_flapping_link_publishes_few_changes() -> None:
    h = health()
    published = feed(h, 0.0, 1.0, 10)
    t = 1.0
    for _ in range(10):  # 6 s down, 3 s up, ten times
        published += silence(h, t, t + 6)
        published += feed(h, t + 6, t + 9, 10)
        t += 9
    # Without damping this is 1 + 2 * 10 changes; the doubling recover hold swallows most recoveries.
    assert len(published) <= 6
    assert published[-1].state is CameraState.OFFLINE or published[-1].state is CameraState.ONLINE


def test_low_frame_rate_is_degraded_after_the_hold_and_asks_for_a_reconnect() -> None:
    h = health()
    feed(h, 0.0, 3.0, 10)
    statuses: list[CameraStatus] = []
    reconnect: float | None = None
    t = 3.0
    while t < 20.0:  # 1 fps: below the 4 fps minimum
        h.on_frame(t)
        verdict = h.tick(t)
        statuses += [verdict.status] if verdict.status else []
        if reconnect is None and verdict.reconnect_reason is not None:
            reconnect = t
        t += 1.0
    assert [s.state for s in statuses] == [CameraState.DEGRADED]
    assert "below 4.0" in statuses[0].reason
    assert reconnect is not None
    assert 13.0 <= reconnect <= 17.0


def test_offline_after_frames_asks_for_reconnect() -> None:
    h = health()
    feed(h, 0.0, 2.0, 10)
    verdict = h.tick(8.0)
    assert verdict.status is not None
    assert verdict.status.state is CameraState.OFFLINE
    assert verdict.reconnect_reason == "no frames"


def test_fps_meter_window_and_eviction() -> None:
    meter = FpsMeter(2.0)
    for i in range(100):
        meter.tick(i * 0.1)
    assert meter.fps(9.9) == pytest.approx(10.0, abs=0.5)
    assert meter.fps(30.0) == 0.0
    assert len(meter._stamps) == 0


def test_backoff_doubles_caps_and_resets() -> None:
    b = Backoff(0.5, 4.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5
