"""Durable outbox: ordered delivery, buffering through broker outages, replay after restart."""

from __future__ import annotations

from pathlib import Path

from qinghe.bus import MqttBus
from qinghe.config import BrokerConfig
from qinghe.localservers import LocalMosquitto
from qinghe.outbox import Outbox, OutboxEntry
from tests.support import Collector


def _entries(start: int, stop: int) -> list[OutboxEntry]:
    return [OutboxEntry(f"qh/v1/x/{i}", str(i).encode()) for i in range(start, stop)]


def _payloads(collector: Collector) -> list[int]:
    return [int(m.payload) for m in collector.on("qh/v1/x/")]


def test_outbox_delivers_in_order_and_empties(
    tmp_path: Path, broker_config: BrokerConfig, collector: Collector
) -> None:
    bus = MqttBus(broker_config, "ob1")
    bus.start()
    outbox = Outbox(tmp_path / "ob.db", bus)
    outbox.put_many(_entries(0, 300))
    assert outbox.flush(10)
    collector.wait_for(lambda ms: len(ms) >= 300)
    assert _payloads(collector) == list(range(300))
    outbox.stop()
    bus.stop()


def test_outbox_keeps_messages_through_an_outage(
    tmp_path: Path, mosquitto: LocalMosquitto, broker_config: BrokerConfig, collector: Collector
) -> None:
    bus = MqttBus(broker_config, "ob2")
    bus.start()
    outbox = Outbox(tmp_path / "ob.db", bus)
    outbox.start()
    mosquitto.stop()
    outbox.put_many(_entries(0, 100))
    assert outbox.depth() == 100
    mosquitto.start()
    assert outbox.flush(15)
    got = collector.wait_for(lambda ms: len({m.payload for m in ms if m.topic.startswith("qh/v1/x/")}) >= 100)
    assert {int(m.payload) for m in got if m.topic.startswith("qh/v1/x/")} == set(range(100))
    outbox.stop()
    bus.stop()


def test_rows_not_acknowledged_before_a_crash_are_replayed_in_order(
    tmp_path: Path, mosquitto: LocalMosquitto, broker_config: BrokerConfig, collector: Collector
) -> None:
    mosquitto.stop()
    dead_bus = MqttBus(broker_config, "ob3")
    dead_bus.start(wait_s=None)
    crashed = Outbox(tmp_path / "ob.db", dead_bus)
    crashed.put_many(_entries(0, 50))
    crashed.pump()  # handed to a bus that can never deliver, then the process "dies"
    crashed.stop()
    dead_bus.stop(timeout_s=0.1)
    mosquitto.start()
    bus = MqttBus(broker_config, "ob3b")
    bus.start()
    outbox = Outbox(tmp_path / "ob.db", bus)
    assert outbox.depth() == 50
    outbox.put_many(_entries(50, 60))
    assert outbox.flush(10)
    collector.wait_for(lambda ms: len(ms) >= 60)
    assert _payloads(collector) == list(range(60))
    outbox.stop()
    bus.stop()
