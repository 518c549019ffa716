"""Incremental checkpoints: only changed instances are saved, drops and removed rules delete their rows,
a restore from rows (or from an older full-snapshot blob) continues exactly; redelivered readings."""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from pathlib import Path

from qinghe.central_config import CentralConfig
from qinghe.topics import Topics
from rules.checkpoint import ChangeLog, key_text
from rules.engine import Engine
from rules.inputs import Ignored, InputDecoder, Rejected
from rules.loader import RuleSet
from rules.store import StateStore
from tests.rules.helpers import MIN, REGISTRY, T0, event, rules_from, run, series

AIR = """
rules:
  - id: air
    type: air_pollution
    readings: {kind: air}
    value: pm25
    for: 5m
    tiers: [{colour: yellow, above: 75}]
    resolve: {below: 60}
  - id: hot
    type: air_pollution
    readings: {kind: air}
    value: pm25
    tiers: [{colour: red, above: 300}]
"""

PARKING = """
  - id: parking
    type: illegal_parking
    events: {analytic: illegal_parking}
    per: episode
    tiers: [{colour: yellow, when: {event: {phase: warning}}}]
"""


def save(engine: Engine, store: StateStore, limit: int = 2) -> int:
    """What the service does, in small chunks: take the changes, then write them in one transaction."""
    batches = []
    while True:
        batches.append(engine.changes.take(engine.instances, limit))
        if not engine.changes.pending():
            break
    return store.save_changes(batches, engine.snapshot_meta(), engine.now or 0.0)


def rows(store: StateStore) -> set[tuple[str, str]]:
    return set(store.connection().execute("SELECT rule_id, key FROM instances").fetchall())


def restored(ruleset: RuleSet, store: StateStore) -> Engine:
    data = store.load_checkpoint()
    assert data is not None
    engine = Engine(ruleset, REGISTRY)
    engine.restore(data["engine"])
    return engine


def test_only_changed_instances_are_saved_and_a_restore_carries_on_like_the_engine(tmp_path: Path) -> None:
    ruleset = rules_from(AIR, tmp_path)
    engine = Engine(ruleset, REGISTRY)
    store = StateStore(tmp_path / "state.db")
    run(ruleset, series("a1", "pm25", [80, 80]) + series("a2", "pm25", [50, 50]), engine=engine)
    assert save(engine, store) == 1  # a1's pending air instance; quiet instances of last-value rules are not saved
    assert rows(store) == {("air", key_text(("a1",)))}
    run(ruleset, series("a1", "pm25", [81, 82, 83], start=T0 + 2 * MIN), engine=engine)
    assert save(engine, store) == 1  # it changed again, nothing else did
    assert save(engine, store) == 0
    again = restored(ruleset, store)
    assert set(again.instances["air"]) == {("a1",)}
    assert json.loads(json.dumps(again.instances["air"][("a1",)].to_json())) == json.loads(
        json.dumps(engine.instances["air"][("a1",)].to_json())
    )
    # and it carries on exactly like the engine it was saved from: a1's 5-minute timer fires at 5
    fired = again.advance(T0 + 6 * MIN)
    assert [s.signal_id for s in fired] == [s.signal_id for s in engine.advance(T0 + 6 * MIN)]
    assert [(s.rule_id, s.dedup_key, round((s.ts - T0) / MIN)) for s in fired] == [("air", "air:a1", 5)]


def test_quiet_readings_are_saved_when_the_rule_keeps_a_window(tmp_path: Path) -> None:
    windowed = AIR.replace("    value: pm25\n    for: 5m", "    value: avg(pm25, 10m)\n    for: 5m")
    ruleset = rules_from(windowed, tmp_path)
    engine = Engine(ruleset, REGISTRY)
    store = StateStore(tmp_path / "state.db")
    run(ruleset, series("a2", "pm25", [50, 51]), engine=engine)
    assert save(engine, store) == 1  # air keeps a 10-minute window (its samples matter); hot: newest value only
    assert rows(store) == {("air", key_text(("a2",)))}
    saved = restored(ruleset, store).instances["air"][("a2",)]
    assert saved.series["air.pm25"].window(T0 + MIN, 600)[1] == [50.0, 51.0]


def test_evicted_instances_and_removed_rules_lose_their_rows(tmp_path: Path) -> None:
    ruleset = rules_from(AIR.rstrip() + PARKING, tmp_path)
    engine = Engine(ruleset, REGISTRY)
    store = StateStore(tmp_path / "state.db")
    timeline = [*series("a1", "pm25", [50]), (T0, event("c1", T0, "illegal_parking", "start", episode="ep1"))]
    run(ruleset, timeline, engine=engine)
    save(engine, store)
    assert ("parking", key_text(("ep1",))) in rows(store)
    run(ruleset, [(T0 + MIN, event("c1", T0 + MIN, "illegal_parking", "end", episode="ep1"))], engine=engine)
    save(engine, store)  # the episode ended with nothing open: the instance is dropped, and its row
    assert ("parking", key_text(("ep1",))) not in rows(store)
    engine.swap(rules_from(AIR.replace("  - id: hot", "  - id: hotter"), tmp_path, name="edited.yaml"), T0 + 2 * MIN)
    save(engine, store)
    assert {rule for rule, _key in rows(store)} == {"air"}  # hot and parking are gone; hotter has no instance yet
    engine.sweep(T0 + 3 * 3600)  # idle for hours: evicted
    save(engine, store)
    assert rows(store) == set()


