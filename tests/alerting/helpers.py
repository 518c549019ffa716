"""Builders and a fake-clock harness for the alerting core, persisted through the real SQLite store."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from alerting.config import AlertingConfig
from alerting.core import AlertingCore
from alerting.emit import Changes
from alerting.model import IncidentRecord
from alerting.store import AlertingStore
from alerting.voice.desk import Delivery
from qinghe.central_config import CameraRefConfig
from qinghe.clock import FakeClock
from qinghe.codec import decode
from qinghe.contracts import (
    ActionSpec,
    Alert,
    AlertKind,
    Colour,
    CommandAction,
    Evidence,
    IncidentCommand,
    RuleSignal,
    SignalStatus,
    SourceRef,
)
from qinghe.outbox import OutboxEntry
from qinghe.topics import Topics

_ids = itertools.count(1)


def signal(
    key: str = "r1:z1",
    status: SignalStatus = SignalStatus.FIRING,
    colour: Colour = Colour.RED,
    *,
    rule_id: str = "r1",
    incident_type: str = "smoke_fire",
    zone: str = "z1",
    ts: float = 1_800_000_000.0,
    sources: tuple[SourceRef, ...] = (),
    evidence: tuple[Evidence, ...] = (),
    actions: tuple[ActionSpec, ...] = (),
    explain: Mapping[str, Any] | None = None,
    camera_id: str | None = None,
    flapping: bool = False,
    signal_id: str | None = None,
) -> RuleSignal:
    """A RuleSignal with a fresh id unless one is given."""
    return RuleSignal(
        signal_id=signal_id or f"sig-{next(_ids)}",
        rule_id=rule_id,
        dedup_key=key,
        incident_type=incident_type,
        status=status,
        colour=colour,
        ts=ts,
        message=f"{incident_type} in {zone}",
        zone=zone,
        sources=sources,
        evidence=evidence,
        actions=actions,
        explain=dict(explain or {}),
        camera_id=camera_id,
        flapping=flapping,
    )


def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        time.sleep(0.02)


def cmd(action: str, by: str = "alice", note: str = "") -> IncidentCommand:
    """A responder command."""
    return IncidentCommand(action=CommandAction(action), by=by, ts=0.0, note=note)


class Harness:
    """The core driven by a FakeClock; every step is committed to a real AlertingStore, like the service."""

    def __init__(
        self,
        tmp_path: Path,
        config: AlertingConfig | Mapping[str, Any] | None = None,
        cameras: Mapping[str, CameraRefConfig] | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.config = config if isinstance(config, AlertingConfig) else AlertingConfig.model_validate(config or {})
        self.cameras = dict(cameras or {})
        self.clock = clock or FakeClock()
        self.path = tmp_path / "alerting.db"
        self.store = AlertingStore(self.path)
        self.outbox: list[OutboxEntry] = []
        self.steps: list[Changes] = []
        self.core = self._core()

    def _core(self) -> AlertingCore:
        return AlertingCore(self.config, Topics("qh"), self.cameras, self.store.load())

    def _apply(self, changes: Changes) -> Changes:
        self.store.commit(changes, self.core.state.next_seq)
        self.outbox.extend(changes.outbox)
        self.steps.append(changes)
        return changes

    def send(self, sig: RuleSignal) -> Changes:
        """Feed one signal at the current fake time."""
        return self._apply(self.core.on_signal(sig, self.clock.now()))

    def command(self, incident_id: str, command: IncidentCommand) -> Changes:
        """Feed one responder command."""
        return self._apply(self.core.on_command(incident_id, command, self.clock.now()))

    def delivered(self, warning_id: str, delivery: Delivery) -> Changes:
        """A speaker adapter's answer."""
        return self._apply(self.core.on_delivered(warning_id, delivery, self.clock.now()))

    def advance(self, seconds: float, step: float | None = None) -> None:
        """Move the clock forward, ticking every `step` seconds (once at the end if None)."""
        if step is None:
            self.clock.advance(seconds)
            self.tick()
            return
        left = seconds
        while left > 0:
            move = min(step, left)
            self.clock.advance(move)
            self.tick()
            left -= move

    def tick(self) -> Changes:
        """One tick at the current fake time."""
        return self._apply(self.core.tick(self.clock.now()))

    def restart(self) -> None:
        """Throw the core away and rebuild it from the store, as a restarted service does."""
        self.core = self._core()

    def alerts(self, incident_id: str | None = None) -> list[Alert]:
        """Every alert published so far (optionally for one incident), in order."""
        out = [decode(Alert, e.payload) for e in self.outbox if "/alert/" in e.topic]
        return [a for a in out if incident_id is None or a.incident_id == incident_id]

    def kinds(self, incident_id: str | None = None) -> list[AlertKind]:
        """Alert kinds in order."""
        return [a.kind for a in self.alerts(incident_id)]

    def topics(self, fragment: str) -> list[OutboxEntry]:
        """Outbox entries whose topic contains `fragment`."""
        return [e for e in self.outbox if fragment in e.topic]

    def only(self) -> IncidentRecord:
        """The single unarchived incident (fails if there is not exactly one)."""
        records = list(self.core.state.records.values())
        assert len(records) == 1, [r.id for r in records]
        return records[0]

    def record(self, incident_id: str) -> IncidentRecord:
        """An incident from the store (archived or not)."""
        found = self.store.record(incident_id)
        assert found is not None
        return found
