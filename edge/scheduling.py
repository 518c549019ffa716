"""When the detector must look at a camera's frame (pure): detect-fps pacing, motion gating, full checks.

Per due frame (at most `detect_fps` per second) the decision is, in order:
1. `scheduled`: a full-frame check is due (per camera kind), whatever the motion;
2. `motion`: the small-frame motion detector saw something;
3. `tracking`: objects are still moving (they may move below the motion threshold);
4. `stationary_recheck`: still objects are re-confirmed every `stationary_recheck_s`;
5. otherwise `no_motion`: the frame is held (no inference) and tracks keep their state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why a frame was (or was not) sent to the detector."""

    SCHEDULED = "scheduled"
    MOTION = "motion"
    TRACKING = "tracking"
    STATIONARY_RECHECK = "stationary_recheck"
    NO_MOTION = "no_motion"
    GATING_OFF = "gating_off"


@dataclass(frozen=True, slots=True)
class Decision:
    """The scheduler's verdict for one due frame."""

    detect: bool
    reason: Reason
    full_check: bool = False


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """Pacing and gating of one camera."""

    detect_fps: float
    full_check_interval_s: float
    stationary_recheck_s: float
    motion_gating: bool = True


class FrameScheduler:
    """Decides per frame; holds only timestamps (no per-object state)."""

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self._period = 1.0 / settings.detect_fps
        self._next_due: float | None = None
        self._last_full: float | None = None
        self._last_detect: float | None = None
        self.decisions = 0
        self.detections = 0

    def due(self, now: float) -> bool:
        """Is a frame arriving at `now` due for consideration (detect-fps pacing)? Consumes the slot."""
        if self._next_due is None or now >= self._next_due - 1e-3:
            # Stay on the grid when on time; after a stall jump ahead instead of bursting to catch up.
            base = self._next_due if self._next_due is not None and now - self._next_due < self._period else now
            self._next_due = base + self._period
            return True
        return False

    def decide(self, now: float, motion: bool, moving_tracks: bool, stationary_tracks: bool) -> Decision:
        """The decision for a due frame, given the motion verdict and what the tracker holds."""
        self.decisions += 1
        decision = self._decide(now, motion, moving_tracks, stationary_tracks)
        if decision.detect:
            self.detections += 1
            self._last_detect = now
            if decision.full_check:
                self._last_full = now
        return decision

    def _decide(self, now: float, motion: bool, moving_tracks: bool, stationary_tracks: bool) -> Decision:
        if self._last_full is None or now - self._last_full >= self.settings.full_check_interval_s:
            return Decision(True, Reason.SCHEDULED, full_check=True)
        if not self.settings.motion_gating:
            return Decision(True, Reason.GATING_OFF)
        if motion:
            return Decision(True, Reason.MOTION)
        if moving_tracks:
            return Decision(True, Reason.TRACKING)
        last = self._last_detect if self._last_detect is not None else now
        if stationary_tracks and now - last >= self.settings.stationary_recheck_s:
            return Decision(True, Reason.STATIONARY_RECHECK)
        return Decision(False, Reason.NO_MOTION)
