"""The demo hooks: the scripted parking loop misses the on-site clock and escalates (fake clock)."""

from __future__ import annotations

from pathlib import Path

from alerting.config import AlertingConfig
from alerting.demo import demo_alerting, parking_warning
from qinghe.central_config import CameraRefConfig
from qinghe.contracts import AlertKind, Colour, SlaClockName
from tests.alerting.helpers import Harness, cmd


def test_demo_timeline_misses_on_site_and_escalates(tmp_path: Path) -> None:
    config = AlertingConfig.model_validate(demo_alerting(tmp_path / "voice"))
    cameras = {"cam-north-gate": CameraRefConfig(id="cam-north-gate", speaker_id="spk-north-gate")}
    h = Harness(tmp_path, config, cameras)
    sent = h.send(parking_warning("cam-north-gate", "spk-north-gate", grace_s=6))
    assert [t.adapter for t in sent.dispatch] == ["local_audio"]
    h.advance(3)
    h.command(h.only().id, cmd("ack", by="duty-1"))
    h.advance(3)  # grace over: violation, orange, clocks re-based
    assert h.only().incident.colour is Colour.ORANGE
    h.advance(11.5)
    assert AlertKind.SLA_BREACHED not in h.kinds()
    h.advance(0.5)  # 12 s on-site clock from the colour change
    breaches = [a for a in h.alerts() if a.kind is AlertKind.SLA_BREACHED]
    assert [a.clock for a in breaches] == [SlaClockName.ON_SITE]
    assert h.kinds()[-1] is AlertKind.ESCALATED
    assert h.only().incident.tier == 1
