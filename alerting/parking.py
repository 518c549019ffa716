"""Closed-loop parking enforcement: grace timer after the voice warning; complied or violation."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from alerting.emit import Changes
from alerting.model import Grace, GraceStatus, IncidentRecord
from qinghe.contracts import ActionSpec, AlertKind, Colour, Evidence, IncidentState, RuleSignal

if TYPE_CHECKING:
    from alerting.core import AlertingCore

DEFAULT_GRACE_S = 120.0
DEFAULT_SETTLE_S = 0.0
SYSTEM = "system"


def is_violation_update(signal: RuleSignal, violation_colour: Colour) -> bool:
    """Does a firing update report the violation phase: an `after` snapshot, explain.phase=violation, or
    the rule itself raising the colour to the violation colour (the edge decided before our timer)?"""
    return (
        signal.explain.get("phase") == "violation"
        or any(e.role == "after" for e in signal.evidence)
        or signal.colour.rank >= violation_colour.rank
    )


def start_grace(core: AlertingCore, changes: Changes, record: IncidentRecord, action: ActionSpec, now: float) -> None:
    """Start the grace timer (params `grace_s`, `settle_s`, `violation_colour`) and record it."""
    grace_s = _float(action.params.get("grace_s"), DEFAULT_GRACE_S)
    settle_s = _float(action.params.get("settle_s"), DEFAULT_SETTLE_S)
    raw_colour = action.params.get("violation_colour")
    try:
        colour = Colour(str(raw_colour)) if raw_colour else record.incident.colour.raised()
    except ValueError:
        colour = record.incident.colour.raised()
    record.grace = Grace(started_at=now, deadline=now + grace_s, violation_colour=colour, settle_s=settle_s)
    until = datetime.fromtimestamp(now + grace_s, core.config.tz).strftime("%H:%M:%S")
    note = f"grace {grace_s:g} s (until {until}); if still parked: {colour.value}, violation"
    if settle_s:
        note += f" (the edge's verdict awaited {settle_s:g} s more)"
    core.emitter.emit(changes, record, AlertKind.UPDATED, action="grace_started", by=SYSTEM, now=now, note=note)


def complied(core: AlertingCore, changes: Changes, record: IncidentRecord, now: float, by: str) -> None:
    """The vehicle left within grace: resolve and close the incident as complied."""
    grace = record.grace
    assert grace is not None
    grace.status = GraceStatus.COMPLIED
    record.incident = replace(record.incident, state=IncidentState.RESOLVED, outcome="complied")
    record.resolved_at = now
    waited = now - grace.started_at
    note = f"vehicle left {waited:g} s after the warning, within the {grace.deadline - grace.started_at:g} s grace"
    core.emitter.emit(changes, record, AlertKind.RESOLVED, action="complied", by=by, now=now, note=note)
    core.close(changes, record, now, "outcome complied; no enforcement needed")


def violation(core: AlertingCore, changes: Changes, record: IncidentRecord, now: float, why: str) -> None:
    """Still parked after grace (or the edge reported the violation): raise the colour, keep before/after evidence."""
    grace = record.grace
    assert grace is not None
    grace.status = GraceStatus.VIOLATION
    record.colour_floor = grace.violation_colour
    evidence = record.incident.evidence
    if evidence and not any(e.role == "before" for e in evidence):
        first = min(evidence, key=lambda e: e.ts)
        evidence = (Evidence(ref=first.ref, role="before", ts=first.ts, event_id=first.event_id), *evidence)
    record.incident = replace(record.incident, outcome="violation", evidence=evidence)
    roles = sorted({e.role for e in evidence})
    note = f"{why}; for the enforcement team (evidence: {', '.join(roles) or 'none yet'})"
    core.emitter.emit(changes, record, AlertKind.UPDATED, action="violation", by=SYSTEM, now=now, note=note)
    core.recolour(changes, record, now, by=SYSTEM)


def _float(value: object, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return default
    return default
