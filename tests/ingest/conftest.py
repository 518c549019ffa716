"""Fixtures for the ingest integration tests: a reading stream publisher and service factories."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingest.service import IngestService
from qinghe.bus import MqttBus, PublishHandle
from qinghe.central_config import CentralConfig
from qinghe.clock import SystemClock
from qinghe.config import BrokerConfig
from qinghe.contracts import SensorReading
from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics
from tests.ingest.helpers import central, topic


@dataclass
class ReadingStream:
    """Publishes air readings round-robin over `sensors` at `rate`/s in a thread, QoS 1, seq per sensor."""

    broker_url: str
    sensors: Sequence[str]
    rate: float
    total: int
    client_id: str = "test-stream"
    published: int = 0
    handles: list[PublishHandle] = field(default_factory=list)
    sent: set[tuple[str, int]] = field(default_factory=set)  # (sensor, ts ms)

    def __post_init__(self) -> None:
        self.bus = MqttBus(BrokerConfig(url=self.broker_url, reconnect_min_s=0.1, reconnect_max_s=0.5), self.client_id)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ReadingStream:
        """Connect and start publishing."""
        self.bus.start(wait_s=10)
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        last: dict[str, int] = {}
        for i in range(self.total):
            delay = t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sensor = self.sensors[i % len(self.sensors)]
            ts = max(int(time.time() * 1000), last.get(sensor, 0) + 1)
            last[sensor] = ts
            seq = i // len(self.sensors)
            body = json.dumps({"ts": ts, "seq": seq, "values": {"pm25": 20.0 + i % 40}})
            self.handles.append(self.bus.publish(topic(sensor), body))
            self.sent.add((sensor, ts))
            self.published += 1

    def finish(self, timeout_s: float = 60.0) -> None:
        """Wait for the last publish and every PUBACK, then disconnect."""
        self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        for handle in self.handles:
            assert handle.wait(max(0.1, deadline - time.monotonic())), "a QoS 1 publish was never acknowledged"
        self.bus.stop()


@pytest.fixture
def ingest_config(tmp_path: Path, mosquitto: LocalMosquitto, victoria: LocalVictoriaMetrics) -> CentralConfig:
    """A central config for the test registry on the private broker and database."""
    return central(tmp_path, mosquitto.url, victoria.url)


ServiceFactory = Callable[..., IngestService]


@pytest.fixture
def start_ingest(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start IngestService instances (stopped at the end if the test did not stop them)."""
    started: list[IngestService] = []

    def factory(config: CentralConfig, on_reading: Callable[[SensorReading], None] | None = None) -> IngestService:
        service = IngestService(config, tmp_path, SystemClock(), on_reading)
        service.start()
        assert service.wait_ready(10), "ingest did not connect"
        started.append(service)
        return service

    yield factory
    for service in started:
        if service.bus.connected:
            service.stop(flush_timeout_s=1)
