"""The demo's live terminal view: one line per thing that happens on the bus, snapshots saved to disk."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from qinghe.bus import InboundMessage, MqttBus
from qinghe.codec import decode
from qinghe.config import BrokerConfig
from qinghe.contracts import Alert, AlertKind, CameraStatus, Colour, ObjectEvent, VoiceWarning, WarningReceipt
from qinghe.errors import PayloadError
from qinghe.topics import Topics

_ANSI = {
    Colour.BLUE: "\033[34m",
    Colour.YELLOW: "\033[33m",
    Colour.ORANGE: "\033[38;5;208m",
    Colour.RED: "\033[31m",
}
_RESET = "\033[0m"
_DIM = "\033[2m"


@dataclass
class ViewTally:
    """What the view has seen, for the demo's closing summary."""

    alerts: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    snapshots: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dead_letters: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


class LiveView:
    """Subscribes to everything under the prefix and prints a readable line per message."""

    def __init__(
        self, broker: BrokerConfig, output_dir: Path, out: TextIO = sys.stdout, colour: bool | None = None
    ) -> None:
        self.topics = Topics(broker.topic_prefix)
        self.output_dir = output_dir
        self.out = out
        self.colour = out.isatty() if colour is None else colour
        self.tally = ViewTally()
        self._lock = threading.Lock()
        self._bus = MqttBus(broker, "qinghe-demo-view", clean_start=True)
        self._bus.subscribe(f"{self.topics.root}/#", self._on_message)

    def start(self) -> None:
        """Connect and start printing."""
        (self.output_dir / "snapshots").mkdir(parents=True, exist_ok=True)
        self._bus.start(wait_s=10)

    def stop(self) -> None:
        """Disconnect."""
        self._bus.stop()

    def say(self, kind: str, text: str, colour: Colour | None = None) -> None:
        """Print one timestamped line."""
        stamp = time.strftime("%H:%M:%S")
        tag = f"{kind:<9}"
        if self.colour and colour is not None:
            tag = f"{_ANSI[colour]}{tag}{_RESET}"
        elif self.colour:
            tag = f"{_DIM}{tag}{_RESET}"
        with self._lock:
            print(f"{stamp}  {tag} {text}", file=self.out, flush=True)

    # ----- routing -----------------------------------------------------------------------------------
    def _on_message(self, message: InboundMessage) -> None:
        try:
            parsed = self.topics.parse(message.topic)
        except PayloadError:
            return
        handler = getattr(self, f"_show_{parsed.route}", None)
        if handler is None:
            return
        try:
            handler(message, parsed.params)
        except PayloadError as exc:
            self.say("???", f"{message.topic}: {exc.reason}")

    def _show_alert(self, message: InboundMessage, _params: dict[str, str]) -> None:
        alert = decode(Alert, message.payload)
        incident = alert.incident
        self.tally.alerts[alert.kind.value] += 1
        if alert.kind is AlertKind.UPDATED:
            return  # sources or evidence merged: counted, not narrated
        if incident.type == "illegal_parking" and incident.outcome and alert.kind is AlertKind.CLOSED:
            self.tally.outcomes[incident.outcome] += 1
        who = next((h.by for h in reversed(incident.history)), "")
        detail = {
            AlertKind.SLA_BREACHED: f"{alert.clock.value if alert.clock else ''} clock MISSED, tier {alert.tier}",
            AlertKind.ESCALATED: f"escalated to tier {alert.tier} {alert.note}",
        }.get(alert.kind, f"by {who}" if who and alert.kind != AlertKind.OPENED else incident.message)
        outcome = f" [{incident.outcome}]" if incident.outcome else ""
        self.say(
            "INCIDENT",
            f"{alert.colour.value:<6} {alert.kind.value:<14} {incident.type:<16} {incident.id}  {detail}{outcome}",
            alert.colour,
        )

    def _show_camera_event(self, message: InboundMessage, params: dict[str, str]) -> None:
        event = decode(ObjectEvent, message.payload)
        self.tally.events[event.analytic] += 1
        phase = event.phase or event.outcome or ""
        plate = f" plate {event.plate}" if event.plate else ""
        self.say(
            "CAMERA",
            f"{params['camera_id']:<14} {event.analytic:<15} {event.type.value:<6} {phase:<10} "
            f"{event.label} in {event.zone or 'the whole view'}, dwell {event.dwell_s:.0f}s{plate}",
        )

    def _show_camera_snapshot(self, message: InboundMessage, params: dict[str, str]) -> None:
        path = self.output_dir / "snapshots" / f"{params['camera_id']}-{params['event_id']}.jpg"
        path.write_bytes(message.payload)
        self.tally.snapshots.append(path)
        self.say("SNAPSHOT", f"{path} ({len(message.payload) // 1024} KiB)")

    def _show_camera_status(self, message: InboundMessage, params: dict[str, str]) -> None:
        if not message.payload:
            return
        status = decode(CameraStatus, message.payload)
        self.say("CAMERA", f"{params['camera_id']:<14} is {status.state.value} {status.reason}")

    def _show_warden_say(self, message: InboundMessage, params: dict[str, str]) -> None:
        warning = decode(VoiceWarning, message.payload)
        self.tally.warnings.append(warning.text)
        self.say("VOICE", f"speaker {params['speaker_id']}: 「{warning.text}」 x{warning.repeat}")

    def _show_warden_said(self, message: InboundMessage, params: dict[str, str]) -> None:
        receipt = decode(WarningReceipt, message.payload)
        self.say("VOICE", f"speaker {params['speaker_id']} {receipt.status.value} {receipt.warning_id[:12]}")

    def _show_deadletter(self, message: InboundMessage, params: dict[str, str]) -> None:
        self.tally.dead_letters += 1
        if self.tally.dead_letters <= 5 or self.tally.dead_letters % 50 == 0:
            reason = json.loads(message.payload).get("reason", "?")
            self.say("DEADLTR", f"#{self.tally.dead_letters} {params['stage']}: {reason}")

    def _show_incident_cmd(self, message: InboundMessage, params: dict[str, str]) -> None:
        body = json.loads(message.payload)
        self.say("RESPONDER", f"{body.get('by', '?')} -> {body.get('action')} {params['incident_id']}")
