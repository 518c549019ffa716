"""Nothing lost, nothing duplicated: database outage, broker restart, service restart and SIGKILL mid-stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qinghe.central_config import CentralConfig
from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics
from tests.ingest.conftest import ReadingStream, ServiceFactory
from tests.ingest.helpers import central, settled_count, wait_for
from tests.support import Collector

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AIR = [f"aq-s{i}" for i in range(8)]
PM25 = '{__name__="air_pm25"}'


def _air_config(tmp_path: Path, broker_url: str, influx_url: str) -> CentralConfig:
    config = central(tmp_path, broker_url, influx_url)
    sensors = [s.model_copy(update={"id": sid, "units": {}}) for sid in AIR for s in config.sensors[:1]]
    return config.model_copy(update={"sensors": sensors})


def _assert_stored_exactly_once(victoria: LocalVictoriaMetrics, stream: ReadingStream) -> None:
    count = settled_count(victoria, PM25, stream.published, timeout_s=40)
    stored = [(s["metric"]["sensor"], ts) for s in victoria.export(PM25) for ts in s["timestamps"]]
    assert len(stored) == len(set(stored)), "a reading was written twice"
    assert set(stored) == stream.sent, (
        f"missing {len(stream.sent - set(stored))}, extra {len(set(stored) - stream.sent)}"
    )
    assert count == stream.published


def test_a_30_s_database_outage_and_a_service_restart_during_it_lose_and_duplicate_nothing(
    tmp_path: Path,
    mosquitto: LocalMosquitto,
    victoria: LocalVictoriaMetrics,
    collector: Collector,
    start_ingest: ServiceFactory,
) -> None:
    config = _air_config(tmp_path, mosquitto.url, victoria.url)
    first = start_ingest(config)
    stream = ReadingStream(mosquitto.url, AIR, rate=100, total=4200).start()
    time.sleep(4)
    victoria.stop()
    down_at = time.monotonic()
    wait_for(lambda: first.buffer.depth > 100, 10, "readings to pile up in the disk buffer")
    acked_while_down = first.stats()["acked"]
    time.sleep(2)
    assert first.stats()["acked"] > acked_while_down + 50, "messages must be acknowledged once buffered on disk"
    first.stop(flush_timeout_s=1)  # the database is down: the buffer stays on disk
    time.sleep(1)
    second = start_ingest(config)
    assert second.buffer.depth > 100  # what the first instance buffered
    time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
    victoria.start()
    stream.finish()
    wait_for(lambda: second.buffer.depth == 0, 40, "the buffer to drain into the database")
    _assert_stored_exactly_once(victoria, stream)
    assert second.stats()["write_failures"] > 0
    assert collector.on("qh/v1/deadletter/") == []


def test_a_broker_restart_mid_stream_loses_no_qos1_message(
    tmp_path: Path,
    mosquitto: LocalMosquitto,
    victoria: LocalVictoriaMetrics,
    collector: Collector,
    start_ingest: ServiceFactory,
) -> None:
    service = start_ingest(_air_config(tmp_path, mosquitto.url, victoria.url))
    stream = ReadingStream(mosquitto.url, AIR, rate=200, total=2400).start()
    time.sleep(4)
    mosquitto.restart()
    stream.finish()
    _assert_stored_exactly_once(victoria, stream)
    stats = service.stats()
    assert stats["stored"] == stream.published
    # A reading whose PUBACK the restart swallowed is sent again by the sensor: the broker forwards
    # it as a new message, and ingest drops it as a duplicate (dead-lettered, never stored twice).
    assert stats["rejected"] <= 200
    letters = [json.loads(m.payload)["reason"] for m in collector.on("qh/v1/deadletter/ingest")]
    assert all(reason.startswith("duplicate: ") for reason in letters), letters[:5]


def _serve(config_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "qinghe.cli", "serve", "--config", str(config_file), "--only", "ingest"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_of_serve_mid_stream_loses_nothing_and_env_overrides_point_it_at_the_servers(
    tmp_path: Path, mosquitto: LocalMosquitto, victoria: LocalVictoriaMetrics, collector: Collector
) -> None:
    config_file = tmp_path / "central.yaml"
    sensors = "".join(f"  - {{id: {sid}, kind: air, zone: z}}\n" for sid in AIR)
    config_file.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "broker: {url: 'mqtt://127.0.0.1:1', reconnect_min_s: 0.1, reconnect_max_s: 0.5}\n"
        "influx: {url: 'http://127.0.0.1:1', flush_interval_ms: 100}\n"
        f"sensors:\n{sensors}"
    )
    env = {**os.environ, "QINGHE_BROKER": mosquitto.url, "QINGHE_INFLUX_URL": victoria.url}
    availability = "qh/v1/service/central-serve-ingest/availability"  # an --only subset names itself

    def online_count() -> int:
        return sum(1 for m in collector.on(availability) if m.payload == b"online")

    serve = _serve(config_file, env)
    collector.wait_for(lambda _ms: online_count() >= 1, 30)
    time.sleep(0.3)
    stream = ReadingStream(mosquitto.url, AIR, rate=150, total=2100).start()
    time.sleep(4)
    serve.kill()
    serve.communicate(timeout=10)
    time.sleep(1)
    serve = _serve(config_file, env)
    collector.wait_for(lambda _ms: online_count() >= 2, 30)
    stream.finish()
    _assert_stored_exactly_once(victoria, stream)
    serve.send_signal(signal.SIGTERM)
    _out, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err.decode()[-2000:]
    log = err.decode()
    assert f"config {config_file}" in log
    assert f"broker {mosquitto.url}" in log
    collector.wait_for(lambda _ms: collector.on(availability)[-1].payload == b"offline", 10)
