"""Hot reload without a broker: change detection, all-or-nothing loads, broken files keep the old rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

from qinghe.central_config import CentralConfig
from qinghe.clock import FakeClock
from qinghe.contracts import RuleSignal, SensorKind, SensorReading
from rules.reload import RuleWatcher
from rules.service import RulesService
from tests.rules.helpers import REGISTRY

RULES = textwrap.dedent("""\
    calendars: [cal.yaml]
    rules:
      - id: air
        type: t
        readings: {kind: air}
        value: pm25
        tiers: [{colour: yellow, above: 75}]
    """)
CALENDAR = "calendar: c\nyear: 2026\nholidays: []\n"


def _files(tmp_path: Path) -> tuple[Path, Path]:
    rules, calendar = tmp_path / "r.yaml", tmp_path / "cal.yaml"
    rules.write_text(RULES, encoding="utf-8")
    calendar.write_text(CALENDAR, encoding="utf-8")
    return rules, calendar


def test_unchanged_files_are_not_reloaded_and_changes_are(tmp_path: Path) -> None:
    rules, calendar = _files(tmp_path)
    watcher = RuleWatcher([rules], REGISTRY)
    first = watcher.load(1.0)
    assert watcher.poll(2.0) is None
    rules.write_text(RULES.replace("above: 75", "above: 80"), encoding="utf-8")
    second = watcher.poll(3.0)
    assert second is not None
    assert second.digest != first.digest
    calendar.write_text(CALENDAR.replace("holidays: []", "holidays: [{name: x, from: 2026-05-01}]"), encoding="utf-8")
    assert watcher.poll(4.0) is not None  # a calendar named by a rule file is watched too


def test_a_broken_file_is_rejected_with_its_line_and_the_old_set_stays_active(tmp_path: Path) -> None:
    rules, calendar = _files(tmp_path)
    watcher = RuleWatcher([rules], REGISTRY)
    good = watcher.load(1.0)
    rules.write_text(RULES.replace("above: 75", "above: lots"), encoding="utf-8")
    assert watcher.poll(2.0) is None
    status = watcher.status.to_json()
    assert status["ok"] is False
    assert status["errors"] == [
        f"{rules}:7: rules[0].tiers[0].above: Input should be a valid number, unable to parse string as a number"
    ]
    assert status["active_digest"] == good.digest
    assert status["loaded_at"] == 1.0
    assert watcher.poll(3.0) is None  # the same broken content is not retried
    calendar.write_text("calendar: c\nyear: 2026\nholidays: [{name: x, from: 2027-01-01}]\n", encoding="utf-8")
    rules.write_text(RULES, encoding="utf-8")
    assert watcher.poll(4.0) is None
    assert "outside the calendar year 2026" in watcher.status.errors[0]
    calendar.write_text(CALENDAR, encoding="utf-8")
    assert watcher.poll(5.0) is not None
    assert watcher.status.ok


def test_the_service_keeps_state_across_a_reload_and_resolves_removed_rules(tmp_path: Path) -> None:
    rules, _calendar = _files(tmp_path)
    rules.write_text(RULES + "  - id: gone\n    type: t\n    readings: {kind: air}\n    value: pm25\n"
                     "    tiers: [{colour: blue, above: 10}]\n", encoding="utf-8")  # fmt: skip
    config = CentralConfig.model_validate({
        "state_dir": str(tmp_path / "state"),
        "sensors": [{"id": "a1", "kind": "air", "zone": "z1"}],
        "rules": {"files": [str(rules)], "reload_interval_s": 1},
    })  # fmt: skip
    clock = FakeClock(1_772_413_200.0)
    out: list[RuleSignal] = []
    service = RulesService(config, tmp_path, clock, on_signal=out.append)
    service.handle_reading(SensorReading("a1", SensorKind.AIR, "z1", clock.now(), {"pm25": 90.0}))
    assert sorted(s.rule_id for s in out) == ["air", "gone"]
    rules.write_text(RULES.replace("above: 75", "above: 70"), encoding="utf-8")
    clock.advance(2)
    service.tick()
    assert [(s.rule_id, s.status.value, s.explain["reason"]) for s in out[2:]] == [("gone", "resolved", "rule removed")]
    assert service.engine.summary()["air"]["firing"] == 1  # still open, not re-opened
    service.store.close()
    service.outbox.stop()
