"""The alerting service against a real Mosquitto: commands, rejections, dead letters, retained documents,
MQTT speaker acknowledgements and retries, camera status, runtime silences, archive, restart, outage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.service import AlertingService
from qinghe.central_config import CentralConfig
from qinghe.clock import FakeClock
from qinghe.codec import decode, encode
from qinghe.config import BrokerConfig
from qinghe.contracts import (
    ActionSpec,
    Alert,
    AlertKind,
    CameraState,
    CameraStatus,
    Colour,
    CommandRejected,
    DeadLetter,
    Incident,
    IncidentState,
    SlaClockName,
    VoiceWarning,
    WarningReceipt,
    WarningStatus,
)
from qinghe.localservers import LocalMosquitto
from tests.alerting.helpers import cmd, eventually, signal
from tests.support import Collector

pytestmark = pytest.mark.integration


class Rig:
    """A service on a fake clock, a collector, and a publisher on the same broker."""

    def __init__(self, tmp_path: Path, broker: BrokerConfig, collector: Collector, **kw: Any) -> None:
        self.tmp_path, self.broker, self.collector = tmp_path, broker, collector
        self.clock = FakeClock()
        self.alerting: dict[str, Any] = kw.get("alerting", {})
        self.cameras: list[dict[str, Any]] = kw.get("cameras", [])
        self.subscribe_signals: bool = kw.get("subscribe_signals", False)
        self.service = self.make()

    def make(self) -> AlertingService:
        config = CentralConfig.model_validate(
            {
                "broker": self.broker.model_dump(),
                "state_dir": str(self.tmp_path / "state"),
                "cameras": self.cameras,
                "alerting": {"tick_interval_s": 0.05, **self.alerting},
            }
        )
        service = AlertingService(config, self.tmp_path, self.clock, subscribe_signals=self.subscribe_signals)
        service.start()
        return service

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.collector.bus.publish_and_wait(f"qh/v1/{topic}", payload, retain=retain)

    def alerts(self) -> list[Alert]:
        return [decode(Alert, m.payload) for m in self.collector.on("qh/v1/alert/")]

    def wait_alert(self, kind: AlertKind, count: int = 1) -> list[Alert]:
        self.collector.wait_for(lambda _m: sum(a.kind is kind for a in self.alerts()) >= count)
        return [a for a in self.alerts() if a.kind is kind]

    def retained(self, incident_id: str) -> Incident:
        messages = self.collector.on(f"qh/v1/incident/{incident_id}")
        return decode(Incident, [m for m in messages if m.topic.endswith(incident_id)][-1].payload)


@pytest.fixture
def rig(
    tmp_path: Path, broker_config: BrokerConfig, collector: Collector, request: pytest.FixtureRequest
) -> Iterator[Rig]:
    params = getattr(request, "param", {})
    r = Rig(tmp_path, broker_config, collector, **params)
    yield r
    r.service.stop()


def test_commands_over_mqtt_rejections_and_dead_letters(rig: Rig) -> None:
    rig.service.handle_signal(signal())
    (opened,) = rig.wait_alert(AlertKind.OPENED)
    incident_id = opened.incident_id
    assert opened.incident.state is IncidentState.OPEN
    rig.publish(f"incident/{incident_id}/cmd", encode(cmd("ack", by="zhang")))
    (acked,) = rig.wait_alert(AlertKind.ACKNOWLEDGED)
    assert acked.incident.history[-1].by == "zhang"
    rig.publish(f"incident/{incident_id}/cmd", encode(cmd("close", by="zhang")))
    rig.collector.wait_for(lambda _m: bool(rig.collector.on(f"qh/v1/incident/{incident_id}/cmd/rejected")))
    rejected = decode(CommandRejected, rig.collector.on(f"qh/v1/incident/{incident_id}/cmd/rejected")[0].payload)
    assert "resolve it first" in rejected.reason
    rig.publish(f"incident/{incident_id}/cmd", b'{"action": "dance", "by": "x", "ts": 0}')
    rig.collector.wait_for(lambda _m: bool(rig.collector.on("qh/v1/deadletter/alerting")))
    letter = decode(DeadLetter, rig.collector.on("qh/v1/deadletter/alerting")[0].payload)
    assert "action" in letter.reason
    assert letter.topic == f"qh/v1/incident/{incident_id}/cmd"
    assert json.loads(letter.payload)["action"] == "dance"
    rig.collector.wait_for(lambda _m: rig.retained(incident_id).state is IncidentState.ACKNOWLEDGED)


@pytest.mark.parametrize("rig", [{"subscribe_signals": True}], indirect=True)
def test_signals_over_mqtt(rig: Rig) -> None:
    rig.publish("rules/signal/r1", encode(signal(key="k1")))
    rig.wait_alert(AlertKind.OPENED)
    rig.publish("rules/signal/r1", b"not json")
    rig.collector.wait_for(lambda _m: bool(rig.collector.on("qh/v1/deadletter/alerting")))


SPEAKER = {
    "cameras": [{"id": "cam1", "speaker_id": "spk1"}],
    "alerting": {"speakers": {"defaults": {"ack_timeout_s": 10, "retries": 1}}},
}


def _voice_signal() -> Any:
    action = ActionSpec("voice", "", "{plate}，此处禁止停车", {"expires_s": 300})
    return signal(
        key="p1", incident_type="illegal_parking", camera_id="cam1", actions=(action,), explain={"plate": "浙A·12345"}
    )


@pytest.mark.parametrize("rig", [SPEAKER], indirect=True)
def test_mqtt_speaker_acknowledgement_is_recorded(rig: Rig) -> None:
    rig.service.handle_signal(_voice_signal())
    rig.collector.wait_for(lambda _m: bool(rig.collector.on("qh/v1/warden/spk1/say")))
    say = decode(VoiceWarning, rig.collector.on("qh/v1/warden/spk1/say")[0].payload)
    assert say.text == "浙 A 一二三四五，此处禁止停车"
    rig.publish("warden/spk1/said", encode(WarningReceipt(say.warning_id, WarningStatus.PLAYED, rig.clock.now())))
    rig.collector.wait_for(lambda _m: rig.retained(say.incident_id).history[-1].action == "voice_played")


@pytest.mark.parametrize("rig", [SPEAKER], indirect=True)
def test_mqtt_speaker_without_ack_is_retried_then_failed(rig: Rig) -> None:
    rig.service.handle_signal(_voice_signal())
    rig.collector.wait_for(lambda _m: len(rig.collector.on("qh/v1/warden/spk1/say")) == 1)
    incident_id = decode(VoiceWarning, rig.collector.on("qh/v1/warden/spk1/say")[0].payload).incident_id
    rig.collector.wait_for(lambda _m: rig.retained(incident_id).history[-1].action == "voice_sent")
    rig.clock.advance(10)
    rig.collector.wait_for(lambda _m: len(rig.collector.on("qh/v1/warden/spk1/say")) == 2)
    rig.collector.wait_for(lambda _m: rig.retained(incident_id).history[-1].action == "voice_sent")
    rig.clock.advance(10)
    rig.collector.wait_for(lambda _m: rig.retained(incident_id).history[-1].action == "voice_failed")
    first, second = (decode(VoiceWarning, m.payload) for m in rig.collector.on("qh/v1/warden/spk1/say"))
    assert first.warning_id == second.warning_id  # the same warning: speakers deduplicate by its id


def test_offline_camera_status_and_runtime_silence_over_mqtt(rig: Rig) -> None:
    status = CameraStatus(CameraState.OFFLINE, rig.clock.now(), 0.0, "no frames")
    rig.publish("camera/cam7/status", encode(status), retain=True)
    time.sleep(0.3)
    rig.service.handle_signal(signal(key="d1", camera_id="cam7", incident_type="dumping"))
    silence = {"action": "add", "matchers": {"zone": "z5"}, "duration_s": 60, "reason": "drill", "by": "ops", "id": "d"}
    rig.publish("alerting/silence/cmd", json.dumps(silence))
    rig.collector.wait_for(lambda _m: bool(rig.collector.on("qh/v1/alerting/silences")))
    document = json.loads(rig.collector.on("qh/v1/alerting/silences")[-1].payload)
    assert [s["id"] for s in document["silences"]] == ["d"]
    rig.service.handle_signal(signal(key="z5", zone="z5"))
    rig.publish("alerting/silence/cmd", json.dumps({"action": "add", "matchers": {"zone": "z5"}}))
    rig.collector.wait_for(lambda _m: bool(rig.collector.on("qh/v1/deadletter/alerting")))
    assert "required" in decode(DeadLetter, rig.collector.on("qh/v1/deadletter/alerting")[0].payload).reason
    assert rig.alerts() == []
    online = CameraStatus(CameraState.ONLINE, rig.clock.now(), 10.0)
    rig.publish("camera/cam7/status", encode(online), retain=True)
    rig.clock.advance(2)
    (opened,) = rig.wait_alert(AlertKind.OPENED)
    assert opened.incident.type == "dumping"
    rig.clock.advance(60)
    rig.wait_alert(AlertKind.OPENED, 2)


@pytest.mark.parametrize("rig", [{"alerting": {"archive_after_s": 60}}], indirect=True)
def test_archive_clears_the_retained_incident(rig: Rig, mosquitto: LocalMosquitto) -> None:
    rig.service.handle_signal(signal())
    incident_id = rig.wait_alert(AlertKind.OPENED)[0].incident_id
    rig.service.command(incident_id, cmd("resolve"))
    rig.service.command(incident_id, cmd("close"))
    rig.clock.advance(61)
    rig.collector.wait_for(lambda _m: any(m.payload == b"" for m in rig.collector.on(f"qh/v1/incident/{incident_id}")))
    late = Collector(mosquitto.url, f"qh/v1/incident/{incident_id}", client_id="late-reader").start()
    time.sleep(0.3)
    assert late.messages == []  # nothing retained any more
    late.stop()


def test_restart_keeps_open_incidents(rig: Rig) -> None:
    rig.service.handle_signal(signal(key="k1"))
    incident_id = rig.wait_alert(AlertKind.OPENED)[0].incident_id
    rig.service.stop()
    rig.service = rig.make()
    rig.service.handle_signal(signal(key="k1"))  # same key: an update, not a new incident
    rig.clock.advance(60)
    (breach,) = rig.wait_alert(AlertKind.SLA_BREACHED)
    assert breach.incident_id == incident_id
    assert len(rig.wait_alert(AlertKind.OPENED)) == 1


def test_broker_outage_buffers_alerts_on_disk(rig: Rig, mosquitto: LocalMosquitto) -> None:
    mosquitto.stop()
    rig.service.handle_signal(signal(key="during-outage"))
    assert rig.service.store.outbox_depth() >= 2
    mosquitto.start()
    rig.collector.bus.wait_connected(10)
    rig.wait_alert(AlertKind.OPENED)
    eventually(lambda: rig.service.store.outbox_depth() == 0, what="outbox drained")


def test_simulated_responder_acks_and_misses_the_on_site_clock(rig: Rig) -> None:
    from alerting.responder import ResponderPlan, SimulatedResponder

    plan = ResponderPlan(ack_after_s=0.1, arrive_after_s=None, resolve_after_s=None, close_after_s=None)
    responder = SimulatedResponder(rig.broker, plan, name="duty-1").start()
    try:
        rig.service.handle_signal(signal(colour=Colour.RED))
        (acked,) = rig.wait_alert(AlertKind.ACKNOWLEDGED)
        assert acked.incident.history[-1].by == "duty-1"
        rig.clock.advance(300)  # nobody arrives: the on-site clock is missed on purpose
        (breach,) = rig.wait_alert(AlertKind.SLA_BREACHED)
        assert breach.clock is SlaClockName.ON_SITE
        (escalated,) = rig.wait_alert(AlertKind.ESCALATED)
        assert escalated.tier == 2  # red starts with the squad leader; the miss raises it to the duty chief
    finally:
        responder.stop()


def _offline_service(tmp_path: Path) -> AlertingService:
    """A service that is never started: enough for the in-process entry points and the store."""
    config = CentralConfig.model_validate({"broker": {"url": "mqtt://127.0.0.1:9"}, "state_dir": str(tmp_path / "s")})
    return AlertingService(config, tmp_path, FakeClock())


def test_unpublishable_signal_is_dead_lettered_without_changing_state(tmp_path: Path) -> None:
    service = _offline_service(tmp_path)
    service.handle_signal(signal(incident_type="smoke/fire"))
    assert service.core.state.records == {}
    assert service.core.state.seen == {}
    (entry,) = service.store.outbox_entries("/deadletter/")
    assert "cannot be used in a topic" in decode(DeadLetter, entry.payload).reason
    service.store.close()


def test_failed_commit_reloads_the_core_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from qinghe.errors import RetryableError

    service = _offline_service(tmp_path)
    service.handle_signal(signal(key="kept"))
    real_commit = service.store.commit

    def full_disk(*_args: object, **_kw: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(service.store, "commit", full_disk)
    with pytest.raises(RetryableError):
        service.handle_signal(signal(key="lost", zone="z2"))
    assert {r.incident.dedup_key for r in service.core.state.records.values()} == {"kept"}
    monkeypatch.setattr(service.store, "commit", real_commit)
    service.handle_signal(signal(key="lost", zone="z2", signal_id="again"))  # the rules engine retries: now it opens
    assert {r.incident.dedup_key for r in service.core.state.records.values()} == {"kept", "lost"}
    service.store.close()
