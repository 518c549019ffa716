"""The alerting outbox pump: in order, deleted only after PUBACK, replayed after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.publisher import StorePublisher
from alerting.store import AlertingStore
from qinghe.bus import MqttBus
from qinghe.config import BrokerConfig
from qinghe.localservers import LocalMosquitto
from qinghe.outbox import OutboxEntry
from tests.alerting.helpers import eventually
from tests.support import Collector

pytestmark = pytest.mark.integration


def test_rows_survive_an_outage_and_a_restart_and_arrive_in_order(
    tmp_path: Path, mosquitto: LocalMosquitto, broker_config: BrokerConfig, collector: Collector
) -> None:
    store = AlertingStore(tmp_path / "a.db")
    bus = MqttBus(broker_config, "pub-test")
    bus.start(wait_s=10)
    publisher = StorePublisher(store, bus)
    store.put_outbox([OutboxEntry(f"qh/v1/t/{i}", str(i).encode()) for i in range(5)])
    publisher.pump()
    assert publisher.flush(10)
    mosquitto.stop()  # the broker goes away: new rows wait on disk
    store.put_outbox([OutboxEntry(f"qh/v1/t/{i}", str(i).encode()) for i in range(5, 10)])
    publisher.pump()
    assert store.outbox_depth() == 5
    bus.stop()
    store.close()

    mosquitto.start()
    collector.bus.wait_connected(10)
    store = AlertingStore(tmp_path / "a.db")  # a restarted service
    bus = MqttBus(broker_config, "pub-test")
    bus.start(wait_s=10)
    publisher = StorePublisher(store, bus)
    publisher.start()
    eventually(lambda: store.outbox_depth() == 0, what="outbox drained after restart")
    eventually(lambda: len(collector.on("qh/v1/t/")) >= 10, what="all rows delivered")
    payloads = [int(m.payload) for m in collector.on("qh/v1/t/")]
    assert payloads[-5:] == [5, 6, 7, 8, 9]
    assert sorted(set(payloads)) == list(range(10))
    publisher.stop()
    bus.stop()
    store.close()
