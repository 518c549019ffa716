"""`qinghe rules test`: the shipped rule test cases pass; a wrong expectation fails with a readable diff."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qinghe.cli import main
from qinghe.configcheck import check_file
from rules.testfile import expand_series
from rules.testrun import run_test_file

CASES = Path(__file__).resolve().parent / "cases"
DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("path", sorted(CASES.glob("*.test.yaml")), ids=lambda p: p.name)
def test_shipped_rule_cases_pass(path: Path) -> None:
    outcomes = run_test_file(path)
    failed = [o for o in outcomes if not o.ok]
    assert not failed, "\n".join(line for o in failed for line in [o.name, *o.diff])


@pytest.mark.parametrize(
    ("text", "values"),
    [("40 80x3", [40, 80, 80, 80]), ("10+5x4", [10, 15, 20, 25]), ("1 _x2 3", [1, None, None, 3]), ("7", [7]),
     ("5-1x3", [5, 4, 3]), ("1.5x2", [1.5, 1.5])],
)  # fmt: skip
def test_series_notation(text: str, values: list[float | None]) -> None:
    assert expand_series(text) == values


@pytest.mark.parametrize("bad", ["", "x3", "40x0", "forty", "4 0x"])
def test_bad_series_notation(bad: str) -> None:
    with pytest.raises(ValueError, match="series"):
        expand_series(bad)


FAILING = """\
rule_files: [../../../config/rules/air.yaml]
config: ../data/central.yaml
tests:
  - name: wrong colour and a missing resolve
    readings:
      - sensor: air-01
        values: {pm25: "80x7 50"}
    expect:
      - {at: 5m, rule: air.pm25, status: firing, colour: orange}
      - {at: 9m, rule: air.pm25, status: resolved}
"""


def _absolute(text: str) -> str:
    config = str(DATA.parents[2] / "config")
    return text.replace("../data/central.yaml", str(DATA / "central.yaml")).replace("../../../config", config)


def test_a_failing_test_prints_a_diff_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "failing.test.yaml"
    path.write_text(_absolute(FAILING), encoding="utf-8")
    assert main(["rules", "test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "-       +5m air.pm25               firing   orange" in out
    assert "+       +5m air.pm25               firing   yellow" in out
    assert "-       +9m air.pm25               resolved" in out
    assert "+       +7m air.pm25               resolved yellow key=air.pm25:air-01" in out
    assert "0 passed, 1 failed" in out


def test_a_broken_test_file_reports_file_line_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.test.yaml"
    path.write_text(textwrap.dedent(f"""\
        rule_files: [{DATA.parent.parent.parent / 'config' / 'rules' / 'air.yaml'}]
        config: {DATA / 'central.yaml'}
        tests:
          - name: t
            readings:
              - sensor: nobody
                values: {{pm25: "40"}}
            expect:
              - {{at: 1m, rule: air.pm25, status: fired}}
        """), encoding="utf-8")  # fmt: skip
    assert main(["rules", "test", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:9: tests[0].expect[0].status: Input should be 'firing', 'resolved' or 'unknown'" in err


def test_unknown_sensor_in_a_test_is_reported_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.test.yaml"
    path.write_text(_absolute(FAILING.replace("air-01", "air-99")), encoding="utf-8")
    from qinghe.yamlload import ConfigError

    with pytest.raises(ConfigError, match=r"t.test.yaml:6: tests\[0\].readings\[0\].sensor: unknown sensor 'air-99'"):
        run_test_file(path)


@pytest.mark.parametrize(
    ("relative", "kind"),
    [
        ("config/rules/air.yaml", "rules"),
        ("config/holidays/cn-2026.yaml", "holiday-calendar"),
        ("tests/rules/cases/air.test.yaml", "rule-test"),
        ("tests/rules/data/labels.yaml", "replay-labels"),
    ],
)
def test_config_check_knows_the_rule_file_kinds(relative: str, kind: str) -> None:
    repo = Path(__file__).resolve().parents[2]
    assert check_file(str(repo / relative)) == (kind, [])


def test_config_check_reports_a_broken_rule_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - id: x\n    type: t\n    readings: {kind: air}\n    tiers: [{colour: red, above: 1}]\n")
    kind, issues = check_file(str(path))
    assert kind == "rules"
    assert [str(i) for i in issues] == [
        f"{path}:5: rules[0].tiers[0]: a threshold tier needs the rule's `value` (e.g. value: pm25)"
    ]


def test_config_check_of_a_rule_file_next_to_a_broken_central_reports_both(tmp_path: Path) -> None:
    (tmp_path / "central.yaml").write_text("broker: {url: mqtt://127.0.0.1:1883}\nbogus_key: 1\n")
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - id: x\n    type: t\n    readings: {kind: air}\n    tiers: [{colour: red, above: 1}]\n")
    kind, issues = check_file(str(path))
    assert kind == "rules"
    files = [(i.file, i.line) for i in issues]
    assert (str(tmp_path / "central.yaml"), 2) in files
    assert (str(path), 5) in files


def test_shipped_rules_load_against_the_shipped_registry() -> None:
    """config/central.yaml lists the shipped rule files and every cross-reference resolves."""
    from qinghe.central_config import load_central_config
    from rules.lint import check_rules, load_registry

    repo = Path(__file__).resolve().parents[2]
    central = repo / "config" / "central.yaml"
    config = load_central_config(central)
    files = [str(central.parent / name) for name in config.rules.files]
    assert sorted(Path(f).name for f in files) == sorted(p.name for p in (repo / "config" / "rules").glob("*.yaml"))
    result = check_rules(files, load_registry(central))
    assert result.errors == ()
    assert result.ruleset is not None
    assert len(result.ruleset.rules) == 13


def test_the_demo_rule_file_loads_against_the_shipped_registry() -> None:
    from rules.lint import check_rules, load_registry

    repo = Path(__file__).resolve().parents[2]
    result = check_rules(
        [repo / "config" / "rules" / "demo" / "air-fast.yaml"], load_registry(repo / "config" / "central.yaml")
    )
    assert result.errors == ()
    assert result.warnings == ()
    assert result.ruleset is not None
    assert result.ruleset.rules["air.pm25"].tiers[2].for_s == 20.0


def test_registry_tags_come_from_the_central_config(tmp_path: Path) -> None:
    from qinghe.central_config import CentralConfig
    from rules.lint import check_rules
    from rules.registry import Registry

    config = CentralConfig.model_validate(
        {
            "sensors": [
                {"id": "a1", "kind": "air", "zone": "z", "tags": ["school"]},
                {"id": "a2", "kind": "air", "zone": "z"},
            ]
        }
    )
    registry = Registry.from_central(config)
    assert registry.sensors["a1"].tags == frozenset({"school"})
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "rules:\n  - {id: s, type: t, readings: {tag: [school, nursery]}, value: pm25,\n"
        "     tiers: [{colour: red, above: 1}]}\n"
    )
    result = check_rules([rules], registry)
    assert [str(i).split(": ", 1)[1] for i in result.errors] == [
        "rules[0].readings.tag[1]: unknown tag 'nursery' (no sensor carries it)"
    ]
