"""Timeline tests with a fake clock: every 1510 clock, per colour, and every escalation path."""

from __future__ import annotations

from pathlib import Path

import pytest

from qinghe.contracts import AlertKind, Colour, IncidentState, SlaClockName
from tests.alerting.helpers import Harness, cmd, signal

ACK, ON_SITE, HANDLED = SlaClockName.ACKNOWLEDGE, SlaClockName.ON_SITE, SlaClockName.HANDLED

# The contract's table, written out by hand: seconds after opening; None = no clock.
CONTRACT = {
    Colour.RED: (60, 300, 600),
    Colour.ORANGE: (60, 300, 600),
    Colour.YELLOW: (600, 1800, 7200),
    Colour.BLUE: (3600, None, 86400),
}
# Default responder ladder: team (0) -> squad leader (1) -> duty chief (2); red starts at the squad leader.
START_TIER = {Colour.RED: 1, Colour.ORANGE: 0, Colour.YELLOW: 0, Colour.BLUE: 0}


def breaches(h: Harness) -> list[tuple[SlaClockName | None, float]]:
    """(clock, its recorded breach time - opening time) of each sla_breached alert, in order."""
    out = []
    for alert in h.alerts():
        if alert.kind is AlertKind.SLA_BREACHED:
            clock = next(c for c in alert.incident.sla if c.name is alert.clock)
            assert clock.breached_at is not None
            out.append((alert.clock, round(clock.breached_at - alert.incident.opened_at, 3)))
    return out


def fired_at(h: Harness) -> list[float]:
    """When each sla_breached alert was published, relative to the opening."""
    opened = h.alerts()[0].ts
    return [round(a.ts - opened, 3) for a in h.alerts() if a.kind is AlertKind.SLA_BREACHED]


@pytest.mark.parametrize("colour", list(CONTRACT))
def test_every_clock_breaches_at_its_contract_deadline_exactly_once(tmp_path: Path, colour: Colour) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=colour))
    deadlines = [d for d in CONTRACT[colour] if d is not None]
    for deadline in deadlines:
        h.advance(deadline - 0.5 - (h.clock.now() - h.alerts()[0].ts))
        assert all(t < deadline for _, t in breaches(h)), "breached before its deadline"
        h.advance(0.5)
        assert fired_at(h)[-1] == deadline  # fired on the tick at the deadline
    h.advance(86400 * 2, step=3600)  # long after: nothing more fires
    names = [c for c, d in zip((ACK, ON_SITE, HANDLED), CONTRACT[colour], strict=True) if d is not None]
    assert breaches(h) == [(name, float(d)) for name, d in zip(names, deadlines, strict=True)]


@pytest.mark.parametrize("colour", list(CONTRACT))
def test_each_missed_clock_escalates_one_tier_until_the_duty_chief(tmp_path: Path, colour: Colour) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=colour))
    h.advance(86400 * 2, step=30)
    tiers = [a.tier for a in h.alerts() if a.kind is AlertKind.ESCALATED]
    missed = sum(d is not None for d in CONTRACT[colour])
    expected = list(range(START_TIER[colour] + 1, 3))[:missed]
    assert tiers == expected
    assert h.only().incident.tier == (expected[-1] if expected else START_TIER[colour])
    top_notes = [a.note for a in h.alerts() if a.kind is AlertKind.SLA_BREACHED and "top tier" in a.note]
    assert len(top_notes) == missed - len(expected)


def test_breach_renotifies_and_escalation_notifies_the_new_tier(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=Colour.ORANGE))
    assert [e.topic for e in h.topics("/notify/")] == ["qh/v1/notify/team/duty-team"]
    h.advance(60)
    assert [e.topic for e in h.topics("/notify/")] == [
        "qh/v1/notify/team/duty-team",
        "qh/v1/notify/team/duty-team",  # re-notified on the breach
        "qh/v1/notify/squad-leader",  # escalated
    ]


