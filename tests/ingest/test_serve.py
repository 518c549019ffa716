"""`qinghe serve`'s composition: a reading flows in-process from ingest through rules to an alert."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from qinghe.bus import MqttBus
from qinghe.clock import SystemClock
from qinghe.config import BrokerConfig
from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics
from qinghe.serve import SERVICE_NAMES, CentralServices, parse_only
from tests.ingest.helpers import central, topic
from tests.support import Collector

RULES = Path(__file__).parent / "fixtures" / "e2e" / "air-fast.yaml"


def test_only_takes_a_subset_of_the_services() -> None:
    assert parse_only(None) is None
    assert parse_only("rules, alerting") == ["rules", "alerting"]
    for bad in ("", "ingest,bogus", ","):
        with pytest.raises(ValueError, match="subset"):
            parse_only(bad)
    assert SERVICE_NAMES == ("ingest", "rules", "alerting")


@pytest.mark.integration
def test_a_pm25_reading_becomes_an_alert_through_the_in_process_chain(
    tmp_path: Path, mosquitto: LocalMosquitto, victoria: LocalVictoriaMetrics, collector: Collector
) -> None:
    config = central(tmp_path, mosquitto.url, victoria.url)
    config = config.model_copy(update={"rules": config.rules.model_copy(update={"files": [str(RULES)]})})
    services = CentralServices(config, tmp_path, SystemClock())
    assert services.running == ["ingest", "rules", "alerting"]
    services.start()
    try:
        assert services.ingest.wait_ready(10)
        bus = MqttBus(BrokerConfig(url=mosquitto.url), "test-sensor", clean_start=True)
        bus.start()
        ms = int(time.time() * 1000)
        bus.publish_and_wait(topic("aq-1"), json.dumps({"ts": ms, "seq": 1, "values": {"pm25": 96.0}}))
        collector.wait_for(lambda _m: bool(collector.on("qh/v1/alert/yellow/air_pollution")), 20)
        bus.publish_and_wait(topic("aq-1"), json.dumps({"ts": ms + 1000, "seq": 2, "values": {"pm25": 41.0}}))
        collector.wait_for(lambda _m: len(collector.on("qh/v1/alert/")) >= 2, 20)
        bus.stop()
    finally:
        services.stop()
    kinds = [json.loads(m.payload)["kind"] for m in collector.on("qh/v1/alert/")]
    assert kinds[:2] == ["opened", "resolved"]
    incident = json.loads(collector.on("qh/v1/alert/yellow/air_pollution")[0].payload)["incident"]
    assert incident["zone"] == "north gate"
    availability = [m.payload for m in collector.on("qh/v1/service/central/availability")]
    assert availability[0] == b"online"
    assert availability[-1] == b"offline"


@pytest.mark.integration
def test_serve_without_ingest_leaves_readings_to_rules_over_mqtt(
    tmp_path: Path, mosquitto: LocalMosquitto, victoria: LocalVictoriaMetrics, collector: Collector
) -> None:
    config = central(tmp_path, mosquitto.url, victoria.url)
    config = config.model_copy(update={"rules": config.rules.model_copy(update={"files": [str(RULES)]})})
    services = CentralServices(config, tmp_path, SystemClock(), only=["rules", "alerting"])
    assert services.running == ["rules", "alerting"]
    services.start()
    try:
        time.sleep(0.5)
        bus = MqttBus(BrokerConfig(url=mosquitto.url), "test-sensor", clean_start=True)
        bus.start()
        ms = int(time.time() * 1000)
        bus.publish_and_wait(topic("aq-1"), json.dumps({"ts": ms, "values": {"pm25": 180.0}}))
        collector.wait_for(lambda _m: bool(collector.on("qh/v1/alert/orange/air_pollution")), 20)
        bus.stop()
    finally:
        services.stop()


def test_serve_exits_1_naming_the_line_of_a_broken_rule_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qinghe.serve import main

    broken = Path(__file__).parent / "fixtures" / "e2e" / "broken-rule.yaml"
    config = tmp_path / "central.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "broker: {url: 'mqtt://127.0.0.1:1'}\n"
        "sensors:\n  - {id: aq-1, kind: air, zone: z}\n"
        f"rules: {{files: ['{broken}']}}\n"
    )
    assert main(["--config", str(config), "--only", "rules"]) == 1
    assert f"{broken}:10: rules[0].tiers[0].abvoe: unknown key" in capsys.readouterr().err
