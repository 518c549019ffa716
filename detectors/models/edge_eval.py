"""`qinghe models eval --edge`: clips replayed through the real edge agent process and an MQTT broker.

One agent runs one camera per clip (file source, real time, no loop), with the clip's zones and
analytics; ObjectEvents are collected from the broker, deduplicated by event_id, and scored like the
in-process run. Clip time is aligned on each camera's first `online` status (watchdog `recover_s: 0`),
so delays carry the agent's start-up jitter (typically well under a second); frame-level figures are
not available this way (the detections stay inside the agent).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from detectors.models.demo import demo_camera
from detectors.models.evaluate import ClipResult, EventRow
from detectors.models.labels import ClipLabels, read_labels
from detectors.models.scoring import episodes_from, match_events
from qinghe.bus import InboundMessage, MqttBus
from qinghe.codec import decode
from qinghe.config import BrokerConfig
from qinghe.contracts import CameraState, CameraStatus, ObjectEvent
from qinghe.errors import QingheError

log = logging.getLogger(__name__)

SETTLE_S = 6.0  # after the longest clip: let the last events through the outbox


class EdgeEvalError(QingheError):
    """The agent could not be run or produced nothing."""


def edge_config(clips: list[tuple[str, Path, ClipLabels]], model: Path, state_dir: Path, broker_url: str,
                score: float) -> dict[str, Any]:  # fmt: skip
    """An edge config with one camera per clip."""
    cameras = []
    for camera_id, clip_dir, _labels in clips:
        camera = demo_camera(clip_dir.name, clip_dir)
        camera.update({"id": camera_id, "kind": "generic", "watchdog": {"recover_s": 0.0, "offline_after_s": 30.0}})
        cameras.append(camera)
    return {
        "edge_id": "eval", "broker": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        "state_dir": str(state_dir), "detector": {"model": str(model), "score_threshold": score},
        "stats_interval_s": 5, "cameras": cameras,
    }  # fmt: skip


class _Collector:
    """Events and first-online times per camera, from the broker."""

    def __init__(self, url: str) -> None:
        self.events: dict[str, ObjectEvent] = {}
        self.online: dict[str, float] = {}
        self._lock = threading.Lock()
        self.bus = MqttBus(BrokerConfig(url=url, reconnect_min_s=0.1, reconnect_max_s=0.5), f"eval-{os.getpid()}")
        self.bus.subscribe("qh/v1/camera/+/event", self._on_event)
        self.bus.subscribe("qh/v1/camera/+/status", self._on_status)

    def _on_event(self, message: InboundMessage) -> None:
        event = decode(ObjectEvent, message.payload)
        with self._lock:
            self.events.setdefault(event.event_id, event)  # a replayed event counts once

    def _on_status(self, message: InboundMessage) -> None:
        camera_id = message.topic.split("/")[-2]
        status = decode(CameraStatus, message.payload)
        if status.state is CameraState.ONLINE:
            with self._lock:
                self.online.setdefault(camera_id, float(status.since))


def _broker(args: argparse.Namespace, work: Path) -> tuple[str, Any]:
    if args.broker:
        return str(args.broker), None
    from qinghe.localservers import LocalMosquitto

    server = LocalMosquitto(work / "mosquitto")
    server.start()
    return str(server.url), server


def run_through_edge(clip_dirs: list[Path], args: argparse.Namespace) -> list[ClipResult]:
    """Replay every clip through one real agent process; returns per-clip results (no frame-level counts)."""
    if args.model is None:
        raise EdgeEvalError("--edge needs --model: the agent runs a real detector")
    clips = [(f"clip{i}", d, read_labels(d)) for i, d in enumerate(clip_dirs)]
    with tempfile.TemporaryDirectory(prefix="qinghe-eval-") as tmp:
        work = Path(tmp)
        url, server = _broker(args, work)
        try:
            return _run(clips, args, work, url)
        finally:
            if server is not None:
                server.stop()


def _run(clips: list[tuple[str, Path, ClipLabels]], args: argparse.Namespace, work: Path, url: str) -> list[ClipResult]:
    config_path = work / "edge.yaml"
    config = edge_config(clips, Path(args.model).resolve(), work / "state", url, args.score)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    collector = _Collector(url)
    collector.bus.start(5.0)
    log_path = work / "agent.log"
    try:
        with log_path.open("wb") as agent_log:
            agent = subprocess.Popen([sys.executable, "-m", "qinghe.cli", "edge", "--config", str(config_path)],
                                     stdout=agent_log, stderr=subprocess.STDOUT)  # fmt: skip
            try:
                _wait(agent, collector, clips, log_path)
            finally:
                agent.terminate()
                try:
                    agent.wait(15)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait(5)
    finally:
        collector.bus.stop()
    return [_score(camera_id, labels, collector) for camera_id, _d, labels in clips]


def _wait(agent: subprocess.Popen[bytes], collector: _Collector, clips: list[tuple[str, Path, ClipLabels]],
          log_path: Path) -> None:  # fmt: skip
    started = time.monotonic()
    while len(collector.online) < len(clips):
        if agent.poll() is not None or time.monotonic() - started > 60:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise EdgeEvalError(f"the edge agent did not bring every camera online:\n{tail}")
        time.sleep(0.1)
    longest = max(labels.duration_s for _, _, labels in clips)
    deadline = min(collector.online.values()) + longest + SETTLE_S
    while time.time() < deadline:
        if agent.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise EdgeEvalError(f"the edge agent exited early (rc {agent.returncode}):\n{tail}")
        time.sleep(0.2)


def _score(camera_id: str, labels: ClipLabels, collector: _Collector) -> ClipResult:
    t0 = collector.online.get(camera_id, 0.0)
    events = sorted((e for e in collector.events.values() if e.camera_id == camera_id), key=lambda e: (e.ts, e.seq))
    rows: list[EventRow] = [(float(e.ts) - t0, e.type.value, e.analytic, e.zone, e.episode_id or e.event_id, e.phase,
                             e.outcome, e.dwell_s, e.plate) for e in events]  # fmt: skip
    episodes = episodes_from(rows)
    matches, false = match_events(labels.clip, labels.events, episodes, labels.duration_s)
    return ClipResult(labels, {}, episodes, matches, false)
