"""Contract: the command line as a user meets it: `--help` everywhere, exit codes 0/1/2, `file:line: key: message`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract.support import REPO, base_env, run_cli

DATA = REPO / "tests/contract/data"
ISSUE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+): (?P<key>[^:\n]+): (?P<message>.+)$")


def _subverbs(help_text: str) -> list[str]:
    """Verbs listed under `positional arguments:` (argparse indents sub-commands by four spaces)."""
    section = help_text.split("positional arguments:", 1)[-1].split("options:", 1)[0]
    return re.findall(r"^ {4}([a-z][a-z0-9-]*)(?: |$)", section, flags=re.MULTILINE)


HELP_WALKER = """
import contextlib, io, json, re, sys
from qinghe.cli import main

def subverbs(text):
    section = text.split("positional arguments:", 1)[-1].split("options:", 1)[0]
    return re.findall(r"^ {4}([a-z][a-z0-9-]*)(?: |$)", section, flags=re.MULTILINE)

results, level = {}, [[v] for v in json.loads(sys.argv[1])]
while level:
    path = level.pop(0)
    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*path, "--help"])
        except SystemExit as exc:
            code = exc.code
    results[" ".join(path)] = [code, out.getvalue(), err.getvalue()]
    level.extend([*path, sub] for sub in subverbs(out.getvalue()))
print(json.dumps(results))
"""
"""Runs `qinghe ... --help` for every verb below the given ones in one interpreter (30 processes cost 20 s)."""


def _issues(stderr: str) -> list[re.Match[str]]:
    return [m for line in stderr.splitlines() if (m := ISSUE.match(line))]


def test_help_works_on_every_verb_and_sub_verb() -> None:
    top = run_cli(["--help"], env=base_env())
    assert top.returncode == 0
    verbs = _subverbs(top.stdout)
    for documented in ("demo", "serve", "edge", "config", "rules", "simulate", "incidents"):
        assert documented in verbs, f"`qinghe {documented}` missing from `qinghe --help`"
    walker = subprocess.run(
        [sys.executable, "-c", HELP_WALKER, json.dumps(verbs)],
        capture_output=True, text=True, timeout=120, check=True, env=base_env(),
    )  # fmt: skip
    seen: dict[str, list[object]] = json.loads(walker.stdout)
    for name, (code, stdout, stderr) in seen.items():
        assert code == 0, f"`qinghe {name} --help` exited {code}: {str(stderr)[-500:]}"
        assert str(stdout).startswith(f"usage: qinghe {name}"), f"`qinghe {name} --help`: {str(stdout)[:200]}"
    assert len(seen) > len(verbs), "sub-verbs (config check, rules test, ...) must be listed in their group's help"
    for required in (("config", "check"), ("rules", "check"), ("rules", "test"), ("rules", "replay"),
                     ("simulate", "sensors"), ("incidents", "list")):  # fmt: skip
        assert " ".join(required) in seen, f"`qinghe {' '.join(required)}` is documented but not offered"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["no-such-verb"],
        ["serve"],
        ["rules"],
        ["config", "check"],
        ["simulate", "sensors", "--sensors", "many"],
        ["simulate", "sensors", "--sensors", "3", "--rate", "10", "--duration", "1", "--bad-fraction", "2"],
        ["serve", "--config", str(DATA / "central.yaml"), "--only", "ingest,nothing"],
    ],
    ids=lambda args: "-".join(args[:3]) or "no-verb",
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run_cli(args, env=base_env(QINGHE_BROKER="mqtt://127.0.0.1:9"))
    assert result.returncode == 2, (result.returncode, result.stderr[-800:])
    assert result.stderr.strip(), "a usage error says what is wrong"


def test_shipped_and_suite_configs_pass_config_check() -> None:
    files = [
        REPO / "config/central.yaml",
        REPO / "config/edge.yaml",
        *sorted((REPO / "config/rules").glob("*.yaml")),
        *sorted((REPO / "config/holidays").glob("*.yaml")),
        REPO / "config/demo/central.yaml",
        *sorted((REPO / "config/demo/rules").glob("*.yaml")),
        DATA / "central.yaml",
        *sorted((DATA / "rules").glob("*.yaml")),
    ]
    result = run_cli(["config", "check", *map(str, files)], env=base_env())
    assert result.returncode == 0, result.stdout + result.stderr
    rules = run_cli(["rules", "check", "--config", str(REPO / "config/central.yaml"),
                     *map(str, sorted((REPO / "config/rules").glob("*.yaml")))], env=base_env())  # fmt: skip
    assert rules.returncode == 0, rules.stdout + rules.stderr


BAD_CENTRAL = """\
service_id: central
state_dir: {state}
broker:
  url: mqtt://127.0.0.1:1883
  keepalive_s: soon
