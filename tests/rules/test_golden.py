"""Golden cases: tests/golden/<case>/{rules.yaml,input.jsonl,expected.jsonl} replayed and diffed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qinghe.central_config import load_central_config
from qinghe.contracts import RuleSignal
from qinghe.timefmt import parse_timestamp
from rules.loader import load_rules
from rules.recording import read_recording
from rules.registry import Registry
from rules.replay import replay

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
DEFAULT_REGISTRY = Path(__file__).resolve().parent / "data" / "central.yaml"
CASES = sorted(p for p in GOLDEN.iterdir() if p.is_dir())


def _project(signal: RuleSignal, keys: list[str]) -> dict[str, Any]:
    """The signal's values for the keys an expected line names."""
    values: dict[str, Any] = {
        "ts": signal.ts, "rule_id": signal.rule_id, "status": signal.status.value, "colour": signal.colour.value,
        "dedup_key": signal.dedup_key, "flapping": signal.flapping, "transition": signal.explain.get("transition"),
        "actions": [a.kind for a in signal.actions], "evidence": len(signal.evidence), "message": signal.message,
        "zone": signal.zone, "camera_id": signal.camera_id,
    }  # fmt: skip
    return {k: values[k] for k in keys}


def _line(row: dict[str, Any]) -> str:
    shown = {k: v for k, v in row.items() if k != "ts"}
    return f"{row['ts']:.3f} {json.dumps(shown, ensure_ascii=False, sort_keys=True)}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden_case(case: Path) -> None:
    central = case / "central.yaml" if (case / "central.yaml").exists() else DEFAULT_REGISTRY
    config = load_central_config(central)
    registry = Registry.from_central(config)
    ruleset = load_rules([case / "rules.yaml"], registry)
    result = replay(ruleset, registry, config, read_recording(case / "input.jsonl"))
    expected = [
        json.loads(line) for line in (case / "expected.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    for row in expected:
        row["ts"] = parse_timestamp(row["ts"])
    actual = [_project(s, list(e)) for s, e in zip(result.signals, expected, strict=False)]
    want = [_line(e) for e in expected]
    got = [_line(a) for a in actual] + [
        f"(extra) {s.ts:.3f} {s.rule_id} {s.status.value}" for s in result.signals[len(expected) :]
    ]
    assert got == want, "\n".join(["expected:", *want, "actual:", *got])