def test_a_change_after_an_instance_was_taken_is_saved_by_the_next_checkpoint(tmp_path: Path) -> None:
    ruleset = rules_from(AIR, tmp_path)
    engine = Engine(ruleset, REGISTRY)
    store = StateStore(tmp_path / "state.db")
    run(ruleset, series("a1", "pm25", [80]), engine=engine)
    first = engine.changes.take(engine.instances, 10)  # taken: no longer noted as changed
    run(ruleset, series("a1", "pm25", [90], start=T0 + MIN), engine=engine)  # changes again meanwhile
    store.save_changes([first, engine.changes.take(engine.instances, 10)], engine.snapshot_meta(), T0)
    saved = restored(ruleset, store)
    assert saved.instances["air"][("a1",)].readings["a1"].values == {"pm25": 90.0}


def test_a_checkpoint_of_an_older_version_is_restored_and_rewritten_as_rows(tmp_path: Path) -> None:
    ruleset = rules_from(AIR, tmp_path)
    engine = Engine(ruleset, REGISTRY)
    run(ruleset, series("a1", "pm25", [80, 80]), engine=engine)
    store = StateStore(tmp_path / "state.db")
    blob = zlib.compress(json.dumps({"engine": engine.snapshot(), "saved_at": T0}).encode())
    store.connection().execute("INSERT INTO checkpoint(id, saved_at, data) VALUES (1, ?, ?)", (T0, blob))
    data = store.load_checkpoint()
    assert data is not None
    assert data["legacy"] is True
    again = Engine(ruleset, REGISTRY)
    again.restore(data["engine"])
    again.changes.touch_all(again.instances)  # what the service does after a legacy restore
    save(again, store)
    assert store.connection().execute("SELECT COUNT(*) FROM checkpoint").fetchone() == (0,)
    assert restored(ruleset, store).instances["air"][("a1",)].true_since == [T0]


def test_change_log_notes_an_instance_once_until_it_is_taken(tmp_path: Path) -> None:
    ruleset = rules_from(AIR, tmp_path)
    engine = Engine(ruleset, REGISTRY)
    run(ruleset, series("a1", "pm25", [80, 81, 82, 83]), engine=engine)
    assert engine.changes.pending() == 1  # four readings: the pending air instance once, the quiet hot one never
    engine.changes.touch_all(engine.instances)  # as after a reload: every instance, each once
    assert engine.changes.pending() == 2
    log = ChangeLog()
    log.touch_all(engine.instances)
    assert log.pending() == 0  # an instance is noted in one log at a time (its flag says so)


def test_a_service_restart_continues_from_incremental_checkpoints(tmp_path: Path) -> None:
    from qinghe.clock import FakeClock
    from qinghe.contracts import RuleSignal, SensorKind, SensorReading
    from rules.service import RulesService

    (tmp_path / "rules.yaml").write_text(AIR, encoding="utf-8")
    config = CentralConfig.model_validate(
        {"sensors": [{"id": "air-01", "kind": "air", "zone": "z"}, {"id": "air-02", "kind": "air", "zone": "z"}],
         "state_dir": str(tmp_path / "state"), "rules": {"files": ["rules.yaml"]}}
    )  # fmt: skip
    clock, out = FakeClock(T0), list[RuleSignal]()
    first = RulesService(config, tmp_path, clock, on_signal=out.append)  # never started: no broker needed
    for minute in range(5):
        clock.set(T0 + minute * MIN)
        for sensor in ("air-01", "air-02"):
            first.handle_reading(SensorReading(sensor, SensorKind.AIR, "z", clock.now(), {"pm25": 90.0}))
        first.checkpoint()  # each saves only what changed
    first.store.close()
    second = RulesService(config, tmp_path, clock, on_signal=out.append)
    clock.set(T0 + 6 * MIN)
    second.tick()
    second.store.close()
    assert sorted((s.dedup_key, round((s.ts - T0) / MIN)) for s in out) == [("air:air-01", 5), ("air:air-02", 5)]


def test_a_redelivered_reading_is_ignored_but_a_repeated_one_is_dead_lettered(tmp_path: Path) -> None:
    config = CentralConfig.model_validate({"sensors": [{"id": "air-01", "kind": "air", "zone": "z"}]})
    decoder = InputDecoder(config, Topics("qh"))
    now = time.time()
    body = json.dumps({"ts": round(now * 1000), "values": {"pm25": 40}}).encode()
    topic = "qh/v1/sensor/air-01/reading"
    assert not isinstance(decoder.decode(topic, body, now), Rejected | Ignored)
    assert isinstance(decoder.decode(topic, body, now, dup=True), Ignored)  # the broker resent it: not new
    repeated = decoder.decode(topic, body, now)
    assert isinstance(repeated, Rejected)
    assert repeated.reason.startswith("duplicate")


def test_state_rows_are_plain_json(tmp_path: Path) -> None:
    ruleset = rules_from(AIR, tmp_path)
    engine = Engine(ruleset, REGISTRY)
    run(ruleset, series("a1", "pm25", [80]), engine=engine)
    store = StateStore(tmp_path / "state.db")
    save(engine, store)
    store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        (data,) = db.execute("SELECT data FROM instances WHERE rule_id = 'air'").fetchone()
    reading = json.loads(data)["readings"][0]
    assert reading[:5] == ["a1", "air", "z1", T0, {"pm25": 80.0}]  # compact, not the wire format