def test_ack_in_time_meets_the_clock_and_only_later_clocks_breach(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=Colour.RED))
    incident_id = h.only().id
    h.advance(45)
    h.command(incident_id, cmd("ack"))
    h.advance(400, step=10)
    assert breaches(h) == [(ON_SITE, 300.0)]
    ack = next(c for c in h.only().incident.sla if c.name is ACK)
    assert ack.met_at == pytest.approx(h.alerts()[0].ts + 45)
    assert ack.breached_at is None


def test_arrive_implies_acknowledge_and_resolve_stops_every_clock(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=Colour.YELLOW))
    incident_id = h.only().id
    h.advance(100)
    h.command(incident_id, cmd("arrive"))
    h.advance(100)
    h.command(incident_id, cmd("resolve"))
    h.advance(86400, step=600)
    assert breaches(h) == []
    clocks = {c.name: c for c in h.only().incident.sla}
    opened = h.alerts()[0].ts
    assert clocks[ACK].met_at == pytest.approx(opened + 100)
    assert clocks[ON_SITE].met_at == pytest.approx(opened + 100)
    assert clocks[HANDLED].met_at == pytest.approx(opened + 200)


def test_late_ack_is_recorded_as_met_late_after_the_breach(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=Colour.RED))
    h.advance(90)
    h.command(h.only().id, cmd("ack"))
    ack = next(c for c in h.only().incident.sla if c.name is ACK)
    assert ack.breached_at is not None
    assert ack.met_at is not None
    assert ack.met_at > ack.breached_at


def test_colour_change_rebases_pending_clocks_from_the_change(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=Colour.YELLOW))
    h.advance(500)
    h.send(signal(colour=Colour.RED))  # same key: the rule raised it
    kinds = h.kinds()
    assert kinds[-1] is AlertKind.COLOUR_CHANGED
    h.advance(59)
    assert breaches(h) == []
    h.advance(1)
    assert breaches(h) == [(ACK, 560.0)]  # 500 s + red's 60 s, not yellow's 600 s
    assert fired_at(h) == [560.0]
    assert h.only().incident.colour is Colour.RED


def test_colour_change_keeps_met_and_breached_clocks(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=Colour.ORANGE))
    h.advance(70)  # ack breached at 60
    h.send(signal(colour=Colour.RED))
    h.advance(600, step=10)
    clocks = [(c, t) for c, t in breaches(h)]
    assert clocks.count((ACK, 60.0)) == 1
    assert [c for c, _ in clocks].count(ACK) == 1  # a breached clock is never re-armed
    assert (ON_SITE, 370.0) in clocks  # re-based at 70 s with red's 300 s


def test_per_type_override_and_disabled_clock(tmp_path: Path) -> None:
    config = {"sla": {"types": {"illegal_parking": {"yellow": {"acknowledge": "2m", "on_site": "-"}}}}}
    h = Harness(tmp_path, config)
    h.send(signal(colour=Colour.YELLOW, incident_type="illegal_parking", key="p1"))
    h.advance(8000, step=60)
    assert breaches(h) == [(ACK, 120.0), (HANDLED, 7200.0)]  # handled inherits the contract's 2 h


def test_deadline_passed_while_down_fires_at_once_after_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(colour=Colour.RED))
    opened = h.only().incident.opened_at
    h.clock.advance(400)  # the service is down: no ticks
    h.restart()
    assert h.only().incident.state is IncidentState.OPEN
    h.tick()
    assert breaches(h) == [(ACK, 60.0), (ON_SITE, 300.0)]
    assert fired_at(h) == [400.0, 400.0]  # both at once, on the first tick after the restart
    clocks = {c.name: c for c in h.only().incident.sla}
    assert all(c.started_at == opened for c in clocks.values())
    assert clocks[ACK].breached_at == opened + 60  # the deadline, not the restart time
    h.restart()
    h.advance(100)
    h.restart()
    h.advance(300, step=50)
    assert breaches(h) == [(ACK, 60.0), (ON_SITE, 300.0), (HANDLED, 600.0)]
    assert fired_at(h) == [400.0, 400.0, 600.0]
