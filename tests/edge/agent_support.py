"""Helpers for agent-level tests: configs, a persistent-session event consumer with dedup."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.dedup import EventDeduper
from qinghe.bus import InboundMessage, MqttBus
from qinghe.codec import decode
from qinghe.config import BrokerConfig
from qinghe.contracts import ObjectEvent

LOT = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]


def agent_config(state_dir: Path, broker_url: str, model: Path, clip: Path, **camera: Any) -> dict[str, Any]:
    """An edge config dict: one looping, real-time clip camera on the square model, zone over the lower frame."""
    cam: dict[str, Any] = {
        "id": "cam-1",
        "detect": {"path": str(clip), "loop": True, "realtime": True},
        "detect_fps": 5,
        "tracking": {"min_hits": 2, "max_disappeared": 3, "stationary_s": 30, "stationary_max_disappeared": 3},
        "zones": [{"name": "lot", "polygon": LOT, "inertia": 2}],
        **camera,
    }
    return {
        "edge_id": "box-1",
        "broker": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        "state_dir": str(state_dir),
        "detector": {"model": str(model)},
        "stats_interval_s": 1,
        "cameras": [cam],
    }


class EventConsumer:
    """A downstream service: persistent session, QoS 1, dedup by event_id (as the rules engine does)."""

    def __init__(self, url: str, client_id: str = "event-consumer") -> None:
        self.dedup = EventDeduper(capacity=10_000, ttl_s=3600)
        self.received: list[ObjectEvent] = []  # every delivery, duplicates included
        self.unique: list[ObjectEvent] = []  # after dedup, in arrival order
        self.snapshots: dict[str, int] = {}
        self._cond = threading.Condition()
        self.bus = MqttBus(BrokerConfig(url=url, reconnect_min_s=0.1, reconnect_max_s=0.5), client_id)
        self.bus.subscribe("qh/v1/camera/+/event", self._on_event)
        self.bus.subscribe("qh/v1/camera/+/snapshot/+", self._on_snapshot)

    def _on_event(self, message: InboundMessage) -> None:
        event = decode(ObjectEvent, message.payload)
        with self._cond:
            self.received.append(event)
            if not self.dedup.seen(event.event_id, time.time()):
                self.unique.append(event)
            self._cond.notify_all()

    def _on_snapshot(self, message: InboundMessage) -> None:
        with self._cond:
            self.snapshots[message.topic] = len(message.payload)

    def start(self) -> EventConsumer:
        self.bus.start(wait_s=10)
        time.sleep(0.2)
        return self

    def stop(self) -> None:
        self.bus.stop()

    def wait_for(self, predicate: Callable[[list[ObjectEvent]], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.unique):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what}: not within {timeout_s} s ({len(self.unique)} unique events)")
                self._cond.wait(min(left, 0.5))
