"""A simulated responder for the demo and tests: acknowledges, arrives, resolves and closes incidents
over MQTT after configurable delays, so a clock can be missed on purpose (e.g. arrive after the
on-site deadline)."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass, field

from qinghe.bus import InboundMessage, MqttBus
from qinghe.codec import decode, encode
from qinghe.config import BrokerConfig
from qinghe.contracts import Alert, AlertKind, CommandAction, Incident, IncidentCommand, IncidentState
from qinghe.errors import PayloadError
from qinghe.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResponderPlan:
    """Seconds after an incident opens at which each command is sent (None = never)."""

    ack_after_s: float | None = 20.0
    arrive_after_s: float | None = 120.0
    resolve_after_s: float | None = 300.0
    close_after_s: float | None = 330.0
    types: frozenset[str] = field(default_factory=frozenset)  # incident types to handle; empty = all

    def commands(self) -> list[tuple[float, CommandAction]]:
        """The plan as (delay, action), in time order."""
        steps = [
            (self.ack_after_s, CommandAction.ACK),
            (self.arrive_after_s, CommandAction.ARRIVE),
            (self.resolve_after_s, CommandAction.RESOLVE),
            (self.close_after_s, CommandAction.CLOSE),
        ]
        return sorted(((d, a) for d, a in steps if d is not None), key=lambda s: s[0])


class SimulatedResponder:
    """Listens on `alert/+/+` (and the retained `incident/+`) and answers every open incident with the
    plan's commands, timed from the incident's opening. `sent` lists what it sent."""

    def __init__(self, broker: BrokerConfig, plan: ResponderPlan, name: str = "responder-1") -> None:
        self.plan = plan
        self.name = name
        self.topics = Topics(broker.topic_prefix)
        self.bus = MqttBus(broker, f"qinghe-sim-{name}", clean_start=True)
        self.bus.subscribe(self.topics.filter("alert"), self._on_alert)
        self.bus.subscribe(self.topics.filter("incident"), self._on_incident)  # retained: catches up on start
        self.sent: list[tuple[str, CommandAction]] = []
        self._heap: list[tuple[float, int, str, CommandAction]] = []
        self._seen: set[str] = set()
        self._n = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"responder-{name}", daemon=True)

    def start(self) -> SimulatedResponder:
        """Connect and start sending."""
        self._thread.start()
        self.bus.start(wait_s=10)
        return self

    def stop(self) -> None:
        """Stop sending and disconnect."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self.bus.stop()

    def _on_alert(self, message: InboundMessage) -> None:
        try:
            alert = decode(Alert, message.payload)
        except PayloadError:
            return
        if alert.kind is AlertKind.OPENED:
            self._take(alert.incident)

    def _on_incident(self, message: InboundMessage) -> None:
        if not message.payload:
            return
        try:
            incident = decode(Incident, message.payload)
        except PayloadError:
            return
        if incident.state is IncidentState.OPEN:
            self._take(incident)

    def _take(self, incident: Incident) -> None:
        """Plan the commands for a newly seen open incident, timed from its opening."""
        with self._cond:
            if incident.id in self._seen or (self.plan.types and incident.type not in self.plan.types):
                return
            self._seen.add(incident.id)
            opened = time.monotonic() - max(0.0, time.time() - incident.opened_at)
            for delay, action in self.plan.commands():
                self._n += 1
                heapq.heappush(self._heap, (opened + delay, self._n, incident.id, action))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stop:
                    return
                _due, _n, incident_id, action = heapq.heappop(self._heap)
            self._send(incident_id, action)

    def _send(self, incident_id: str, action: CommandAction) -> None:
        note = f"simulated {self.name}"
        command = IncidentCommand(action=action, by=self.name, ts=time.time(), note=note)
        self.bus.publish(self.topics.build("incident_cmd", incident_id=incident_id), encode(command))
        self.sent.append((incident_id, action))
        log.info("%s sent %s for %s", self.name, action.value, incident_id)
