"""Ingest config: good fixtures pass, each bad fixture names its file, line and key; env overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.registry import load_central
from qinghe.configcheck import check_file
from qinghe.configcheck import main as config_check

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parents[2]

# bad fixture -> (file the error is in, line, key, words of the message)
BAD: dict[str, tuple[str, int, str, str]] = {
    "unknown_key.yaml": ("unknown_key.yaml", 4, "ingest.max_payload_byte", "unknown key"),
    "unknown_kind.yaml": ("unknown_kind.yaml", 4, "sensors[1].kind", "'air'"),
    "unconvertible_unit.yaml": ("unconvertible_unit.yaml", 5, "sensors[0].units", "cannot convert 'ppm'"),
    "unit_for_unknown_field.yaml": ("unit_for_unknown_field.yaml", 2, "sensors[0].units", "no field 'lmax'"),
    "duplicate_sensor.yaml": ("duplicate_sensor.yaml", 4, "sensors[2].id", "duplicate sensor id 'aq-1'"),
    "broker_scheme.yaml": ("broker_scheme.yaml", 2, "broker.url", "mqtt or mqtts"),
    "retry_order.yaml": ("retry_order.yaml", 3, "ingest", "retry_max_s"),
    "missing_env.yaml": ("missing_env.yaml", 3, "influx.token", "QH_TEST_SURELY_UNSET_TOKEN is not set"),
    "yaml_syntax.yaml": ("yaml_syntax.yaml", 3, "", "YAML syntax error"),
    "duplicate_key.yaml": ("duplicate_key.yaml", 5, "ingest.max_future_skew_s", "first defined on line 4"),
    "latitude.yaml": ("latitude.yaml", 5, "sensors[0].location.lat", "less than or equal to 90"),
    "negative_skew.yaml": ("negative_skew.yaml", 4, "ingest.max_future_skew_s", "greater than or equal to 0"),
    "buffer_sync.yaml": ("buffer_sync.yaml", 4, "ingest.buffer_sync", "'normal' or 'full'"),
    "sensor_id_chars.yaml": ("sensor_id_chars.yaml", 2, "sensors[0].id", "pattern"),
    "registry_file_broken.yaml": ("registries/broken.yaml", 4, "sensors[1].zone", "Field required"),
    "registry_file_duplicate.yaml": ("registries/overlap.yaml", 3, "sensors[1].id", "also in the main config"),
    "registry_file_missing.yaml": ("registries/not-there.yaml", 1, "", "cannot read file"),
}


def test_every_bad_fixture_is_in_the_table() -> None:
    assert {p.name for p in (FIXTURES / "bad").glob("*.yaml")} == set(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_fixture_is_rejected_with_file_line_and_key(name: str) -> None:
    file, line, key, words = BAD[name]
    _kind, issues = check_file(str(FIXTURES / "bad" / name))
    assert len(issues) == 1, [str(i) for i in issues]
    issue = issues[0]
    assert Path(issue.file) == FIXTURES / "bad" / file
    assert (issue.line, issue.key) == (line, key), str(issue)
    assert words in issue.message
    assert str(issue).startswith(f"{issue.file}:{line}: {key or '(top)'}: ")


@pytest.mark.parametrize("path", sorted((FIXTURES / "good").glob("*.yaml")), ids=lambda p: p.name)
def test_good_fixtures_pass(path: Path) -> None:
    assert check_file(str(path)) == ("central", [])


def test_the_shipped_central_config_passes_and_covers_every_kind() -> None:
    assert config_check(["-q", str(REPO / "config" / "central.yaml")]) == 0
    config = load_central(REPO / "config" / "central.yaml", environ={})
    kinds = {s.kind.value for s in config.sensors}
    assert kinds == {"air", "noise", "water_level", "water_quality", "rain", "smoke", "thermal"}
    assert len({s.zone for s in config.sensors}) >= 3
    assert any(s.units for s in config.sensors)
    assert any(c.kind == "road_warden" and c.speaker_id for c in config.cameras)
    for sensor in config.sensors:
        assert sensor.location is not None
        assert abs(sensor.location.lat - 30.25) < 0.1
        assert abs(sensor.location.lon - 119.75) < 0.1


def test_config_check_exits_1_on_a_bad_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_check([str(FIXTURES / "bad" / "unknown_key.yaml"), str(FIXTURES / "good" / "minimal.yaml")]) == 1
    err = capsys.readouterr().err
    assert "unknown_key.yaml:4: ingest.max_payload_byte: unknown key" in err


def test_registry_files_are_merged_and_env_overrides_win() -> None:
    env = {"QINGHE_BROKER": "mqtt://10.1.2.3:1884", "QINGHE_INFLUX_URL": "http://10.1.2.3:8428"}
    config = load_central(FIXTURES / "good" / "full_ingest.yaml", environ=env)
    assert [s.id for s in config.sensors] == ["aq-1", "wl-1", "th-1", "sim-air-1", "sim-rain-1"]
    assert config.broker.url == "mqtt://10.1.2.3:1884"
    assert config.influx.url == "http://10.1.2.3:8428"
    plain = load_central(FIXTURES / "good" / "full_ingest.yaml", environ={})
    assert plain.broker.url == "mqtts://ingest:secret@127.0.0.1:8883"
    assert plain.broker.redacted_url() == "mqtts://ingest:***@127.0.0.1:8883"
    assert plain.influx.url == "http://127.0.0.1:8428"


def test_env_overrides_touch_only_files_that_have_those_sections() -> None:
    from ingest.config import RegistryFile
    from qinghe.config import load_config

    env = {"QINGHE_BROKER": "mqtt://10.1.2.3:1884", "QINGHE_INFLUX_URL": "http://10.1.2.3:8428"}
    registry = load_config(FIXTURES / "good" / "registries" / "extra.yaml", RegistryFile, environ=env)
    assert [s.id for s in registry.sensors] == ["sim-air-1", "sim-rain-1"]
