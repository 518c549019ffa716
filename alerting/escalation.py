"""Missed clocks: publish sla_breached once per clock, re-notify, and raise the incident one responder tier."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from alerting import sla
from alerting.emit import Changes
from alerting.model import IncidentRecord
from qinghe.contracts import AlertKind, SlaClockName

if TYPE_CHECKING:
    from alerting.core import AlertingCore

SYSTEM = "system"


def breach(core: AlertingCore, changes: Changes, record: IncidentRecord, clock_name: SlaClockName, now: float) -> None:
    """Mark `clock_name` breached (at its deadline), alert `sla_breached`, then escalate unless at the top tier."""
    clock = sla.clock(record.incident.sla, clock_name)
    if clock is None or clock.deadline is None or not sla.is_pending(clock):
        return
    record.incident = replace(record.incident, sla=sla.mark_breached(record.incident.sla, clock_name))
    limit = clock.deadline - clock.started_at
    tiers = core.config.responders.tiers
    top = record.incident.tier + 1 >= len(tiers)
    note = f"{clock_name.value} clock missed: {limit:g} s from {core.hhmmss(clock.started_at)} ran out"
    note += f" at {core.hhmmss(clock.deadline)}" + ("; already at the top tier" if top else "")
    core.emitter.emit(
        changes, record, AlertKind.SLA_BREACHED, action="sla_breached", by=SYSTEM, now=now, note=note, clock=clock_name
    )
    if top:
        return
    record.incident = replace(record.incident, tier=record.incident.tier + 1)
    tier = tiers[record.incident.tier]
    note = f"raised to tier {record.incident.tier} ({tier.name}) after the {clock_name.value} clock was missed"
    core.emitter.emit(
        changes, record, AlertKind.ESCALATED, action="escalated", by=SYSTEM, now=now, note=note, clock=clock_name
    )
