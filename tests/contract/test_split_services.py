"""Contract: the central services also run alone (`qinghe serve --only ...`), talking over MQTT.

Two processes from one config, as an operator splits them across machines: ingest in one, rules and
alerting in the other. A reading must still become an incident, and each process must keep one
steady connection and its own retained availability.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics
from tests.contract.support import REPO, Program, Wire, base_env, now_ms, retained

pytestmark = pytest.mark.integration

P = "d7/v1"
CONFIG = REPO / "tests/contract/data/central.yaml"


def test_ingest_and_rules_with_alerting_in_separate_processes(
    tmp_path: Path, broker: LocalMosquitto, database: LocalVictoriaMetrics
) -> None:
    env = base_env(QINGHE_BROKER=broker.url, QINGHE_INFLUX_URL=database.url, QA_STATE_DIR=str(tmp_path / "state"))
    wire = Wire(broker.port, f"{P}/#").start()
    ingest = Program(["serve", "--config", str(CONFIG), "--only", "ingest"], env, tmp_path / "ingest.log").start()
    rest = Program(["serve", "--config", str(CONFIG), "--only", "rules,alerting"], env, tmp_path / "rest.log").start()
    try:
        wire.wait_for(
            lambda w: len({m.topic for m in w.on(f"{P}/service/+/availability") if m.payload == b"online"}) >= 2,
            60,
            "both processes online",
        )
        time.sleep(1)
        wire.publish(f"{P}/sensor/aq-1/reading", json.dumps({"ts": now_ms(), "values": {"pm25": 120.0}}))
        opened = wire.wait_for(lambda w: w.on(f"{P}/alert/yellow/qa_air"), 20, "an incident opened across processes")
        assert opened[0].json()["kind"] == "opened"
        time.sleep(2)
        flaps = [m for m in wire.on(f"{P}/service/+/availability") if m.payload == b"offline"]
        assert not flaps, f"a process lost its connection while both ran: {[m.topic for m in flaps]}"
        online = retained(broker.port, f"{P}/service/+/availability")
        ours = {topic for topic, payload in online.items() if payload == b"online"}
        assert len(ours) >= 2, online
    finally:
        codes = (ingest.terminate(), rest.terminate())
        wire.stop()
    assert codes == (0, 0), ingest.log()[-1500:] + rest.log()[-1500:]
