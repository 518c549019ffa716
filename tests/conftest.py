"""Fixtures: real Mosquitto and VictoriaMetrics on free loopback ports, and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qinghe.clock import FakeClock
from qinghe.config import BrokerConfig
from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics
from tests.support import Collector


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A private Mosquitto with persistence, restartable by the test."""
    server = LocalMosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[LocalVictoriaMetrics]:
    """A private VictoriaMetrics accepting InfluxDB v2 writes."""
    server = LocalVictoriaMetrics(tmp_path / "victoria")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker_config(mosquitto: LocalMosquitto) -> BrokerConfig:
    """BrokerConfig pointing at the private broker."""
    return BrokerConfig(url=mosquitto.url, reconnect_min_s=0.1, reconnect_max_s=1.0)


@pytest.fixture
def collector(mosquitto: LocalMosquitto) -> Iterator[Collector]:
    """Collects every message under qh/v1/# on the private broker."""
    c = Collector(mosquitto.url, "qh/v1/#").start()
    yield c
    c.stop()
