"""Ingest against a real Mosquitto and VictoriaMetrics: storage, dead letters, the simulator's exact counts."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.simbad import BAD_CLASSES, make_bad
from ingest.simmodels import SimSensor
from qinghe.bus import MqttBus
from qinghe.central_config import CentralConfig
from qinghe.config import BrokerConfig
from qinghe.contracts import SensorKind, SensorReading
from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics
from tests.ingest.conftest import ServiceFactory
from tests.ingest.helpers import central, export_series, settled_count, topic, wait_for
from tests.support import Collector

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]


def _publisher(url: str) -> MqttBus:
    bus = MqttBus(BrokerConfig(url=url), "test-publisher", clean_start=True)
    bus.start(wait_s=10)
    return bus


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_readings_arrive_in_the_database_in_canonical_units_with_their_tags(
    protocol: str,
    ingest_config: CentralConfig,
    victoria: LocalVictoriaMetrics,
    mosquitto: LocalMosquitto,
    start_ingest: ServiceFactory,
) -> None:
    settings = ingest_config.ingest.model_copy(update={"mqtt_protocol": protocol})
    ingest_config = ingest_config.model_copy(update={"ingest": settings})
    seen: list[SensorReading] = []
    service = start_ingest(ingest_config, seen.append)
    ms = int(time.time() * 1000)
    readings = [
        ("aq-1", {"ts": ms, "seq": 1, "values": {"pm25": 35.2, "pm10": 51.0}}),
        ("aq-mg", {"ts": ms, "values": {"pm25": 0.0421}}),
        ("wl-cm", {"ts": ms, "values": {"level": 187.0}}),
        ("th-f", {"ts": ms, "values": {"temp_max": 212.0}}),
        ("aq-1", {"ts": ms + 1000, "seq": 2, "values": {"pm25": 36.0}}),
    ]
    bus = _publisher(mosquitto.url)
    for sensor, doc in readings:
        bus.publish_and_wait(topic(sensor), json.dumps(doc))
    bus.stop()
    pm25 = {s["metric"]["sensor"]: s for s in export_series(victoria, '{__name__="air_pm25"}', 3)}
    assert pm25["aq-1"]["values"] == [35.2, 36.0]
    assert pm25["aq-1"]["timestamps"] == [ms, ms + 1000]
    assert pm25["aq-1"]["metric"] == {"__name__": "air_pm25", "sensor": "aq-1", "kind": "air", "zone": "north gate"}
    assert pm25["aq-mg"]["values"] == [pytest.approx(42.1)]
    level = export_series(victoria, '{__name__="water_level_level"}', 1)
    assert level[0]["values"] == [1.87]
    assert level[0]["metric"]["zone"] == "lake"
    assert export_series(victoria, '{__name__="thermal_temp_max"}', 1)[0]["values"] == [100.0]
    assert export_series(victoria, '{__name__="air_pm10"}', 1)[0]["values"] == [51.0]
    wait_for(lambda: len(seen) == 5, 5, "on_reading for each reading")
    assert [(r.sensor_id, r.seq) for r in seen] == [
        ("aq-1", 1),
        ("aq-mg", None),
        ("wl-cm", None),
        ("th-f", None),
        ("aq-1", 2),
    ]
    assert service.stats()["acked"] == 5
    service.stop(flush_timeout_s=2)
    again = start_ingest(ingest_config)  # the acks reached the broker: nothing is delivered twice
    time.sleep(1.0)
    assert again.stats()["acked"] == 0
    assert again.validator.dedup.last("aq-1") == (2, (ms + 1000) / 1000)  # dedup state survived the restart


def test_every_class_of_bad_input_lands_in_the_dead_letter_topic_verbatim(
    ingest_config: CentralConfig, mosquitto: LocalMosquitto, collector: Collector, start_ingest: ServiceFactory
) -> None:
    seen: list[SensorReading] = []
    start_ingest(ingest_config, seen.append)
    sensor = SimSensor("aq-1", SensorKind.AIR, "north gate")
    now = time.time()
    good = {"ts": int(now * 1000), "seq": 1, "values": {"pm25": 35.2, "pm10": 50.0}}
    original = json.dumps(good, separators=(",", ":")).encode()
    bus = _publisher(mosquitto.url)
    bus.publish_and_wait(topic("aq-1"), original)
    sent = {}
    for name in BAD_CLASSES:
        bad = make_bad(name, sensor, topic("aq-1"), good, now=now, previous=original, max_payload_bytes=16384)
        assert bad is not None
        sent[name] = bad
        bus.publish_and_wait(bad.topic, bad.payload)
    bus.stop()
    letters = collector.wait_for(lambda ms: len([m for m in ms if "/deadletter/" in m.topic]) >= len(sent))
    docs = [json.loads(m.payload) for m in letters if m.topic == "qh/v1/deadletter/ingest"]
    assert len(docs) == len(sent)
    for (name, bad), doc in zip(sent.items(), docs, strict=True):
        assert doc["reason"].startswith(BAD_CLASSES[name] + ": "), (name, doc["reason"])
        assert doc["topic"] == bad.topic
        assert doc["stage"] == "ingest"
        raw = base64.b64decode(doc["payload"]) if doc["encoding"] == "base64" else doc["payload"].encode()
        assert raw == bad.payload, name
    assert [r.seq for r in seen] == [1]  # nothing invalid reached the rules


def test_simulate_publishes_exact_counts_that_ingest_stores_and_rejects(
    tmp_path: Path,
    mosquitto: LocalMosquitto,
    victoria: LocalVictoriaMetrics,
    collector: Collector,
    start_ingest: ServiceFactory,
) -> None:
    registry = tmp_path / "sim-registry.yaml"
    config_file = tmp_path / "central.yaml"
    config_file.write_text(
        f"state_dir: {tmp_path / 'state'}\nbroker: {{url: {mosquitto.url}}}\ninflux: {{url: {victoria.url}}}\n"
        "sensors:\n  - {id: aq-1, kind: air, zone: z1, units: {pm25: mg/m3, pm10: mg/m3}}\n"
        "  - {id: wl-1, kind: water_level, zone: z1, units: {level: cm}}\n"
    )
    cli = [sys.executable, "-m", "qinghe.cli", "simulate", "sensors", "--config", str(config_file), "--sensors", "16"]
    wrote = subprocess.run(
        [*cli, "--write-registry", str(registry)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert wrote.stdout == ""
    assert "wrote 14 synthetic sensors" in wrote.stderr
    with config_file.open("a") as f:
        f.write(f"ingest: {{registry_files: [{registry.name}]}}\n")
    from ingest.registry import load_central

    config = load_central(config_file)
    assert len(config.sensors) == 16
    start_ingest(central(tmp_path, mosquitto.url, victoria.url).model_copy(update={"sensors": config.sensors}))
    run = subprocess.run(
        [*cli, "--rate", "300", "--duration", "4", "--bad-fraction", "0.1", "--episode", "pollution:z1:0:4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.stdout
    assert json.loads(lines[0]) == {"valid": 1080, "invalid": 120}
    collector.wait_for(lambda ms: len([m for m in ms if m.topic == "qh/v1/deadletter/ingest"]) >= 120, 30)
    required = "air_pm25|noise_laeq|water_level_level|water_quality_ph|rain_rate|smoke_smoke|thermal_temp_max"
    assert settled_count(victoria, f'{{__name__=~"{required}"}}', 1080) == 1080
    assert len(collector.on("qh/v1/deadletter/ingest")) == 120


def test_serve_rejects_a_bad_config_with_file_line_and_key(capsys: pytest.CaptureFixture[str]) -> None:
    from qinghe.serve import main

    bad = Path(__file__).parent / "fixtures" / "bad" / "unknown_kind.yaml"
    assert main(["--config", str(bad)]) == 1
    assert f"{bad}:4: sensors[1].kind: Input should be" in capsys.readouterr().err
    assert main(["--config", str(bad), "--only", "ingest,nonsense"]) == 2
