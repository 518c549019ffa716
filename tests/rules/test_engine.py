"""Engine behaviour: data gaps, flapping, expiry, eviction, reload swaps, checkpoints, explain, actions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qinghe.codec import decode, encode
from qinghe.contracts import RuleSignal, SignalStatus
from rules.engine import Engine
from tests.rules.helpers import MIN, REGISTRY, T0, brief, event, reading, rules_from, run, series

AIR = """
rules:
  - id: air
    type: air_pollution
    readings: {kind: air}
    value: pm25
    for: 5m
    tiers: [{colour: orange, above: 150}, {colour: yellow, above: 75}]
    resolve: {below: 60}
    gap: {after: 3m}
"""


def test_a_silent_sensor_makes_a_firing_instance_unknown_without_resetting_it(tmp_path: Path) -> None:
    values = [80] * 6 + [None] * 6 + [80, 80, 50]
    signals = run(rules_from(AIR, tmp_path), series("a1", "pm25", values), until=T0 + 20 * MIN)
    assert [(m, st, c) for m, _r, st, c in brief(signals)] == [
        (5, "firing", "yellow"), (8, "unknown", "yellow"), (12, "firing", "yellow"), (14, "resolved", "yellow"),
    ]  # fmt: skip
    unknown = signals[1]
    assert unknown.explain["data_state"] == "unknown"
    assert "air.pm25 silent 3m" in str(unknown.explain["silent"])
    assert signals[2].explain["transition"] == "data_back"


def test_a_pending_for_timer_neither_resets_nor_freezes_during_a_gap(tmp_path: Path) -> None:
    # above 75 from 0; silent after 1, so unknown from 4 (3 minute gap); the 5 minute timer falls due at 5
    # while unknown and keeps its start: when data returns at 7 still above, it fires at once (a reset
    # would fire at 12, a frozen timer at 9)
    values: list[float | None] = [80, 80, None, None, None, None, None, 80]
    signals = run(rules_from(AIR, tmp_path), series("a1", "pm25", values), until=T0 + 7 * MIN)
    assert brief(signals) == [(7, "air", "firing", "yellow")]
    assert signals[0].explain["since"] == T0


def test_notify_always_signals_unknown_for_quiet_instances_too(tmp_path: Path) -> None:
    text = AIR.replace("gap: {after: 3m}", "gap: {after: 3m, notify: always}")
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", [30, 30, None, None, None, None, 30]))
    assert [(m, st) for m, _r, st, _c in brief(signals)] == [(4, "unknown"), (6, "resolved")]
    assert signals[1].explain["reason"] == "data returned"


def test_notify_never_keeps_gaps_silent(tmp_path: Path) -> None:
    text = AIR.replace("gap: {after: 3m}", "gap: {after: 3m, notify: never}")
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", [80] * 6 + [None] * 5 + [50]))
    assert [st for _m, _r, st, _c in brief(signals)] == ["firing", "resolved"]


def test_an_instance_unknown_too_long_is_resolved_as_expired(tmp_path: Path) -> None:
    text = AIR.replace("gap: {after: 3m}", "gap: {after: 3m, expire: 1h}")
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", [80] * 6), until=T0 + 3 * 3600)
    # last input at 5: one hour without input expires it at 65
    assert [(m, st) for m, _r, st, _c in brief(signals)] == [(5, "firing"), (8, "unknown"), (65, "resolved")]
    assert str(signals[-1].explain["reason"]) == "expired: no input for 3600 s"


FLAPPY = """
rules:
  - id: flap
    type: t
    readings: {kind: air}
    value: pm25
    tiers: [{colour: yellow, above: 75}]
    resolve: {below: 60}
    flapping: {window: 30m, cycles: 3, settle: 10m}
