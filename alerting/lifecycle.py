"""The incident lifecycle: which command is legal in which state, and what it changes (pure)."""

from __future__ import annotations

from dataclasses import replace

from alerting import sla
from qinghe.contracts import (
    AlertKind,
    CommandAction,
    HistoryEntry,
    Incident,
    IncidentCommand,
    IncidentState,
    SlaClockName,
)

_S = IncidentState


# action -> (states it is legal in, state it leads to, alert kind, clocks it meets)
COMMANDS: dict[
    CommandAction, tuple[frozenset[IncidentState], IncidentState | None, AlertKind, tuple[SlaClockName, ...]]
] = {
    CommandAction.ACK: (frozenset({_S.OPEN}), _S.ACKNOWLEDGED, AlertKind.ACKNOWLEDGED, (SlaClockName.ACKNOWLEDGE,)),
    CommandAction.ARRIVE: (
        frozenset({_S.OPEN, _S.ACKNOWLEDGED}),
        _S.ON_SITE,
        AlertKind.ON_SITE,
        (SlaClockName.ACKNOWLEDGE, SlaClockName.ON_SITE),
    ),
    CommandAction.RESOLVE: (
        frozenset({_S.OPEN, _S.ACKNOWLEDGED, _S.ON_SITE}),
        _S.RESOLVED,
        AlertKind.RESOLVED,
        (SlaClockName.ACKNOWLEDGE, SlaClockName.HANDLED),
    ),
    CommandAction.CLOSE: (frozenset({_S.RESOLVED}), _S.CLOSED, AlertKind.CLOSED, ()),
    CommandAction.COMMENT: (
        frozenset({_S.OPEN, _S.ACKNOWLEDGED, _S.ON_SITE, _S.RESOLVED}),
        None,
        AlertKind.COMMENTED,
        (),
    ),
}

HISTORY_ACTION = {
    CommandAction.ACK: "acknowledged",
    CommandAction.ARRIVE: "on_site",
    CommandAction.RESOLVE: "resolved",
    CommandAction.CLOSE: "closed",
    CommandAction.COMMENT: "commented",
}


def rejection(incident: Incident, command: IncidentCommand) -> str | None:
    """Why `command` is illegal now (a sentence for the responder), or None if it is legal."""
    allowed, _to, _kind, _clocks = COMMANDS[command.action]
    if not command.by.strip():
        return "the command must say who sends it (by)"
    if incident.state in allowed:
        return None
    state = incident.state.value
    if incident.state is _S.CLOSED:
        return f"incident {incident.id} is closed; nothing can change it"
    if command.action is CommandAction.CLOSE:
        return f"cannot close an incident that is {state}; resolve it first"
    if command.action is CommandAction.ACK:
        return f"cannot acknowledge: the incident is already {state}"
    if command.action is CommandAction.ARRIVE:
        return f"cannot arrive: the incident is already {state}"
    return f"cannot {command.action.value} an incident that is {state}"


def apply_command(incident: Incident, command: IncidentCommand, now: float) -> tuple[Incident, AlertKind, str]:
    """The incident after a legal command (state, met clocks), the alert kind and the history action.

    The caller records the history entry (with the alert); raises ValueError if the command is illegal.
    """
    reason = rejection(incident, command)
    if reason is not None:
        raise ValueError(reason)
    _allowed, to_state, kind, met = COMMANDS[command.action]
    new_state = to_state or incident.state
    changed = replace(incident, state=new_state, sla=sla.mark_met(incident.sla, met, now))
    return changed, kind, HISTORY_ACTION[command.action]


def with_history(incident: Incident, action: str, by: str, now: float, note: str = "") -> Incident:
    """The incident with one more history entry (at its current state and colour) and `updated_at` moved."""
    entry = HistoryEntry(ts=now, action=action, by=by, state=incident.state, colour=incident.colour, note=note)
    return replace(incident, history=(*incident.history, entry), updated_at=max(incident.updated_at, now))
