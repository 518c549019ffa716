"""The whole agent against a real Mosquitto: events and snapshots, broker outage, SIGKILL and outbox replay."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from qinghe.codec import decode
from qinghe.contracts import CameraState, CameraStatus, EventType, ObjectEvent
from qinghe.localservers import LocalMosquitto
from tests.edge.agent_support import EventConsumer, agent_config
from tests.edge.clips import visitors, write_clip
from tests.support import Collector

pytestmark = pytest.mark.integration

SPOTS = [(100, 220), (300, 240), (480, 200), (220, 280)]


@pytest.fixture(scope="module")
def beat_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s at 10 fps: every 2.5 s a red square appears in the lot for 1.5 s (a start and an end each)."""
    return write_clip(tmp_path_factory.mktemp("clips") / "beat.avi", 200, {"red": visitors(25, 15, SPOTS)})


@pytest.fixture
def consumer(mosquitto: LocalMosquitto) -> Iterator[EventConsumer]:
    c = EventConsumer(mosquitto.url).start()
    yield c
    c.stop()


def test_events_snapshots_status_stats_and_availability(
    tmp_path: Path, mosquitto: LocalMosquitto, collector: Collector, square_model: Path, beat_clip: Path
) -> None:
    config = EdgeConfig.model_validate(agent_config(tmp_path / "state", mosquitto.url, square_model, beat_clip))
    agent = EdgeAgent(config, tmp_path)
    agent.start(wait_broker_s=10)
    try:
        collector.wait_for(lambda ms: sum(m.topic.endswith("/event") for m in ms) >= 4, 30)
        collector.wait_for(lambda ms: any("/stats" in m.topic for m in ms), 10)
    finally:
        agent.stop()
    events = [decode(ObjectEvent, m.payload) for m in collector.on("qh/v1/camera/cam-1/event")]
    starts = [e for e in events if e.type is EventType.START]
    assert starts
    assert starts[0].label == "red"
    assert starts[0].zone == "lot"
    assert starts[0].edge_id == "box-1"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.event_id for e in events}) == len(events)
    snapshot_topics = {m.topic for m in collector.on("qh/v1/camera/cam-1/snapshot/")}
    assert starts[0].snapshot in snapshot_topics
    assert starts[0].snapshots[0].role == "best"
    jpeg = next(m.payload for m in collector.messages if m.topic == starts[0].snapshot)
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert (tmp_path / "state" / "snapshots" / "cam-1" / f"{starts[0].event_id}.jpg").read_bytes() == jpeg
    status = decode(CameraStatus, collector.on("qh/v1/camera/cam-1/status")[0].payload)
    assert status.state is CameraState.ONLINE
    stats = json.loads(collector.on("qh/v1/edge/box-1/stats")[-1].payload)
    assert set(stats["cameras"]["cam-1"]) >= {"capture_fps", "detect_fps", "inference_fps", "queue_drops", "reconnects"}
    assert set(stats["box"]) >= {"outbox_depth", "cpu_percent", "rss_mb"}
    availability = [m.payload for m in collector.on("qh/v1/edge/box-1/availability")]
    assert availability[0] == b"online"
    assert availability[-1] == b"offline"


def test_broker_outage_loses_nothing_and_dedup_gives_exactly_once(
    tmp_path: Path, mosquitto: LocalMosquitto, consumer: EventConsumer, square_model: Path, beat_clip: Path
) -> None:
    config = EdgeConfig.model_validate(agent_config(tmp_path / "state", mosquitto.url, square_model, beat_clip))
    agent = EdgeAgent(config, tmp_path)
    committed: list[tuple[float, ObjectEvent]] = []
    agent.on_event(lambda e: committed.append((time.monotonic(), e)))
    agent.start(wait_broker_s=10)
    try:
        consumer.wait_for(lambda evs: len(evs) >= 2, 30, "first events")
        down = time.monotonic()
        mosquitto.stop()
        time.sleep(6)  # the camera keeps producing events while the broker is gone
        up = time.monotonic()
        assert agent.outbox.depth() > 0
        mosquitto.start()
        time.sleep(4)
    finally:
        agent.stop()
    during = [e for t, e in committed if down <= t <= up]
    assert len(during) >= 2, "events must have been produced during the outage"
    ids = [e.event_id for _, e in committed]
    consumer.wait_for(lambda evs: {e.event_id for e in evs} >= set(ids), 20, "every committed event")
    unique_ids = [e.event_id for e in consumer.unique]
    assert sorted(unique_ids) == sorted(ids)  # exactly once after dedup: nothing lost, nothing extra
    seqs = [e.seq for e in consumer.unique]
    assert seqs == sorted(seqs) == list(range(1, len(ids) + 1))  # replayed in order, no gaps
    assert len(consumer.received) >= len(ids)


def _write_config(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "qinghe.cli", "edge", "--config", str(config)], stdout=out, stderr=out, env=env
        )


def _outbox_events(db: Path) -> list[ObjectEvent]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT payload FROM outbox WHERE topic LIKE '%/event' ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the agent created the file but not the table yet
        rows = []
    finally:
        conn.close()
    return [decode(ObjectEvent, bytes(row[0])) for row in rows]


def test_sigkilled_agent_replays_its_outbox_after_restart(
    tmp_path: Path, mosquitto: LocalMosquitto, consumer: EventConsumer, square_model: Path, beat_clip: Path
) -> None:
    config = _write_config(tmp_path, agent_config(tmp_path / "state", mosquitto.url, square_model, beat_clip))
    db = tmp_path / "state" / "outbox.db"
    mosquitto.stop()  # nothing can be acknowledged: every event stays in the outbox
    agent = _start_agent(config, tmp_path / "agent.log")
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (not db.exists() or len(_outbox_events(db)) < 3):
            time.sleep(0.3)
        pending = _outbox_events(db)
        assert len(pending) >= 3, (tmp_path / "agent.log").read_text()[-2000:]
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
    pending = _outbox_events(db)  # what the killed agent had committed and nobody received
    mosquitto.start()
    again = _start_agent(config, tmp_path / "agent.log")
    try:
        wanted = {e.event_id for e in pending}
        consumer.wait_for(lambda evs: {e.event_id for e in evs} >= wanted, 40, "the killed agent's events")
        consumer.wait_for(lambda evs: max(e.seq for e in evs) > max(e.seq for e in pending), 30, "new events")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) == 0
    arrived = {e.event_id: e for e in consumer.unique}
    for event in pending:
        assert arrived[event.event_id].seq == event.seq
    seqs = [e.seq for e in consumer.unique]
    assert len(seqs) == len(set(seqs)), "a sequence number was reused after the restart"
    assert seqs[: len(pending)] == [e.seq for e in pending], "the outbox replays in order, first"
