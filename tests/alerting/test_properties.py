"""Hypothesis properties of the incident state machine, with restarts through the real store."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting import sla
from alerting.lifecycle import apply_command, rejection
from qinghe.contracts import AlertKind, Colour, CommandAction, Incident, IncidentState, SignalStatus
from tests.alerting.helpers import Harness, cmd, signal

COLOURS = st.sampled_from(list(Colour))
ACTIONS = st.sampled_from([a.value for a in CommandAction])
OPS = st.one_of(
    st.tuples(st.just("fire"), st.integers(0, 2), COLOURS),
    st.tuples(st.just("resolve"), st.integers(0, 2)),
    st.tuples(st.just("unknown"), st.integers(0, 2)),
    st.tuples(st.just("cmd"), st.integers(0, 3), ACTIONS),
    st.tuples(st.just("advance"), st.floats(0, 4000)),
    st.tuples(st.just("restart")),
)


def run(ops: list[tuple[object, ...]], tmp: Path) -> Harness:
    h = Harness(tmp, {"archive_after_s": 900, "routing": {"grouping": {"window_s": 120}}})
    opened: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "fire":
            h.send(signal(key=f"k{op[1]}", colour=op[2], rule_id=f"r{op[1]}"))  # type: ignore[arg-type]
        elif kind == "resolve":
            h.send(signal(key=f"k{op[1]}", status=SignalStatus.RESOLVED, rule_id=f"r{op[1]}"))
        elif kind == "unknown":
            h.send(signal(key=f"k{op[1]}", status=SignalStatus.UNKNOWN, rule_id=f"r{op[1]}"))
        elif kind == "cmd" and opened:
            h.command(opened[int(op[1]) % len(opened)], cmd(str(op[2])))  # type: ignore[call-overload]
        elif kind == "advance":
            h.advance(float(op[1]), step=97.0)  # type: ignore[arg-type]
        elif kind == "restart":
            h.restart()
        opened = list(dict.fromkeys([*opened, *(a.incident_id for a in h.alerts() if a.kind is AlertKind.OPENED)]))
    return h


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=40))
def test_state_machine_invariants(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        h = run(ops, Path(tmp))
        alerts = h.alerts()
        ids = [a.alert_id for a in alerts]
        assert len(ids) == len(set(ids)), "an alert was published twice"
        by_incident: dict[str, list[object]] = {}
        for alert in alerts:
            by_incident.setdefault(alert.incident_id, []).append(alert)
        breaches = Counter((a.incident_id, a.clock) for a in alerts if a.kind is AlertKind.SLA_BREACHED)
        assert all(n == 1 for n in breaches.values()), f"breach published more than once: {breaches}"
        for incident_id, its in by_incident.items():
            states = [a.state for a in its]  # type: ignore[attr-defined]
            if IncidentState.CLOSED in states:
                first = states.index(IncidentState.CLOSED)
                assert first == len(states) - 1, f"{incident_id} changed after it was closed: {states[first:]}"
            stored = h.record(incident_id)
            assert len(stored.incident.history) == len(its), "history and alerts disagree"
            for clock in stored.incident.sla:
                assert (clock.breached_at is not None) == ((incident_id, clock.name) in breaches)
                if clock.breached_at is not None:
                    assert clock.deadline is not None
                    assert clock.met_at is None or clock.met_at > clock.deadline
            if stored.active:
                overdue = [
                    c for c in stored.incident.sla if sla.is_pending(c) and (c.deadline or 1e18) <= h.clock.now()
                ]
                assert overdue == [], "an active incident has an overdue clock nobody fired"
        for alert in alerts:
            if alert.kind is AlertKind.SLA_BREACHED:
                deadline = next(c.deadline for c in alert.incident.sla if c.name is alert.clock)
                assert deadline is not None
                assert alert.ts >= deadline


@settings(max_examples=200, deadline=None)
@given(st.lists(ACTIONS, max_size=12))
def test_no_command_leaves_closed(actions: list[str]) -> None:
    incident = Incident("i", "t", Colour.RED, IncidentState.OPEN, 0.0, 0.0, "z", "r", "k", "m")
    for i, action in enumerate(actions):
        command = cmd(action)
        was_closed = incident.state is IncidentState.CLOSED
        if rejection(incident, command) is None:
            assert not was_closed
            incident, _kind, _history = apply_command(incident, command, float(i))
        else:
            assert incident.state is (IncidentState.CLOSED if was_closed else incident.state)
        if was_closed:
            assert incident.state is IncidentState.CLOSED
