"""Test helpers shared by every package's tests: a message collector on a real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from qinghe.bus import InboundMessage, MqttBus
from qinghe.config import BrokerConfig


class Collector:
    """Subscribes on a real broker (persistent session: survives broker restarts) and keeps every message."""

    def __init__(self, url: str, topic_filter: str, client_id: str = "test-collector") -> None:
        self.messages: list[InboundMessage] = []
        self._cond = threading.Condition()
        self.bus = MqttBus(BrokerConfig(url=url, reconnect_min_s=0.1, reconnect_max_s=1), client_id)
        self.bus.subscribe(topic_filter, self._on_message)

    def _on_message(self, message: InboundMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def start(self) -> Collector:
        """Connect and subscribe; returns self."""
        self.bus.start(wait_s=10)
        time.sleep(0.1)  # let the SUBACK land before the test publishes
        return self

    def stop(self) -> None:
        """Disconnect."""
        self.bus.stop()

    def wait_for(
        self, predicate: Callable[[list[InboundMessage]], bool], timeout_s: float = 10.0
    ) -> list[InboundMessage]:
        """Block until `predicate(messages)` holds; raise AssertionError with what arrived otherwise."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = [m.topic for m in self.messages[-10:]]
                    raise AssertionError(f"condition not met in {timeout_s} s; last topics: {topics}")
                self._cond.wait(left)
            return list(self.messages)

    def on(self, topic_prefix: str) -> list[InboundMessage]:
        """Messages whose topic starts with `topic_prefix`."""
        with self._cond:
            return [m for m in self.messages if m.topic.startswith(topic_prefix)]
