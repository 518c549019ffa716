"""Config loading: file:line: key errors, ${ENV} secrets, duplicate keys, env overrides, broker URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from qinghe.central_config import CentralConfig, load_central_config
from qinghe.config import BrokerConfig, SensorConfig
from qinghe.configcheck import main as config_check
from qinghe.yamlload import ConfigError, load_yaml_text

GOOD = """\
service_id: central-test
broker:
  url: mqtt://ops:${MQTT_PASS}@127.0.0.1:1884
influx:
  url: http://127.0.0.1:8428
  token: ${INFLUX_TOKEN:-dev-token}
sensors:
  - id: aq-01
    kind: air
    zone: north
    location: {lat: 30.25, lon: 119.75}
  - id: wl-01
    kind: water_level
    zone: river
    units: {level: cm}
"""


def _write(tmp_path: Path, text: str, name: str = "central.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _issues(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_central_config(path, environ=env or {})
    return [str(issue) for issue in info.value.issues]


def test_good_file_loads_with_secrets_from_env(tmp_path: Path) -> None:
    config = load_central_config(_write(tmp_path, GOOD), environ={"MQTT_PASS": "s3cret"})
    assert config.broker.credentials() == ("ops", "s3cret")
    assert config.influx.token.get_secret_value() == "dev-token"
    assert config.sensor_map()["wl-01"].units == {"level": "cm"}
    assert "s3cret" not in config.broker.redacted_url()
    assert "s3cret" not in repr(config)


def test_missing_env_is_reported_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    assert _issues(path) == [f"{path}:3: broker.url: environment variable MQTT_PASS is not set"]


@pytest.mark.parametrize(
    ("edit", "line", "key", "message"),
    [
        (("kind: air", "kind: aire"), 9, "sensors[0].kind", "Input should be"),
        (("zone: river", "zone: river\n    colour: red"), 15, "sensors[1].colour", "unknown key"),
        (("lat: 30.25", "lat: 130.25"), 11, "sensors[0].location.lat", "less than or equal to 90"),
        (("units: {level: cm}", "units: {level: furlong}"), 15, "sensors[1].units", "cannot convert 'furlong'"),
        (("url: http://127.0.0.1:8428", "url: ftp://x"), 5, "influx.url", "http(s)://"),
        (("mqtt://ops", "amqp://ops"), 3, "broker.url", "scheme must be mqtt or mqtts"),
    ],
)
def test_errors_point_at_file_line_and_key(
    tmp_path: Path, edit: tuple[str, str], line: int, key: str, message: str
) -> None:
    path = _write(tmp_path, GOOD.replace(*edit))
    issues = _issues(path, {"MQTT_PASS": "x"})
    assert len(issues) == 1, issues
    assert issues[0].startswith(f"{path}:{line}: {key}: ")
    assert message in issues[0]


def test_duplicate_ids_are_cross_reference_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("id: wl-01", "id: aq-01"))
    assert _issues(path, {"MQTT_PASS": "x"}) == [f"{path}:12: sensors[1].id: duplicate sensor id 'aq-01' (also item 0)"]


def test_duplicate_yaml_keys_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"f.yaml:3: a: duplicate key 'a' \(first defined on line 1\)"):
        load_yaml_text("a: 1\nb: 2\na: 3\n", "f.yaml")


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(ConfigError, match=r"f.yaml:2: \(top\): YAML syntax error"):
        load_yaml_text("a: [1, 2\nb: {\n", "f.yaml")


def test_env_overrides_beat_the_file(tmp_path: Path) -> None:
    env = {"MQTT_PASS": "x", "QINGHE_BROKER": "mqtt://127.0.0.1:9999", "QINGHE_INFLUX_URL": "http://127.0.0.1:7777"}
    config = load_central_config(_write(tmp_path, GOOD), environ=env)
    assert (config.broker.host, config.broker.port) == ("127.0.0.1", 9999)
    assert config.influx.url == "http://127.0.0.1:7777"


def test_env_overrides_apply_to_a_file_without_those_sections(tmp_path: Path) -> None:
    path = _write(tmp_path, "sensors: []\n")
    config = load_central_config(path, environ={"QINGHE_BROKER": "mqtts://u:p@broker.local:8884"})
    assert config.broker.tls
    assert config.broker.port == 8884
    assert config == CentralConfig.model_validate({"sensors": [], "broker": {"url": "mqtts://u:p@broker.local:8884"}})


def test_broker_url_parts_and_redaction() -> None:
    broker = BrokerConfig(url="mqtts://ops:p%40ss@10.0.0.5")
    assert (broker.host, broker.port, broker.tls) == ("10.0.0.5", 8883, True)
    assert broker.credentials() == ("ops", "p@ss")
    assert broker.redacted_url() == "mqtts://ops:***@10.0.0.5:8883"
    explicit = BrokerConfig(url="mqtt://ops:old@h:1", password=SecretStr("new"))
    assert explicit.credentials() == ("ops", "new")


def test_empty_username_and_password_fields_leave_the_urls_credentials_alone() -> None:
    # config/central.yaml: `username: ${QINGHE_MQTT_USER:-}`, `password: ${QINGHE_MQTT_PASSWORD:-}`, both unset,
    # with QINGHE_BROKER=mqtts://ops:p%40ss@broker:8883 from the environment.
    broker = BrokerConfig(url="mqtts://ops:p%40ss@broker:8883", username="", password="")
    assert broker.credentials() == ("ops", "p@ss")
    assert BrokerConfig(url="mqtt://broker:1883", username="", password="").credentials() == (None, None)


def test_sensor_units_must_belong_to_the_kind() -> None:
    with pytest.raises(ValueError, match="air sensors have no field 'level'"):
        SensorConfig(id="a", kind="air", zone="z", units={"level": "cm"})


def test_config_check_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, GOOD.replace("${MQTT_PASS}", "pw"), "good.yaml")
    bad = _write(tmp_path, GOOD.replace("kind: air", "kind: aire"), "bad.yaml")
    assert config_check([str(good)]) == 0
    assert config_check([str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: broker.url: environment variable MQTT_PASS is not set" in err
    unknown = _write(tmp_path, "hello: world\n", "unknown.yaml")
    assert config_check([str(unknown)]) == 1
    assert "not a recognised config file" in capsys.readouterr().err
