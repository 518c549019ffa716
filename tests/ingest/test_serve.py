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
