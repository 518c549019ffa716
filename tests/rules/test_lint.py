"""`qinghe rules check`: warnings for unreachable tiers, missing hysteresis, overlaps; exit codes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qinghe.cli import main
from rules.lint import check_rules
from tests.rules.helpers import REGISTRY

REPO = Path(__file__).resolve().parents[2]


def _lint(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    result = check_rules([path], REGISTRY)
    assert not result.errors, result.errors
    return [f"{w.line}: {w.key}: {w.message}" for w in result.warnings]


def _rule(tiers: str, extra: str = "", rule_id: str = "r", head: bool = True) -> str:
    """One rule as YAML; `tiers` and `extra` are lines written at the rule's key level."""
    lines = [f"  - id: {rule_id}", "    type: t", "    readings: {kind: air}", "    value: pm25", "    tiers:"]
    lines += [f"      {line}" for line in tiers.splitlines() if line.strip()]
    lines += [f"    {line}" for line in extra.splitlines() if line.strip()]
    return ("rules:\n" if head else "") + "\n".join(lines) + "\n"


NEVER = "8: rules[0].tiers[1]: warning: the orange tier can never be the highest"


@pytest.mark.parametrize(
    ("tiers", "warning"),
    [
        ("- {colour: red, above: 100}\n- {colour: orange, above: 150}\n", NEVER),
        ("- {colour: red, above: 100}\n- {colour: orange, above: 100}\n", NEVER),
        ("- {colour: red, below: 5}\n- {colour: orange, below: 3}\n", NEVER),
        ("- {colour: red, above: 100, for: 5m}\n- {colour: orange, above: 150}\n", None),  # reachable while red waits
        ("- {colour: red, above: 150}\n- {colour: orange, above: 100}\n", None),
    ],
)  # fmt: skip
def test_unreachable_tiers(tmp_path: Path, tiers: str, warning: str | None) -> None:
    warnings = _lint(tmp_path, _rule(tiers))
    if warning is None:
        assert warnings == []
    else:
        assert any(w.startswith(warning) for w in warnings), warnings


@pytest.mark.parametrize(
    ("resolve", "warning"),
    [
        ("resolve: {below: 60}\n", None),
        ("resolve: {below: 80}\n", "resolve below 80 is above the lowest tier threshold 75: no hysteresis band"),
        ("resolve: {above: 80}\n", "resolve above 80 points the same way as the tiers (they fire above a threshold)"),
    ],
)
def test_hysteresis_warnings(tmp_path: Path, resolve: str, warning: str | None) -> None:
    warnings = _lint(tmp_path, _rule("- {colour: yellow, above: 75}\n", resolve))
    assert [w.split("warning: ")[1] for w in warnings] == ([] if warning is None else [warning])


def test_overlapping_rules_and_selectors_that_match_nothing(tmp_path: Path) -> None:
    text = _rule("- {colour: yellow, above: 75}\n") + _rule("- {colour: red, above: 250}\n", rule_id="r2", head=False)
    text += _rule("- {colour: red, above: 250}\n", "dedup_key: '{sensor}'\n", rule_id="r3", head=False).replace(
        "{kind: air}", "{kind: noise}"
    )
    warnings = _lint(tmp_path, text)
    assert any("overlaps rule 'r'" in w and "rules[1].id" in w for w in warnings), warnings
    assert any("rules[2].readings: warning: no matched sensor is of kind air" in w for w in warnings), warnings


def test_schedules_that_never_meet_do_not_overlap(tmp_path: Path) -> None:
    head = (
        "schedules:\n  day: {windows: [{from: '06:00', to: '22:00'}]}\n"
        "  night: {windows: [{from: '22:00', to: '06:00'}]}\n"
    )
    text = head + _rule("- {colour: yellow, above: 75}\n", "schedule: day\n")
    text += _rule("- {colour: yellow, above: 55}\n", "schedule: night\n", rule_id="r2", head=False)
    assert _lint(tmp_path, text) == []


def test_cli_check_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "tests" / "rules" / "data" / "central.yaml"
    good = sorted(str(p) for p in (REPO / "config" / "rules").glob("*.yaml"))
    assert main(["rules", "check", "--config", str(config), *good]) == 0
    assert "13 rules from 7 files" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(_rule("- {colour: yellow, above: 75}\n").replace("kind: air", "zone: atlantis"), encoding="utf-8")
    assert main(["rules", "check", "--config", str(config), str(bad)]) == 1
    assert f"{bad}:4: rules[0].readings.zone[0]: unknown zone 'atlantis'" in capsys.readouterr().err
    warn = tmp_path / "warn.yaml"
    warn.write_text(_rule("- {colour: red, above: 100}\n- {colour: orange, above: 150}\n"), encoding="utf-8")
    assert main(["rules", "check", "--config", str(config), str(warn)]) == 0
    assert main(["rules", "check", "--strict", "--config", str(config), str(warn)]) == 1
