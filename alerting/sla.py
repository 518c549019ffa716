"""The "1510" clocks as pure functions over an incident's SlaClock tuple (time is always passed in)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from enum import StrEnum

from qinghe.contracts import IncidentState, SlaClock, SlaClockName

CLOCK_ORDER = (SlaClockName.ACKNOWLEDGE, SlaClockName.ON_SITE, SlaClockName.HANDLED)

Limits = Callable[[SlaClockName], float | None]
"""The deadline (seconds from the clock's start) of each clock, None for no clock."""


class ClockOutcome(StrEnum):
    """How a clock ended, for reporting."""

    MET = "met"  # met before its deadline
    MISSED = "missed"  # breached (whether or not met later)
    PENDING = "pending"  # still counting
    NOT_APPLICABLE = "n/a"  # no deadline, or the incident ended before the clock mattered


def start_clocks(limits: Limits, now: float) -> tuple[SlaClock, ...]:
    """All three clocks started at `now`; a clock with no limit has no deadline."""
    return tuple(_clock(name, limits(name), now) for name in CLOCK_ORDER)


def _clock(name: SlaClockName, limit: float | None, now: float) -> SlaClock:
    return SlaClock(name=name, started_at=now, deadline=None if limit is None else now + limit)


def is_pending(clock: SlaClock) -> bool:
    """Neither met nor breached."""
    return clock.met_at is None and clock.breached_at is None


def rebase(clocks: Iterable[SlaClock], limits: Limits, now: float) -> tuple[SlaClock, ...]:
    """After a colour change: pending clocks restart at `now` with the new colour's limits.

    Met and breached clocks keep their record (a breach is escalated once and never re-armed).
    """
    return tuple(_clock(c.name, limits(c.name), now) if is_pending(c) else c for c in clocks)


def mark_met(clocks: Iterable[SlaClock], names: Iterable[SlaClockName], now: float) -> tuple[SlaClock, ...]:
    """Mark `names` met at `now` (a clock met after its breach keeps the breach: it was met late)."""
    wanted = set(names)
    return tuple(replace(c, met_at=now) if c.name in wanted and c.met_at is None else c for c in clocks)


def due(clocks: Iterable[SlaClock], now: float) -> list[SlaClock]:
    """Pending clocks whose deadline has passed, earliest deadline first."""
    late = [c for c in clocks if is_pending(c) and c.deadline is not None and c.deadline <= now]
    return sorted(late, key=lambda c: (c.deadline or 0.0, CLOCK_ORDER.index(c.name)))


def mark_breached(clocks: Iterable[SlaClock], name: SlaClockName) -> tuple[SlaClock, ...]:
    """Record that `name` missed its deadline (breached_at is the deadline itself)."""
    return tuple(replace(c, breached_at=c.deadline) if c.name == name and is_pending(c) else c for c in clocks)


def next_deadline(clocks: Iterable[SlaClock]) -> float | None:
    """The earliest deadline among pending clocks, if any."""
    deadlines = [c.deadline for c in clocks if is_pending(c) and c.deadline is not None]
    return min(deadlines) if deadlines else None


def outcome(clock: SlaClock, state: IncidentState) -> ClockOutcome:
    """Met, missed, pending or not applicable, as reports count it."""
    if clock.breached_at is not None:
        return ClockOutcome.MISSED
    if clock.met_at is not None:
        return ClockOutcome.MET
    if clock.deadline is None or state in (IncidentState.RESOLVED, IncidentState.CLOSED):
        return ClockOutcome.NOT_APPLICABLE
    return ClockOutcome.PENDING


def clock(clocks: Iterable[SlaClock], name: SlaClockName) -> SlaClock | None:
    """The clock called `name`, if the incident has it."""
    return next((c for c in clocks if c.name == name), None)