"""


def test_flapping_is_held_open_and_marked_then_settles(tmp_path: Path) -> None:
    # up and down every minute: fire 0, resolve 1, fire 2, resolve 3, fire 4, (3rd clear at 5 -> held)
    values = [80, 50] * 5 + [50] * 15
    signals = run(rules_from(FLAPPY, tmp_path), series("a1", "pm25", values))
    got = [(m, st, s.flapping) for (m, _r, st, _c), s in zip(brief(signals), signals, strict=True)]
    # held from 5; re-fires at 6 and 8 stay inside the open incident; quiet from 9: settles at 19
    assert got == [
        (0, "firing", False), (1, "resolved", False), (2, "firing", False), (3, "resolved", False),
        (4, "firing", False), (5, "firing", True), (19, "resolved", False),
    ]  # fmt: skip
    assert signals[5].explain["transition"] == "flapping"
    assert signals[5].explain["flapping_cycles"] == 3


def test_signal_ids_are_deterministic_and_signals_round_trip(tmp_path: Path) -> None:
    timeline = series("a1", "pm25", [80] * 6 + [50])
    first = run(rules_from(AIR, tmp_path), timeline)
    second = run(rules_from(AIR, tmp_path), timeline)
    assert [s.signal_id for s in first] == [s.signal_id for s in second]
    assert len({s.signal_id for s in first}) == len(first)
    assert decode(RuleSignal, encode(first[0])) == first[0]


def test_explain_says_rule_values_window_and_threshold(tmp_path: Path) -> None:
    text = AIR.replace("value: pm25", "value: avg(pm25, 5m)")
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", [160] * 7))
    explain = signals[0].explain
    assert explain["rule"] == "air"
    assert str(explain["source"]).endswith("rules.yaml:3")
    assert explain["condition"] == "avg(pm25, 5m) > 150"
    assert explain["value"] == 160.0
    assert explain["threshold"] == 150.0
    assert explain["window_s"] == 300.0
    assert explain["for_s"] == 300.0
    assert explain["since"] == T0
    assert explain["tier"] == "orange"
    assert signals[0].sources[0].sensor_id == "a1"
    assert signals[0].location is not None
    assert signals[0].location.lat == pytest.approx(30.25)


PARKING = """
rules:
  - id: parking
    type: illegal_parking
    events: {analytic: illegal_parking}
    per: episode
    tiers:
      - {colour: orange, when: {event: {phase: violation}}}
      - {colour: yellow, when: {event: {phase: warning}}}
    dedup_key: "parking:{camera}:{episode}"
    message: "{plate|无牌} 违停 {zone}"
    actions:
      - {kind: voice, text: "{plate}，请驶离 {camera_id}", repeat: 3, expires: 90s}
      - {kind: grace, grace: 2m, violation_colour: red}
      - {kind: notify, topic: traffic, send_on: [opened, escalated, resolved]}
