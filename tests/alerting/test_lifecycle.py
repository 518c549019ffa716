"""The incident lifecycle: commands, rejections, history, retained documents, auto-resolve, archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerting.lifecycle import rejection
from qinghe.codec import decode
from qinghe.contracts import AlertKind, CommandRejected, Incident, IncidentState, SignalStatus
from tests.alerting.helpers import Harness, cmd, signal

S = IncidentState

# Which command is legal in which state (by hand, from the issue): ack only from open; arrive from open or
# acknowledged; resolve from any active state; close only once resolved; comment until closed.
LEGAL = {
    "ack": {S.OPEN},
    "arrive": {S.OPEN, S.ACKNOWLEDGED},
    "resolve": {S.OPEN, S.ACKNOWLEDGED, S.ON_SITE},
    "close": {S.RESOLVED},
    "comment": {S.OPEN, S.ACKNOWLEDGED, S.ON_SITE, S.RESOLVED},
}
PATH_TO = {  # commands that bring a fresh incident to each state
    S.OPEN: [],
    S.ACKNOWLEDGED: ["ack"],
    S.ON_SITE: ["arrive"],
    S.RESOLVED: ["resolve"],
    S.CLOSED: ["resolve", "close"],
}
RESULT = {"ack": S.ACKNOWLEDGED, "arrive": S.ON_SITE, "resolve": S.RESOLVED, "close": S.CLOSED}


@pytest.mark.parametrize("state", list(PATH_TO))
@pytest.mark.parametrize("action", list(LEGAL))
def test_command_legality_in_every_state(tmp_path: Path, state: IncidentState, action: str) -> None:
    h = Harness(tmp_path)
    h.send(signal())
    incident_id = h.only().id
    for step in PATH_TO[state]:
        h.command(incident_id, cmd(step))
    assert h.only().incident.state is state
    before = len(h.only().incident.history)
    h.command(incident_id, cmd(action, by="bob", note="n1"))
    rejected = [decode(CommandRejected, e.payload) for e in h.topics("/cmd/rejected")]
    record = h.only()
    if state in LEGAL[action]:
        assert rejected == []
        assert record.incident.state is RESULT.get(action, state)
        last = record.incident.history[-1]
        assert (last.by, last.note) == ("bob", "n1")
    else:
        assert len(rejected) == 1
        assert rejected[0].action == action
        assert rejected[0].by == "bob"
        assert rejected[0].reason
        assert h.topics("/cmd/rejected")[0].topic == f"qh/v1/incident/{incident_id}/cmd/rejected"
        assert len(record.incident.history) == before


@pytest.mark.parametrize(
    ("state", "action", "words"),
    [
        (S.OPEN, "close", "resolve it first"),
        (S.ACKNOWLEDGED, "ack", "already acknowledged"),
        (S.CLOSED, "comment", "closed"),
        (S.RESOLVED, "arrive", "already resolved"),
    ],
)
def test_rejection_reasons_say_why(state: IncidentState, action: str, words: str) -> None:
    incident = Incident("i1", "t", signal().colour, state, 0.0, 0.0, "z", "r", "k", "m")
    reason = rejection(incident, cmd(action))
    assert reason is not None
    assert words in reason


def test_command_without_who_is_rejected() -> None:
    incident = Incident("i1", "t", signal().colour, S.OPEN, 0.0, 0.0, "z", "r", "k", "m")
    assert rejection(incident, cmd("ack", by=" ")) is not None


def test_unknown_incident_is_rejected(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.command("inc-nope", cmd("ack"))
    (entry,) = h.topics("/cmd/rejected")
    assert "unknown incident" in decode(CommandRejected, entry.payload).reason


def test_every_transition_is_in_history_an_alert_and_the_retained_document(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal())
    incident_id = h.only().id
    for action in ("ack", "arrive", "comment", "resolve", "close"):
        h.clock.advance(5)
        h.command(incident_id, cmd(action, by=f"{action}-er"))
    kinds = h.kinds(incident_id)
    assert kinds == [
        AlertKind.OPENED,
        AlertKind.ACKNOWLEDGED,
        AlertKind.ON_SITE,
        AlertKind.COMMENTED,
        AlertKind.RESOLVED,
        AlertKind.CLOSED,
    ]
    record = h.only()
    assert [e.action for e in record.incident.history] == [
        "opened",
        "acknowledged",
        "on_site",
        "commented",
        "resolved",
        "closed",
    ]
    assert [e.by for e in record.incident.history[1:]] == [
        "ack-er",
        "arrive-er",
        "comment-er",
        "resolve-er",
        "close-er",
    ]
    alert_ids = [a.alert_id for a in h.alerts()]
    assert len(set(alert_ids)) == len(alert_ids)
    retained = [e for e in h.outbox if e.topic == f"qh/v1/incident/{incident_id}"]
    assert all(e.retain for e in retained)
    assert decode(Incident, retained[-1].payload).state is S.CLOSED
    topics = {e.topic for e in h.topics("/alert/")}
    assert topics == {"qh/v1/alert/red/smoke_fire"}


def test_closed_incident_is_archived_and_its_retained_topic_cleared(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"archive_after_s": 600})
    h.send(signal())
    incident_id = h.only().id
    h.command(incident_id, cmd("resolve"))
    h.command(incident_id, cmd("close"))
    h.advance(599)
    assert incident_id in h.core.state.records
    h.advance(1)
    assert incident_id not in h.core.state.records
    last = [e for e in h.outbox if e.topic == f"qh/v1/incident/{incident_id}"][-1]
    assert (last.payload, last.retain) == (b"", True)
    stored = h.record(incident_id)
    assert stored.archived_at is not None
    assert stored.incident.state is S.CLOSED
    h.restart()
    assert incident_id not in h.core.state.records
    h.command(incident_id, cmd("comment"))
    assert "unknown incident" in decode(CommandRejected, h.topics("/cmd/rejected")[-1].payload).reason


def test_rule_resolution_auto_resolves_and_auto_close_closes(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"auto_close_resolved_s": 300})
    h.send(signal(key="k"))
    h.advance(30)
    h.send(signal(key="k", status=SignalStatus.RESOLVED))
    record = h.only()
    assert record.incident.state is S.RESOLVED
    assert record.incident.outcome == "auto_resolved"
    assert record.incident.history[-1].by == "rule:r1"
    h.advance(300)
    assert h.only().incident.state is S.CLOSED
    assert h.only().incident.history[-1].by == "system"


def test_unknown_data_marks_the_incident_but_does_not_resolve_it(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(key="k"))
    h.send(signal(key="k", status=SignalStatus.UNKNOWN))
    record = h.only()
    assert (record.incident.state, record.incident.data_state) == (S.OPEN, "unknown")
    h.send(signal(key="k"))
    assert h.only().incident.data_state == "ok"
    assert [e.action for e in h.only().incident.history][-2:] == ["data_unknown", "data_ok"]


def test_flapping_is_marked_and_cleared(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(key="k"))
    h.send(signal(key="k", flapping=True))
    assert h.only().incident.flapping is True
    h.send(signal(key="k", flapping=False))
    assert h.only().incident.flapping is False


def test_signals_are_deduplicated_by_id_and_incidents_by_key(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    first = signal(key="k", signal_id="same")
    h.send(first)
    h.send(first)  # redelivered
    h.send(signal(key="k", signal_id="other"))
    assert len(h.core.state.records) == 1
    assert h.kinds().count(AlertKind.OPENED) == 1
    h.restart()
    h.send(first)  # still remembered after a restart
    assert h.kinds().count(AlertKind.OPENED) == 1


def test_seen_signal_ids_are_evicted_after_the_dedupe_window(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"routing": {"dedupe_window_s": 3600}})
    h.send(signal(key="k", signal_id="old"))
    h.advance(3700)
    assert "old" not in h.core.state.seen
    h.restart()
    assert "old" not in h.core.state.seen


def test_signal_after_the_rule_resolved_opens_a_new_incident(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal(key="k"))
    h.send(signal(key="k", status=SignalStatus.RESOLVED))
    h.send(signal(key="k"))
    assert h.kinds().count(AlertKind.OPENED) == 2


def test_alert_payload_is_the_contract_json(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.send(signal())
    body = json.loads(h.topics("/alert/")[0].payload)
    assert body["kind"] == "opened"
    assert body["incident"]["state"] == "open"
    assert body["ts"].endswith("Z")
    assert {c["name"] for c in body["incident"]["sla"]} == {"acknowledge", "on_site", "handled"}


def test_archived_incidents_and_old_counters_are_purged(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"archive_after_s": 60})
    h.send(signal(key="k"))
    incident_id = h.only().id
    h.command(incident_id, cmd("resolve"))
    h.command(incident_id, cmd("close"))
    h.advance(60)
    assert h.core.keys == {}
    assert h.core.by_zone == {}
    assert h.store.purge(h.clock.now() - 1, "2000-01-01") == 0  # archived just now: kept
    assert h.store.rule_stats()["r1"]["opened"] == 1
    assert h.store.purge(h.clock.now() + 1, "2100-01-01") == 1
    assert h.store.record(incident_id) is None
    assert h.store.rule_stats() == {}


def test_long_history_is_trimmed_on_the_wire_and_kept_in_the_store(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"max_history": 40})
    h.send(signal(key="k"))
    for i in range(100):
        h.command(h.only().id, cmd("comment", note=f"c{i}"))
    record = h.only()
    wire = record.incident.history
    assert len(wire) == 40
    assert wire[0].action == "opened"
    assert wire[20].action == "history_trimmed"
    assert wire[-1].note == "c99"
    assert len(record.older_history) == 101 - 39
    full = [e.note for e in wire[:20]] + [e.note for e in record.older_history] + [e.note for e in wire[21:]]
    assert full[1:] == [f"c{i}" for i in range(100)]  # nothing lost
    assert h.alerts()[-1].alert_id.endswith(".101")
    stored = h.store.load().records[record.id]
    assert stored.older_history == record.older_history
    from alerting.cli import _full_history

    assert [e.note for e in _full_history(stored)][1:] == [f"c{i}" for i in range(100)]
