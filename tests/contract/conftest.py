"""Fixtures of the contract suite: one private Mosquitto and VictoriaMetrics per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMosquitto]:
    """A private Mosquitto (persistence on) shared by the tests of one module."""
    server = LocalMosquitto(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalVictoriaMetrics]:
    """A private VictoriaMetrics (InfluxDB v2 write API, read back through its export API)."""
    server = LocalVictoriaMetrics(tmp_path_factory.mktemp("victoria"))
    server.start()
    yield server
    server.stop()