"""


def test_parking_actions_evidence_and_sources(tmp_path: Path) -> None:
    timeline = [
        (T0, event("c1", T0, "illegal_parking", "update", episode="p1", phase="warning", plate="浙A12345",
                   snapshots=["before"], event_id="ev-w")),
        (T0 + 3 * MIN, event("c1", T0 + 3 * MIN, "illegal_parking", "update", episode="p1", phase="violation",
                             snapshots=["after"], event_id="ev-v")),
        (T0 + 4 * MIN, event("c1", T0 + 4 * MIN, "illegal_parking", "end", episode="p1", outcome="left")),
    ]  # fmt: skip
    opened, violation, resolved = run(rules_from(PARKING, tmp_path), timeline)
    voice, grace, notify = opened.actions
    # {plate}, {zone} and {camera_id} are left for alerting, which normalises them for speech
    assert (voice.kind, voice.target, voice.template) == ("voice", "spk-1", "{plate}，请驶离 {camera_id}")
    assert voice.params == {"repeat": 3, "expires_s": 90.0, "camera_id": "c1", "plate": "浙A12345"}
    assert (grace.kind, grace.params) == ("grace", {"grace_s": 120.0, "settle_s": 0.0, "violation_colour": "red"})
    assert (notify.kind, notify.target) == ("notify", "traffic")
    assert opened.message == "浙A12345 违停 z1"
    assert opened.dedup_key == "parking:c1:p1"
    assert opened.camera_id == "c1"
    assert [e.role for e in opened.evidence] == ["before"]
    assert [e.event_id for e in opened.evidence] == ["ev-w"]
    assert [s.id for s in opened.sources] == ["ev-w"]
    assert violation.colour.value == "orange"
    assert [a.kind for a in violation.actions] == ["notify"]
    assert [e.role for e in violation.evidence] == ["before", "after"]
    assert violation.explain["phase"] == "violation"
    assert resolved.status is SignalStatus.RESOLVED
    assert resolved.explain["outcome"] == "left"
    assert resolved.message.startswith("浙A12345")  # the plate read earlier in the episode


def test_new_evidence_on_an_open_incident_is_an_update(tmp_path: Path) -> None:
    timeline = [
        (T0, event("c1", T0, "illegal_parking", "update", episode="p", phase="warning")),
        (
            T0 + MIN,
            event("c1", T0 + MIN, "illegal_parking", "update", episode="p", phase="warning", snapshots=["best"]),
        ),
        (T0 + 2 * MIN, event("c1", T0 + 2 * MIN, "illegal_parking", "update", episode="p", phase="warning")),
    ]
    signals = run(rules_from(PARKING, tmp_path), timeline)
    assert [s.explain["transition"] for s in signals] == ["opened", "updated"]


def test_ended_episodes_and_idle_instances_are_evicted(tmp_path: Path) -> None:
    ruleset = rules_from(PARKING + AIR.replace("rules:\n", ""), tmp_path)
    engine = Engine(ruleset, REGISTRY)
    engine.step(event("c1", T0, "illegal_parking", "start", episode="x", phase="dwelling"), T0)
    engine.step(reading("a1", T0, pm25=10), T0)
    assert engine.summary()["parking"]["instances"] == 1
    engine.step(event("c1", T0 + 10, "illegal_parking", "end", episode="x"), T0 + 10)
    assert engine.summary()["parking"]["instances"] == 0  # the episode ended with nothing open
    engine.advance(T0 + 5 * MIN)
    assert engine.summary()["air"]["instances"] == 1  # idle less than its horizon (for: 5m + 60 s)
    engine.advance(T0 + 10 * MIN)
    assert engine.summary()["air"]["instances"] == 0
    assert engine.counters["instances_evicted"] == 2


def test_max_instances_evicts_the_idlest_and_refuses_when_all_are_open(tmp_path: Path) -> None:
    text = PARKING.replace("    per: episode\n", "    per: episode\n    max_instances: 2\n")
    engine = Engine(rules_from(text, tmp_path), REGISTRY)
    for i, t in enumerate((T0, T0 + 1, T0 + 2)):
        engine.step(event("c1", t, "illegal_parking", "start", episode=f"d{i}", phase="dwelling"), t)
    assert sorted(k[0] for k in engine.instances["parking"]) == ["d1", "d2"]
    for i, t in enumerate((T0 + 3, T0 + 4)):
        engine.step(event("c1", t, "illegal_parking", "update", episode=f"w{i}", phase="warning"), t)
    assert engine.summary()["parking"]["firing"] == 2
    engine.step(event("c1", T0 + 5, "illegal_parking", "update", episode="w9", phase="warning"), T0 + 5)
    assert engine.counters["instances_refused"] == 1


def test_swap_keeps_state_of_rules_that_stay_and_resolves_removed_ones(tmp_path: Path) -> None:
    both = rules_from(AIR + PARKING.replace("rules:\n", ""), tmp_path, name="both.yaml")
    engine = Engine(both, REGISTRY)
    for t, item in series("a1", "pm25", [80, 80, 80]):
        engine.step(item, t)
    engine.step(event("c1", T0, "illegal_parking", "update", episode="p", phase="warning"), T0 + 2 * MIN)
    # new version: air's threshold edited (still pending), parking removed
    edited = rules_from(AIR.replace("above: 75", "above: 70"), tmp_path, name="air-only.yaml")
    out = engine.swap(edited, T0 + 2 * MIN)
    assert [(s.rule_id, s.status.value, s.explain["reason"]) for s in out] == [("parking", "resolved", "rule removed")]
    fired = []
    for t, item in series("a1", "pm25", [80, 80, 80], start=T0 + 3 * MIN):
        fired += engine.step(item, t)
    assert brief(fired) == [(5, "air", "firing", "yellow")]  # the 5 minute timer kept its start at 0


def test_checkpoint_restore_continues_exactly_like_an_uninterrupted_engine(tmp_path: Path) -> None:
    ruleset = rules_from(AIR + FLAPPY.replace("rules:\n", ""), tmp_path)
    timeline = series("a1", "pm25", [80, 50, 80, 80, 80, 80, 80, 90, None, None, None, None, 40, 80, 80])
    straight = run(ruleset, timeline, until=T0 + 30 * MIN)
    cut = 6
    engine = Engine(ruleset, REGISTRY)
    before = [s for t, item in timeline[:cut] for s in engine.step(item, t)]
    snapshot = json.loads(json.dumps(engine.snapshot()))  # through JSON, as on disk
    restored = Engine(ruleset, REGISTRY)
    restored.restore(snapshot)
    after = run(ruleset, timeline[cut:], until=T0 + 30 * MIN, engine=restored)
    assert [s.signal_id for s in before + after] == [s.signal_id for s in straight]


def test_restore_rejects_an_unknown_checkpoint_version(tmp_path: Path) -> None:
    engine = Engine(rules_from(AIR, tmp_path), REGISTRY)
    with pytest.raises(ValueError, match="unsupported checkpoint version"):
        engine.restore({"version": 99})
