"""MQTT bus adapter against a real Mosquitto: sessions, reconnects, manual ack, last will."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from qinghe.bus import Availability, InboundMessage, MqttBus
from qinghe.config import BrokerConfig
from qinghe.localservers import LocalMosquitto
from tests.support import Collector


def _bus(config: BrokerConfig, client_id: str, **kwargs: object) -> MqttBus:
    return MqttBus(config, client_id, **kwargs)  # type: ignore[arg-type]


class Inbox:
    """Thread-safe list of received payloads."""

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.lock = threading.Lock()

    def add(self, message: InboundMessage) -> None:
        with self.lock:
            self.items.append(message.payload)

    def wait_len(self, n: int, timeout_s: float = 10) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.items) >= n:
                    return list(self.items)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"got {len(self.items)} of {n} messages")


def test_messages_sent_while_subscriber_is_down_arrive_when_it_returns(broker_config: BrokerConfig) -> None:
    inbox = Inbox()
    sub = _bus(broker_config, "persistent-sub")
    sub.subscribe("qh/v1/t/#", inbox.add)
    sub.start()
    sub.stop()
    pub = _bus(broker_config, "pub")
    pub.start()
    for i in range(50):
        pub.publish_and_wait(f"qh/v1/t/{i}", str(i))
    pub.stop()
    again = _bus(broker_config, "persistent-sub")
    again.subscribe("qh/v1/t/#", inbox.add)
    again.start()
    assert sorted(int(p) for p in inbox.wait_len(50)) == list(range(50))
    again.stop()


def test_broker_restart_reconnects_and_resubscribes(mosquitto: LocalMosquitto, broker_config: BrokerConfig) -> None:
    inbox = Inbox()
    sub = _bus(broker_config, "sub-restart", clean_start=True)  # no session: must resubscribe itself
    sub.subscribe("qh/v1/r", inbox.add)
    sub.start()
    mosquitto.restart()
    assert sub.wait_connected(10)
    pub = _bus(broker_config, "pub-restart")
    pub.start()
    time.sleep(0.2)
    pub.publish_and_wait("qh/v1/r", "after")
    assert inbox.wait_len(1) == [b"after"]
    pub.stop()
    sub.stop()


def test_publishes_queued_while_broker_is_down_are_delivered(
    mosquitto: LocalMosquitto, broker_config: BrokerConfig
) -> None:
    inbox = Inbox()
    sub = _bus(broker_config, "sub-queued")
    sub.subscribe("qh/v1/q/#", inbox.add)
    sub.start()
    pub = _bus(broker_config, "pub-queued")
    pub.start()
    mosquitto.stop()
    handles = [pub.publish(f"qh/v1/q/{i}", str(i)) for i in range(20)]
    assert not any(h.is_published() for h in handles)
    mosquitto.start()
    assert all(h.wait(10) for h in handles)
    assert sorted(int(p) for p in inbox.wait_len(20)) == list(range(20))
    pub.stop()
    sub.stop()


def test_a_failing_handler_does_not_stop_delivery(broker_config: BrokerConfig) -> None:
    inbox = Inbox()

    def flaky(message: InboundMessage) -> None:
        if message.payload == b"boom":
            raise RuntimeError("handler bug")
        inbox.add(message)

    sub = _bus(broker_config, "sub-flaky", clean_start=True)
    sub.subscribe("qh/v1/f", flaky)
    sub.start()
    pub = _bus(broker_config, "pub-flaky")
    pub.start()
    for payload in ("boom", "one", "boom", "two"):
        pub.publish_and_wait("qh/v1/f", payload)
    assert inbox.wait_len(2) == [b"one", b"two"]
    assert sub.connected
    pub.stop()
    sub.stop()


def test_unacknowledged_messages_are_redelivered_with_manual_ack(broker_config: BrokerConfig) -> None:
    first = Inbox()
    sub = _bus(broker_config, "manual", manual_ack=True)
    sub.subscribe("qh/v1/m", first.add)  # never acks
    sub.start()
    pub = _bus(broker_config, "pub-manual")
    pub.start()
    pub.publish_and_wait("qh/v1/m", "keep-me")
    first.wait_len(1)
    sub.stop()
    second = Inbox()
    acker = _bus(broker_config, "manual", manual_ack=True)

    def take(message: InboundMessage) -> None:
        second.add(message)
        acker.ack(message)

    acker.subscribe("qh/v1/m", take)
    acker.start()
    assert second.wait_len(1) == [b"keep-me"]
    acker.stop()
    third = Inbox()
    again = _bus(broker_config, "manual", manual_ack=True)
    again.subscribe("qh/v1/m", third.add)
    again.start()
    time.sleep(0.5)
    assert third.items == []  # acknowledged once, never again
    again.stop()
    pub.stop()


def test_availability_is_retained_online_and_last_will_says_offline(
    tmp_path: Path, mosquitto: LocalMosquitto, broker_config: BrokerConfig
) -> None:
    script = tmp_path / "holder.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from qinghe.bus import Availability, MqttBus
            from qinghe.config import BrokerConfig
            bus = MqttBus(BrokerConfig(url={mosquitto.url!r}, keepalive_s=5), "holder",
                          availability=Availability("qh/v1/edge/e1/availability"))
            bus.start()
            print("up", flush=True)
            time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    watcher = Collector(mosquitto.url, "qh/v1/edge/+/availability", "watcher").start()
    watcher.wait_for(lambda ms: any(m.payload == b"online" and m.retain for m in ms))
    proc.kill()
    proc.wait()
    proc.stdout.close()
    watcher.wait_for(lambda ms: ms[-1].payload == b"offline", timeout_s=15)
    watcher.stop()
    late = Collector(mosquitto.url, "qh/v1/edge/+/availability", "late").start()
    assert late.wait_for(lambda ms: len(ms) == 1)[0].payload == b"offline"  # retained
    late.stop()


def test_clean_stop_publishes_offline(mosquitto: LocalMosquitto, broker_config: BrokerConfig) -> None:
    bus = _bus(broker_config, "svc", availability=Availability("qh/v1/service/svc/availability"))
    bus.start()
    bus.stop()
    late = Collector(mosquitto.url, "qh/v1/service/+/availability", "late2").start()
    assert late.wait_for(lambda ms: len(ms) == 1)[0].payload == b"offline"
    late.stop()


def test_bulk_read_delivers_a_backlog_in_bursts_acknowledged_per_burst(broker_config: BrokerConfig) -> None:
    def consumer(inbox: Inbox, bursts: list[int]) -> MqttBus:
        bus = _bus(broker_config, "bulk", manual_ack=True, bulk_read=True)
        pending: list[InboundMessage] = []

        def take(message: InboundMessage) -> None:
            inbox.add(message)
            pending.append(message)

        def end_of_burst() -> None:  # what a consumer does: commit the burst, then ack it in one write
            if pending:
                bursts.append(len(pending))
                bus.ack_many(list(pending))
                pending.clear()

        bus.subscribe("qh/v1/bulk/#", take)
        bus.on_burst_end(end_of_burst)
        return bus

    first = consumer(Inbox(), [])
    first.start()  # the persistent session and its subscription
    first.stop()
    pub = _bus(broker_config, "pub-bulk")
    pub.start()
    big = b"x" * 200_000  # larger than one read of the buffer: served across several
    for i in range(600):
        pub.publish(f"qh/v1/bulk/{i % 7}", big if i == 300 else str(i).encode())
    pub.publish_and_wait("qh/v1/bulk/end", "600")
    inbox, bursts = Inbox(), list[int]()
    second = consumer(inbox, bursts)
    second.start()
    got = inbox.wait_len(601)
    deadline = time.monotonic() + 10
    while sum(bursts) < 601 and time.monotonic() < deadline:  # the last burst ends just after its messages
        time.sleep(0.01)
    second.stop()
    assert got[300] == big
    assert [int(p) for i, p in enumerate(got) if i != 300] == [i for i in range(601) if i != 300]  # in order
    assert sum(bursts) == 601
    assert len(bursts) < 300  # a backlog arrives many messages per pass, not one
    third_inbox = Inbox()
    third = consumer(third_inbox, [])
    third.start()
    time.sleep(0.5)
    assert third_inbox.items == []  # every burst was acknowledged: nothing comes back
    third.stop()
    pub.stop()
