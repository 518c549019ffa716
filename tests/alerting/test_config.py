"""Alerting config: contract defaults, durations, per-type overrides, and errors as file:line: key: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.config import AlertingConfig, parse_duration
from qinghe.central_config import load_central_config
from qinghe.configcheck import main as config_check
from qinghe.contracts import Colour, SlaClockName
from qinghe.yamlload import ConfigError

ACK, ON_SITE, HANDLED = SlaClockName.ACKNOWLEDGE, SlaClockName.ON_SITE, SlaClockName.HANDLED


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("90s", 90.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), ("1h30m", 5400.0),
     ("-", None), (None, None)],
)  # fmt: skip
def test_durations(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "", True, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_defaults_are_the_contract_table() -> None:
    sla = AlertingConfig().sla
    table = {(c, n): sla.limit("anything", c, n) for c in Colour for n in (ACK, ON_SITE, HANDLED)}
    assert table == {
        (Colour.RED, ACK): 60, (Colour.RED, ON_SITE): 300, (Colour.RED, HANDLED): 600,
        (Colour.ORANGE, ACK): 60, (Colour.ORANGE, ON_SITE): 300, (Colour.ORANGE, HANDLED): 600,
        (Colour.YELLOW, ACK): 600, (Colour.YELLOW, ON_SITE): 1800, (Colour.YELLOW, HANDLED): 7200,
        (Colour.BLUE, ACK): 3600, (Colour.BLUE, ON_SITE): None, (Colour.BLUE, HANDLED): 86400,
    }  # fmt: skip


def test_overrides_inherit_unset_clocks() -> None:
    config = AlertingConfig.model_validate(
        {"sla": {"colours": {"yellow": {"acknowledge": "5m"}}, "types": {"dumping": {"yellow": {"handled": "4h"}}}}}
    )
    assert config.sla.limit("dumping", Colour.YELLOW, ACK) == 300  # colour override
    assert config.sla.limit("dumping", Colour.YELLOW, HANDLED) == 4 * 3600  # type override
    assert config.sla.limit("dumping", Colour.YELLOW, ON_SITE) == 1800  # contract
    assert config.sla.limit("other", Colour.YELLOW, HANDLED) == 7200


def _central(tmp_path: Path, alerting_yaml: str) -> Path:
    path = tmp_path / "central.yaml"
    path.write_text("broker:\n  url: mqtt://127.0.0.1:1883\nalerting:\n" + alerting_yaml, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("block", "line", "key", "words"),
    [
        ("  sla:\n    colours:\n      red:\n        acknowledge: soon\n", 7, "alerting.sla.colours.red.acknowledge",
         "not a duration"),
        ("  sla:\n    colours:\n      purple: {}\n", 6, "alerting.sla.colours.purple", "red"),
        ("  speakers:\n    devices:\n      - id: s1\n        adapter: http\n", 6, "alerting.speakers.devices[0]",
         "needs url"),
        ("  responders:\n    default_team: nobody\n", 4, "alerting.responders", "undefined team 'nobody'"),
        ("  webhooks:\n    endpoints:\n      - name: w\n        url: http://example.com/x\n        secret: s\n", 4,
         "alerting.webhooks", "not in allow_hosts"),
        ("  routing:\n    grouping:\n      by: [colour]\n", 6, "alerting.routing.grouping.by[0]", "type"),
        ("  timezone: Mars/Olympus\n", 4, "alerting.timezone", "unknown timezone"),
        ("  silences:\n    - id: s\n      matchers: {room: a}\n      ends_at: 2027-01-01T00:00:00+08:00\n"
         "      reason: x\n", 6, "alerting.silences[0].matchers", "unknown matcher"),
        ("  tick_interval: 1\n", 4, "alerting.tick_interval", "unknown key"),
    ],
)  # fmt: skip
def test_errors_point_at_file_line_and_key(tmp_path: Path, block: str, line: int, key: str, words: str) -> None:
    path = _central(tmp_path, block)
    with pytest.raises(ConfigError) as info:
        load_central_config(path)
    issue = info.value.issues[0]
    assert (issue.file, issue.line, issue.key) == (str(path), line, key)
    assert words in issue.message


def test_webhook_secret_comes_from_the_environment(tmp_path: Path) -> None:
    block = (
        "  webhooks:\n    endpoints:\n      - name: w\n        url: http://127.0.0.1:9/x\n"
        "        secret: ${QH_HOOK_SECRET}\n"
    )
    path = _central(tmp_path, block)
    config = load_central_config(path, environ={"QH_HOOK_SECRET": "abc"})
    assert config.alerting.webhooks.endpoints[0].secret.get_secret_value() == "abc"
    assert "abc" not in repr(config)
    with pytest.raises(ConfigError, match="QH_HOOK_SECRET is not set"):
        load_central_config(path, environ={})


def test_config_check_accepts_a_full_alerting_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block = """  timezone: Asia/Shanghai
  sla:
    types:
      illegal_parking:
        yellow: {acknowledge: 5m, on_site: "-", handled: 1h}
  responders:
    teams:
      - {id: grid-1, zones: [z1, z2]}
      - {id: duty-team}
    tiers:
      - {name: team, notify: "team/{team}"}
      - {name: squad_leader, notify: squad-leader}
      - {name: duty_chief, notify: duty-chief}
  routing:
    grouping: {window_s: 5m, by: [type, zone]}
    inhibit:
      - {source_colours: [red], target_colours: [yellow, blue], equal: [zone]}
  maintenance:
    - {id: night-clean, matchers: {camera_id: "cam-*"}, start: "02:00", end: "04:00", reason: street cleaning}
  speakers:
    quiet_hours: {start: "22:00", end: "07:00"}
    devices:
      - {id: spk-1, adapter: http, url: "http://127.0.0.1:8900/play"}
      - {id: spk-2, adapter: local_audio}
"""
    path = _central(tmp_path, block)
    assert config_check([str(path)]) == 0
    assert "ok (central)" in capsys.readouterr().out
    config = load_central_config(path)
    assert config.alerting.responders.team_for("dumping", "z2") == "grid-1"
    assert config.alerting.responders.team_for("dumping", "z9") == "duty-team"
    assert config.alerting.speakers.adapter_of("spk-1") == "http"
    assert config.alerting.speakers.adapter_of("spk-9") == "mqtt"
