"""Demo hooks: short demo clocks, an alert printer, and a scripted alerting-only loop
(`qinghe alerting demo`): a parking warning is spoken to a WAV, a simulated responder acknowledges,
nobody arrives, so the on-site clock is missed and the incident escalates."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerting.responder import ResponderPlan, SimulatedResponder
from qinghe.bus import InboundMessage, MqttBus
from qinghe.codec import decode
from qinghe.config import BrokerConfig
from qinghe.contracts import ActionSpec, Alert, Colour, Evidence, RuleSignal, SignalStatus, VoiceWarning

log = logging.getLogger(__name__)

DEMO_CLOCKS: dict[str, Any] = {
    "types": {
        "illegal_parking": {"orange": {"acknowledge": "20s", "on_site": "12s", "handled": "2m"}},
        "smoke_fire": {"red": {"acknowledge": "15s", "on_site": "30s", "handled": "2m"}},
    }
}
"""`alerting.sla` overrides that make clocks run out within a demo (merge into the demo's config)."""


def demo_alerting(voice_dir: Path) -> dict[str, Any]:
    """An `alerting:` section for demos: short clocks, local-audio speakers writing to `voice_dir`."""
    return {
        "sla": DEMO_CLOCKS,
        "speakers": {"defaults": {"adapter": "local_audio"}, "local_audio_dir": str(voice_dir)},
        "tick_interval_s": 0.2,
    }


class AlertPrinter:
    """Prints one line per alert (and per speaker command) as it arrives on MQTT."""

    def __init__(self, broker: BrokerConfig, out: Callable[[str], None] = print) -> None:
        self.out = out
        self.bus = MqttBus(broker, "qinghe-demo-alert-printer", clean_start=True)
        self.bus.subscribe(f"{broker.topic_prefix}/v1/alert/#", self._alert)
        self.bus.subscribe(f"{broker.topic_prefix}/v1/warden/+/say", self._say)
        self.alerts: list[Alert] = []

    def start(self) -> AlertPrinter:
        """Connect."""
        self.bus.start(wait_s=10)
        time.sleep(0.2)  # let the subscriptions land
        return self

    def stop(self) -> None:
        """Disconnect."""
        self.bus.stop()

    def _alert(self, message: InboundMessage) -> None:
        alert = decode(Alert, message.payload)
        self.alerts.append(alert)
        last = alert.incident.history[-1]
        clock = f" [{alert.clock.value}]" if alert.clock else ""
        self.out(f"  ALERT {alert.kind.value:<14} {alert.colour.value:<6} {alert.incident_id} tier {alert.tier}{clock}"
                 f"  {last.by}: {last.note}")  # fmt: skip

    def _say(self, message: InboundMessage) -> None:
        warning = decode(VoiceWarning, message.payload)
        self.out(f"  SAY   {warning.speaker_id}: {warning.text}")


def parking_warning(camera_id: str, speaker_id: str, grace_s: float = 6.0) -> RuleSignal:
    """The signal the rules engine sends when the edge reports phase=warning for a parked car."""
    now = time.time()
    return RuleSignal(
        signal_id=f"demo-warning-{now:.3f}",
        rule_id="no-parking-demo",
        dedup_key=f"no-parking-demo:{camera_id}:1",
        incident_type="illegal_parking",
        status=SignalStatus.FIRING,
        colour=Colour.YELLOW,
        ts=now,
        message="车辆违停预警",
        zone="tianzhu-street",
        camera_id=camera_id,
        explain={"plate": "浙A·12345"},
        evidence=(Evidence(f"qh/v1/camera/{camera_id}/snapshot/demo-before", "before", now),),
        actions=(
            ActionSpec("voice", speaker_id, "{plate}，此处禁止停车，请立即驶离", {"repeat": 2, "plate": "浙A·12345"}),
            ActionSpec("grace", "", "", {"grace_s": grace_s, "violation_colour": "orange"}),
        ),
    )


def run_demo(service: Any, broker: BrokerConfig, out: Callable[[str], None] = print, seconds: float = 25.0) -> int:
    """Drive a started AlertingService through the parking loop with a responder that never arrives."""
    printer = AlertPrinter(broker, out).start()
    plan = ResponderPlan(ack_after_s=3.0, arrive_after_s=None, resolve_after_s=None, close_after_s=None)
    responder = SimulatedResponder(broker, plan, name="duty-1").start()
    try:
        out("1. the edge reports a car parked in a no-parking zone; the rule fires with voice + 6 s grace")
        service.handle_signal(parking_warning("cam-north-gate", "spk-north-gate"))
        out("2. the simulated responder acknowledges after 3 s; nobody goes on site (a clock will be missed)")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not any(a.kind.value == "escalated" for a in printer.alerts):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        responder.stop()
        printer.stop()
    escalated = any(a.kind.value == "escalated" for a in printer.alerts)
    out("3. escalated after the missed on-site clock" if escalated else "3. no escalation seen (check the log)")
    return 0 if escalated else 1