influx:
  url: http://127.0.0.1:8086
  bukcet: sensors
sensors:
  - {{id: aq-1, kind: air, zone: z}}
  - {{id: aq-2, kind: plasma, zone: z}}
"""

BAD_RULES = """\
version: 1
rules:
  - id: r1
    type: t
    readings: {kind: air}
    value: pm25
    tiers:
      - {colour: yellow, above: 75}
      - {colour: purple, above: 150}
"""

BAD_EDGE = """\
edge_id: box-x
cameras:
  - id: cam-a
    detect: {path: clip.mp4}
    detector: motion
    detect_fps: fast
"""


def test_bad_config_files_exit_1_with_file_line_key_message(tmp_path: Path) -> None:
    central = tmp_path / "site" / "central.yaml"
    central.parent.mkdir()
    central.write_text(BAD_CENTRAL.format(state=tmp_path / "state"))
    rules = tmp_path / "rules" / "bad-rules.yaml"
    rules.parent.mkdir()
    rules.write_text(BAD_RULES)
    edge = tmp_path / "edge.yaml"
    edge.write_text(BAD_EDGE)

    result = run_cli(["config", "check", str(central), str(rules), str(edge)], env=base_env())
    assert result.returncode == 1
    found = {(m["file"], int(m["line"]), m["key"]) for m in _issues(result.stdout + result.stderr)}
    assert (str(central), 5, "broker.keepalive_s") in found, result.stderr
    assert (str(central), 8, "influx.bukcet") in found, result.stderr
    assert (str(central), 11, "sensors[1].kind") in found, result.stderr
    assert (str(rules), 9, "rules[0].tiers[1].colour") in found, result.stderr
    assert (str(edge), 6, "cameras[0].detect_fps") in found, result.stderr

    for args in (["serve", "--config", str(central)], ["edge", "--config", str(edge), "--check"],
                 ["rules", "check", str(rules)]):  # fmt: skip
        refused = run_cli(args, env=base_env(QINGHE_BROKER="mqtt://127.0.0.1:9"), timeout_s=60)
        assert refused.returncode == 1, (args, refused.stderr[-800:])
        assert _issues(refused.stderr), f"{args}: no file:line: key: message in {refused.stderr[-800:]!r}"


def test_a_missing_config_file_is_a_validation_failure_not_a_crash(tmp_path: Path) -> None:
    result = run_cli(["config", "check", str(tmp_path / "nope.yaml")], env=base_env())
    assert result.returncode == 1
    assert str(tmp_path / "nope.yaml") in result.stderr
    assert "Traceback" not in result.stderr


RULE_TEST = """\
rule_files: [{data}/rules/air.yaml]
config: {data}/central.yaml
start: 2026-03-02T08:00:00+08:00
interval: 1m
tests:
  - name: yellow at once above 75, resolved below 60
    readings:
      - sensor: aq-1
        values: {{pm25: "40 80 80 50"}}
    expect:
      - {{at: 1m, rule: qa.air, status: firing, colour: {colour}}}
      - {{at: 3m, rule: qa.air, status: resolved}}
"""


def test_rules_test_exits_0_on_a_pass_and_1_on_a_failure(tmp_path: Path) -> None:
    passing, failing = tmp_path / "pass.test.yaml", tmp_path / "fail.test.yaml"
    passing.write_text(RULE_TEST.format(data=DATA, colour="yellow"))
    failing.write_text(RULE_TEST.format(data=DATA, colour="red"))
    env = base_env(QA_STATE_DIR=str(tmp_path))
    ok = run_cli(["rules", "test", str(passing)], env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = run_cli(["rules", "test", str(failing)], env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "red" in bad.stdout + bad.stderr
