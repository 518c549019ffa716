"""Clock port: logic takes time as an argument; services read it from an injected Clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Source of wall time (epoch seconds) and monotonic time."""

    def now(self) -> float:
        """Wall-clock time in epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for measuring intervals."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Wall-clock time in epoch seconds."""
        return time.time()

    def monotonic(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to; for tests and replays."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        """Current fake wall time."""
        return self._now

    def monotonic(self) -> float:
        """Current fake monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
        self._mono += seconds

    def set(self, epoch_s: float) -> None:
        """Jump wall time forward to `epoch_s` (monotonic moves by the same amount)."""
        self.advance(epoch_s - self._now)
