"""Crash and restart: the alerting service as a subprocess, killed with SIGKILL, against real Mosquitto.

After each restart every open incident is still open, its clocks count from their original start,
deadlines that passed while it was down fire at once, and nothing is published twice.
"""

from __future__ import annotations

import os
import signal as signals
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from qinghe.codec import decode, encode
from qinghe.contracts import Alert, AlertKind, Colour, Incident, IncidentState, SlaClockName
from qinghe.localservers import LocalMosquitto
from tests.alerting.helpers import signal
from tests.support import Collector

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
service_id: crashy
state_dir: {state}
broker:
  url: {url}
  reconnect_min_s: 0.1
  reconnect_max_s: 0.5
alerting:
  tick_interval_s: 0.05
  sla:
    colours:
      red: {{acknowledge: 3, on_site: 8, handled: 60}}
"""


def start_service(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "qinghe.cli", "alerting", "serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_online(collector: Collector, count: int) -> None:
    topic = "qh/v1/service/crashy-alerting/availability"
    collector.wait_for(lambda _m: sum(m.payload == b"online" for m in collector.on(topic)) >= count, timeout_s=30)


def alerts(collector: Collector) -> list[Alert]:
    return [decode(Alert, m.payload) for m in collector.on("qh/v1/alert/")]


def test_sigkill_and_restart(tmp_path: Path, mosquitto: LocalMosquitto, collector: Collector) -> None:
    config = tmp_path / "central.yaml"
    config.write_text(CONFIG.format(state=tmp_path / "state", url=mosquitto.url), encoding="utf-8")
    log = tmp_path / "service.log"
    proc = start_service(config, log)
    try:
        wait_online(collector, 1)
        collector.bus.publish_and_wait("qh/v1/rules/signal/fire", encode(signal(key="fire:z1", colour=Colour.RED)))
        collector.wait_for(lambda _m: any(a.kind is AlertKind.OPENED for a in alerts(collector)))
        opened = next(a for a in alerts(collector) if a.kind is AlertKind.OPENED)
        starts = {c.name: c.started_at for c in opened.incident.sla}

        proc.send_signal(signals.SIGKILL)  # crash right after opening
        proc.wait()
        # a signal published while the service is down waits in its persistent session
        collector.bus.publish_and_wait("qh/v1/rules/signal/smoke", encode(signal(key="smoke:z9", zone="z9")))
        time.sleep(max(0.0, opened.incident.opened_at + 3.5 - time.time()))  # the ack deadline passes while down

        restarted_at = time.time()
        proc = start_service(config, log)
        collector.wait_for(
            lambda _m: any(
                a.kind is AlertKind.SLA_BREACHED and a.incident_id == opened.incident_id for a in alerts(collector)
            ),
            timeout_s=30,
        )
        breach = next(a for a in alerts(collector) if a.kind is AlertKind.SLA_BREACHED)
        assert breach.clock is SlaClockName.ACKNOWLEDGE
        assert breach.ts - restarted_at < 10  # at once after the restart, not a fresh 3 s from restart
        assert {c.name: c.started_at for c in breach.incident.sla} == starts
        ack = next(c for c in breach.incident.sla if c.name is SlaClockName.ACKNOWLEDGE)
        assert ack.breached_at == pytest.approx(starts[SlaClockName.ACKNOWLEDGE] + 3, abs=0.002)
        collector.wait_for(lambda _m: sum(a.kind is AlertKind.OPENED for a in alerts(collector)) >= 2)  # queued signal

        proc.send_signal(signals.SIGKILL)  # crash again, mid-flight
        proc.wait()
        proc = start_service(config, log)
        wait_online(collector, 3)
        time.sleep(max(0.0, opened.incident.opened_at + 8.5 - time.time()))  # on-site deadline
        collector.wait_for(
            lambda _m: any(
                a.kind is AlertKind.SLA_BREACHED and a.clock is SlaClockName.ON_SITE for a in alerts(collector)
            ),
            timeout_s=30,
        )
        time.sleep(0.5)
    finally:
        proc.send_signal(signals.SIGTERM)
        proc.wait(timeout=15)

    logical: dict[tuple[str, AlertKind, SlaClockName | None], set[str]] = defaultdict(set)
    payloads: dict[str, set[bytes]] = defaultdict(set)
    for message in collector.on("qh/v1/alert/"):
        alert = decode(Alert, message.payload)
        payloads[alert.alert_id].add(message.payload)
        if alert.kind in (AlertKind.OPENED, AlertKind.SLA_BREACHED, AlertKind.ESCALATED):
            logical[(alert.incident_id, alert.kind, alert.clock)].add(alert.alert_id)
    assert all(len(p) == 1 for p in payloads.values()), "one alert id carried two different payloads"
    duplicated = {k: v for k, v in logical.items() if len(v) > 1}
    assert duplicated == {}, f"published twice: {duplicated}"
    fire_breaches = [k for k in logical if k[0] == opened.incident_id and k[1] is AlertKind.SLA_BREACHED]
    assert sorted(str(k[2]) for k in fire_breaches) == ["acknowledge", "on_site"]
    retained = [m for m in collector.on(f"qh/v1/incident/{opened.incident_id}") if m.topic.endswith(opened.incident_id)]
    assert decode(Incident, retained[-1].payload).state is IncidentState.OPEN  # still open after two crashes
