"""Camera stream health (pure): capture fps, online/degraded/offline with debounce, watchdog and backoff.

- offline: no frame for `offline_after_s` (published as soon as it is true: the timeout is the debounce);
- degraded: frames arrive but capture fps stayed under `min_fps` for `degraded_after_s`;
- online: frames flow at a healthy rate, held for `recover_s` before it is published. Each time the
  stream drops again soon after recovering, the hold doubles (up to `max_recover_s`), so a flapping
  link publishes a handful of changes instead of a storm.
The watchdog asks for a reconnect when the stream is offline, or degraded for `reconnect_on_collapse_s`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge.config_camera import WatchdogConfig
from qinghe.contracts import CameraState, CameraStatus

FLAP_WINDOW_FACTOR = 4.0  # a drop within this many recover holds of the last recovery counts as a flap


class FpsMeter:
    """Frames per second over a sliding window (bounded: old timestamps are dropped)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._stamps: deque[float] = deque()

    def tick(self, now: float) -> None:
        """Count one frame at `now`."""
        self._stamps.append(now)
        self._trim(now)

    def fps(self, now: float) -> float:
        """Frames per second over the window ending at `now`."""
        self._trim(now)
        return len(self._stamps) / self.window_s

    def reset(self) -> None:
        """Forget every frame."""
        self._stamps.clear()

    def _trim(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self.window_s:
            self._stamps.popleft()


class Backoff:
    """Exponential reconnect delays: min, 2x min, ... capped at max; reset after a healthy stretch."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max_s
        self._next = min_s

    def next_delay(self) -> float:
        """The delay before the next attempt (doubles each call)."""
        delay = self._next
        self._next = min(self.max_s, self._next * 2)
        return delay

    def reset(self) -> None:
        """Start again from the minimum delay."""
        self._next = self.min_s


@dataclass(frozen=True, slots=True)
class HealthVerdict:
    """What `tick` concluded: a status to publish (if it changed) and whether to reconnect."""

    status: CameraStatus | None
    reconnect_reason: str | None = None


class CameraHealth:
    """Health of one camera stream, advanced by frames, errors and periodic ticks."""

    def __init__(self, settings: WatchdogConfig, min_fps: float, started_at: float) -> None:
        self.settings = settings
        self.min_fps = min_fps
        self.meter = FpsMeter(settings.fps_window_s)
        self._last_frame: float | None = None
        self._started_at = started_at  # a camera that never delivers a frame is offline this long after it
        self._connected_at = started_at  # start of the current attempt: fps warm-up and the reconnect watchdog
        self._low_since: float | None = None
        self._candidate: CameraState | None = None
        self._candidate_since = started_at
        self._published: CameraState | None = None
        self._recovered_at: float | None = None  # last time online was published after an outage
        self._recover_hold = settings.recover_s
        self._last_error = ""

    @property
    def state(self) -> CameraState | None:
        """The last published state (None before the first)."""
        return self._published

    def on_frame(self, now: float) -> None:
        """A frame arrived."""
        self.meter.tick(now)
        self._last_frame = now

    def on_error(self, now: float, reason: str) -> None:
        """Opening or reading failed; the reason is reported with the offline status."""
        del now
        self._last_error = reason

    def on_reconnect(self, now: float) -> None:
        """A new connection attempt starts: fps is measured afresh."""
        self.meter.reset()
        self._low_since = None
        self._connected_at = now

    def tick(self, now: float) -> HealthVerdict:
        """Re-evaluate at `now`; returns the status to publish if the published state changes."""
        state, reason = self._observe(now)
        if state != self._candidate:
            self._candidate, self._candidate_since = state, now
        status = self._maybe_publish(state, reason, now)
        return HealthVerdict(status, self._reconnect_reason(state, now))

    def _observe(self, now: float) -> tuple[CameraState, str]:
        fps = self.meter.fps(now)
        # Not since the current attempt: quick failed reconnects must not keep a dead camera out of `offline`.
        silent_since = self._last_frame if self._last_frame is not None else self._started_at
        if now - silent_since >= self.settings.offline_after_s:
            self._low_since = None
            error = f": {self._last_error}" if self._last_error else ""
            return CameraState.OFFLINE, f"no frame for {now - silent_since:.0f} s{error}"
        if self._last_frame is None:
            return self._published or CameraState.OFFLINE, "connecting"
        warm = now - self._connected_at >= self.settings.fps_window_s
        if warm and fps < self.min_fps:
            self._low_since = self._low_since if self._low_since is not None else now
            if now - self._low_since >= self.settings.degraded_after_s:
                return CameraState.DEGRADED, f"capture fps {fps:.1f} below {self.min_fps:.1f}"
        else:
            self._low_since = None
        return CameraState.ONLINE, ""

    def _maybe_publish(self, state: CameraState, reason: str, now: float) -> CameraStatus | None:
        if state == self._published or (reason == "connecting" and self._published is None):
            return None
        recovering = state is CameraState.ONLINE and self._published is not None
        if recovering and now - self._candidate_since < self._recover_hold:
            return None
        if state is CameraState.OFFLINE and self._published is CameraState.ONLINE:
            self._recover_hold = self._next_recover_hold(now)
        if recovering:
            self._recovered_at = now
        self._published = state
        return CameraStatus(state=state, since=now, fps=round(self.meter.fps(now), 2), reason=reason)

    def _next_recover_hold(self, now: float) -> float:
        """Double the hold when the link drops soon after its last recovery (flapping), else reset it."""
        window = self._recover_hold * FLAP_WINDOW_FACTOR
        if self._recovered_at is not None and now - self._recovered_at < window:
            return min(self.settings.max_recover_s, max(self._recover_hold * 2, 0.5))
        return self.settings.recover_s

    def _reconnect_reason(self, state: CameraState, now: float) -> str | None:
        silent_since = max(self._last_frame, self._connected_at) if self._last_frame is not None else None
        if silent_since is not None and now - silent_since >= self.settings.offline_after_s:
            return "no frames"  # this connection has been silent for the whole timeout
        if self._low_since is not None and now - self._low_since >= self.settings.reconnect_on_collapse_s:
            return "frame rate collapsed"
        return None
