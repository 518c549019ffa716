"""A broken rule file never loads: every problem is reported as file:line: key: message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qinghe.yamlload import ConfigError
from rules.loader import load_rules
from tests.rules.helpers import REGISTRY

GOOD_RULE = """\
rules:
  - id: air.pm25
    type: air_pollution
    readings: {kind: air}
    value: pm25
    tiers:
      - {colour: red, above: 250}
      - {colour: yellow, above: 75}
"""


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules([path], REGISTRY)
    return [str(issue).replace(str(path), "F") for issue in info.value.issues]


def test_the_good_rule_loads(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD_RULE, encoding="utf-8")
    assert sorted(load_rules([path], REGISTRY).rules) == ["air.pm25"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("value: pm25", "value: pm26", "F:5: rules[0].value: unknown field 'pm26'"),
        (
            "    value: pm25\n",
            "    value: pm25\n    vlaue: 3\n",
            "F:6: rules[0].vlaue: unknown key (not allowed here; check the spelling)",
        ),
        (
            "{colour: red, above: 250}",
            "{colour: crimson, above: 250}",
            "F:7: rules[0].tiers[0].colour: Input should be 'blue', 'yellow', 'orange' or 'red'",
        ),
        (
            "{colour: red, above: 250}",
            "{colour: red, above: 250, below: 3}",
            "F:7: rules[0].tiers[0]: give one threshold, not several (above, below)",
        ),
        ("{colour: red, above: 250}", "{colour: red}", "F:7: rules[0].tiers[0]: a tier needs a threshold"),
        (
            "{colour: red, above: 250}",
            "{colour: yellow, above: 250}",
            "F:8: rules[0].tiers[1].colour: two tiers are yellow",
        ),
        (
            "{colour: red, above: 250}",
            "{colour: blue, above: 250}",
            "F:8: rules[0].tiers[1].colour: list tiers from the highest colour down",
        ),
        ("id: air.pm25", "id: Air PM", "F:2: rules[0].id: String should match pattern"),
        (
            "readings: {kind: air}",
            "readings: {kind: air, zone: nowhere}",
            "F:4: rules[0].readings.zone[0]: unknown zone 'nowhere'",
        ),
        (
            "readings: {kind: air}",
            "readings: {sensor: [a1, zz]}",
            "F:4: rules[0].readings.sensor[1]: unknown sensor 'zz'",
        ),
        (
            "readings: {kind: air}",
            "readings: {kind: air, tag: nope}",
            "F:4: rules[0].readings.tag[0]: unknown tag 'nope'",
        ),
        (
            "readings: {kind: air}",
            "readings: {kind: smog}",
            "F:4: rules[0].readings.kind: unknown sensor kind 'smog'",
        ),
        ("readings: {kind: air}", "events: {camera: c9}", "F:4: rules[0].events.camera[0]: unknown camera 'c9'"),
        (
            "    value: pm25\n",
            "    value: pm25\n    for: soon\n",
            "F:6: rules[0].for: 'soon' is not a duration",
        ),
        (
            "    value: pm25\n",
            "    value: pm25\n    schedule: night\n",
            "F:6: rules[0].schedule: unknown schedule 'night'",
        ),
        (
            "    value: pm25\n",
            "    value: pm25\n    dedup_key: '{rule}:{camera}'\n",
            "F:6: rules[0].dedup_key: {camera} is not part of the instance key",
        ),
        (
            "    value: pm25\n",
            "    value: pm25\n    message: 'x {bogus}'\n",
            "F:6: rules[0].message: unknown placeholder {bogus}",
        ),
        ("    value: pm25\n", "    value: pm25\n    per: episode\n", "F:6: rules[0].per: per: episode needs `events`"),
        (
            "    value: pm25\n",
            "    value: pm25\n    actions: [{kind: voice, text: hi, speaker: spk-9}]\n",
            "F:6: rules[0].actions[0].speaker: unknown speaker 'spk-9'",
        ),
        (
            "    value: pm25\n",
            "    value: pm25\n    actions: [{kind: sms, to: x}]\n",
            "F:6: rules[0].actions[0]: Input tag 'sms' found using 'kind' does not match",
        ),
        (
            "      - {colour: yellow, above: 75}\n",
            "      - colour: yellow\n        when: {valu: pm25}\n",
            "F:9: rules[0].tiers[1].when: a condition needs one of the keys",
        ),
        (
            "      - {colour: yellow, above: 75}\n",
            "      - colour: yellow\n"
            "        when: {all: [{value: pm25, above: 1}, {count: {analytic: dumping}, at_least: 3}]}\n",
            "F:9: rules[0].tiers[1].when.all[1].window: Field required",
        ),
        (
            "      - {colour: yellow, above: 75}\n",
            "      - colour: yellow\n        when: {event: {type: begin}}\n",
            "F:9: rules[0].tiers[1].when.event.type: unknown event type 'begin'",
        ),
        ("rules:\n", "rules:\n  - {}\n", "F:2: rules[0].id: Field required"),
        (
            "    type: air_pollution\n",
            "    type: air_pollution\n    type: again\n",
            "F:4: rules[0].type: duplicate key 'type'",
        ),
    ],
)
def test_broken_rules_point_at_file_line_and_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD_RULE
    errors = _errors(tmp_path, GOOD_RULE.replace(old, new, 1))
    assert any(e.startswith(expected) for e in errors), errors


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(GOOD_RULE.replace("pm25\n", "pm26\n"), encoding="utf-8")
    b.write_text(GOOD_RULE.replace("crimson", "").replace("kind: air", "kind: smog"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules([a, b], REGISTRY)
    files = {issue.file for issue in info.value.issues}
    assert files == {str(a), str(b)}


def test_rule_ids_are_unique_across_files(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(GOOD_RULE, encoding="utf-8")
    b.write_text(GOOD_RULE, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"b.yaml:2: rules\[0\].id: rule id 'air.pm25' is also defined at .*a.yaml:2"):
        load_rules([a, b], REGISTRY)


def test_a_missing_calendar_is_reported_on_the_calendars_line(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "calendars: [missing.yaml]\n" + GOOD_RULE)
    assert errors[0].startswith("F:1: calendars[0]: calendar missing.yaml:")
