"""Contract: `qinghe edge --config FILE` as a camera box, seen from the broker.

The camera is a looping clip of a pure-red square that drives into a parking lot zone, stays, and
leaves; the detector is the project's offline-built colour-square ONNX graph (a real model that
finds exactly such squares), so the event boxes can be checked against where the square was drawn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from qinghe.localservers import LocalMosquitto
from tests.contract.support import Program, Seen, Wire, base_env, retained, rfc3339

pytestmark = pytest.mark.integration

EDGE, CAMERA, PARKING = "qa-box", "qa-cam", "qa-park"
SECRET = "edge-Pw-never-logged"
AVAILABILITY = f"qh/v1/edge/{EDGE}/availability"
STATUS = f"qh/v1/camera/{CAMERA}/status"
EVENTS = f"qh/v1/camera/{CAMERA}/event"
WIDTH, HEIGHT, FPS, SIDE = 640, 360, 10, 64
SPOT = (288, 224)  # top-left of the parked square, source pixels
SQUARE_BOX = (SPOT[0] / WIDTH, SPOT[1] / HEIGHT, (SPOT[0] + SIDE) / WIDTH, (SPOT[1] + SIDE) / HEIGHT)


def _write_clip(path: Path, parked: int = 20, empty_after: int = 10) -> Path:
    """At 10 fps: 5 empty frames, the square drives in over 5 frames, stays `parked` frames, then vanishes."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(10 + parked + empty_after):
        frame = np.full((HEIGHT, WIDTH, 3), 114, np.uint8)
        if 5 <= i < 10 + parked:
            x = SPOT[0] if i >= 10 else int(SPOT[0] * (i - 4) / 6)
            frame[SPOT[1] : SPOT[1] + SIDE, x : x + SIDE] = (0, 0, 255)
        writer.write(frame)
    writer.release()
    return path


def _edge_config(root: Path, model: Path, clip: Path, parking_clip: Path) -> Path:
    config = {
        "edge_id": EDGE,
        "broker": {"url": "mqtt://127.0.0.1:1", "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},  # QINGHE_BROKER wins
        "state_dir": str(root / "edge-state"),
        "detector": {"model": str(model)},
        "stats_interval_s": 1,
        "cameras": [
            {
                "id": CAMERA,
                "detect": {"path": str(clip), "loop": True, "realtime": True},
                "detect_fps": 5,
                "motion": {"enabled": False},  # every due frame is inferred: motion gating is not under test
                "tracking": {"min_hits": 2, "max_disappeared": 3, "stationary_max_disappeared": 3},
                "zones": [{"name": "lot", "polygon": [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]], "inertia": 2}],
            },
            {  # a road-warden camera: the square parks 11 s in a no-parking zone, then leaves
                "id": PARKING,
                "kind": "road_warden",
                "speaker_id": "spk-qa",
                "detect": {"path": str(parking_clip), "loop": True, "realtime": True},
                "detect_fps": 5,
                "motion": {"enabled": False},
                "tracking": {"min_hits": 2, "max_disappeared": 3, "stationary_max_disappeared": 3, "stationary_s": 1},
                "zones": [{"name": "kerb", "polygon": [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]], "inertia": 2}],
                "analytics": {
                    "labels": {"vehicle": ["red"]},
                    "illegal_parking": [
                        {
                            "zone": "kerb",
                            "stationary_s": 1,
                            "warn_after_s": 2,
                            "grace_s": 3,
                            "occlusion_s": 1,
                            "plates": False,
                        }
                    ],
                },
            },
            {  # a clip without `loop`: the camera ends, and says so
                "id": "qa-cam-once",
                "detect": {"path": str(clip), "loop": False, "realtime": True},
                "detector": "none",
                "watchdog": {"offline_after_s": 2},
            },
            {  # nothing listens there
                "id": "qa-cam-dead",
                "detect": {"url": "rtsp://127.0.0.1:9/none", "open_timeout_s": 1, "read_timeout_s": 1},
                "detector": "none",
                "watchdog": {"offline_after_s": 2, "backoff_max_s": 2},
            },
        ],
    }
    path = root / "edge.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@dataclass
class Box:
    """The running edge agent and a persistent-session observer on the broker."""

    program: Program
    wire: Wire
    broker: LocalMosquitto

    def events(self) -> list[dict[str, Any]]:
        """Camera events seen, deduplicated by event_id (QoS 1 is at least once), in arrival order."""
        seen: dict[str, dict[str, Any]] = {}
        for message in self.wire.on(EVENTS):
            body: dict[str, Any] = message.json()
            seen.setdefault(body["event_id"], body)
        return list(seen.values())

    def wait_events(self, count: int, timeout_s: float = 40, after: float = 0.0) -> list[dict[str, Any]]:
        """Wait until `count` distinct events first arrived after `after`; return those events."""

        def enough(w: Wire) -> list[dict[str, Any]] | None:
            first: dict[str, float] = {}
            for message in w.on(EVENTS):
                first.setdefault(message.json()["event_id"], message.at)
            events = [e for e in self.events() if first[e["event_id"]] >= after]
            return events if len(events) >= count else None

        result: list[dict[str, Any]] = self.wire.wait_for(enough, timeout_s, f"{count} camera events")
        return result


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, broker: LocalMosquitto) -> Iterator[Box]:
    """`qinghe edge --config edge.yaml` with QINGHE_BROKER pointing at the private broker."""
    from detectors.yolo_build import build_square_model  # builds the test model offline (setup, not under test)

    root = tmp_path_factory.mktemp("edge")
    model = build_square_model(root / "squares.onnx")
    clip, parking_clip = _write_clip(root / "square.avi"), _write_clip(root / "parked.avi", parked=110, empty_after=20)
    config = _edge_config(root, model, clip, parking_clip)
    wire = Wire(broker.port, "qh/v1/#", client_id="contract-edge-observer").start()
    host_port = broker.url.removeprefix("mqtt://")
    env = base_env(QINGHE_BROKER=f"mqtt://box-user:{SECRET}@{host_port}", YOLO_OFFLINE="1")
    program = Program(["edge", "--config", str(config)], env, root / "edge.log").start()
    box = Box(program, wire, broker)
    wire.wait_for(lambda w: any(m.payload == b"online" for m in w.on(AVAILABILITY)), 60, "edge online")
    yield box
    if program.alive():
        program.terminate()
    wire.stop()


def test_availability_is_retained_online_and_the_password_is_never_logged(box: Box) -> None:
    message = box.wire.on(AVAILABILITY)[-1]
    assert (message.payload, message.qos, message.retain) == (b"online", 1, True)
    assert retained(box.broker.port, AVAILABILITY) == {AVAILABILITY: b"online"}
    assert "box-user" in box.program.log(), "the broker URL is logged (redacted)"
    assert SECRET not in box.program.log()


def test_camera_status_is_retained_with_state_since_fps_reason(box: Box) -> None:
    statuses = box.wire.wait_for(lambda w: w.on(STATUS), 30, "camera status")
    assert all(m.qos == 1 and m.retain for m in statuses)
    body = statuses[-1].json()
    assert {"state", "since", "fps", "reason"} <= body.keys()
    assert body["state"] in ("online", "offline", "degraded")
    rfc3339(body["since"])
    assert isinstance(body["fps"], int | float)
    assert isinstance(body["reason"], str)
    assert STATUS in retained(box.broker.port, STATUS)


@pytest.mark.parametrize("camera", ["qa-cam-once", "qa-cam-dead"])
def test_a_camera_that_ends_or_cannot_connect_is_retained_offline_with_a_reason(box: Box, camera: str) -> None:
    topic = f"qh/v1/camera/{camera}/status"

    def offline(w: Wire) -> list[dict[str, Any]]:
        return [m.json() for m in w.on(topic) if m.json()["state"] == "offline"]

    found = box.wire.wait_for(offline, 40, f"{camera} offline")
    assert found[-1]["reason"], "an offline camera says why"
    assert json.loads(retained(box.broker.port, topic)[topic])["state"] == "offline"


def test_camera_events_carry_the_documented_fields_and_a_normalised_box(box: Box) -> None:
    events = box.wait_events(2)
    for message in box.wire.on(EVENTS):
        assert message.qos == 1
        assert not message.retain
    fields = {"event_id", "seq", "edge_id", "camera_id", "type", "analytic", "label", "zone", "track_id", "score",
              "box", "dwell_s", "ts"}  # fmt: skip
    for event in events:
        assert fields <= event.keys(), fields - event.keys()
        assert (event["edge_id"], event["camera_id"], event["zone"], event["label"]) == (EDGE, CAMERA, "lot", "red")
        assert event["type"] in ("start", "update", "end")
        assert isinstance(event["seq"], int)
        assert isinstance(event["track_id"], int)
        assert 0.0 <= event["score"] <= 1.0
        assert event["dwell_s"] >= 0
        assert abs(rfc3339(event["ts"]) - time.time()) < 120
        x1, y1, x2, y2 = event["box"]
        assert 0.0 <= x1 < x2 <= 1.0
        assert 0.0 <= y1 < y2 <= 1.0
    starts = [e for e in events if e["type"] == "start"]
    assert starts, [e["type"] for e in events]
    # The start fires once the square is parked: its box is where it was drawn, in fractions of the frame.
    assert np.allclose(starts[0]["box"], SQUARE_BOX, atol=0.04), (starts[0]["box"], SQUARE_BOX)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def test_illegal_parking_episode_dwelling_warning_violation_end_with_before_and_after_snapshots(box: Box) -> None:
    topic = f"qh/v1/camera/{PARKING}/event"

    def episode(w: Wire) -> list[dict[str, Any]] | None:
        events = [m.json() for m in w.on(topic)]
        ended = [e for e in events if e["type"] == "end"]
        if not ended:
            return None
        return [e for e in events if e["episode_id"] == ended[0]["episode_id"]]

    events = box.wire.wait_for(episode, 60, "a whole illegal_parking episode")
    steps = [(e["type"], e.get("phase")) for e in events]
    assert steps[:3] == [("start", "dwelling"), ("update", "warning"), ("update", "violation")], steps
    assert events[-1]["type"] == "end"
    assert events[-1]["outcome"] == "left"
    assert all(e["analytic"] == "illegal_parking" and e["camera_id"] == PARKING for e in events)
    for event in events:
        assert np.allclose(event["box"], SQUARE_BOX, atol=0.04), (event["type"], event["box"])
    roles = {e.get("phase"): [s["role"] for s in e["snapshots"]] for e in events[:3]}
    assert "before" in roles["warning"]
    assert "after" in roles["violation"]
    for event in events[1:3]:
        for ref in event["snapshots"]:

            def published(w: Wire, snapshot: str = ref["topic"]) -> list[Seen]:
                return w.on(snapshot)

            jpeg = box.wire.wait_for(published, 15, f"snapshot {ref['topic']}")
            assert jpeg[0].payload[:3] == b"\xff\xd8\xff"
            assert ref["topic"].startswith(f"qh/v1/camera/{PARKING}/snapshot/{event['event_id']}")


def test_an_events_snapshot_is_a_jpeg_on_its_topic(box: Box) -> None:
    start = next(e for e in box.wait_events(1) if e.get("snapshot"))
    topic = f"qh/v1/camera/{CAMERA}/snapshot/{start['event_id']}"
    assert start["snapshot"] == topic
    found = box.wire.wait_for(lambda w: w.on(topic), 15, "the snapshot")
    assert found[0].payload[:3] == b"\xff\xd8\xff"
    assert found[0].qos == 1
    decoded = cv2.imdecode(np.frombuffer(found[0].payload, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape[1] > 0


def test_edge_stats_are_qos0_with_camera_fps_inference_drops_and_outbox_depth(box: Box) -> None:
    stats = box.wire.wait_for(lambda w: w.on(f"qh/v1/edge/{EDGE}/stats"), 15, "edge stats")
    assert all(m.qos == 0 and not m.retain for m in stats)
    body = stats[-1].json()
    camera = body["cameras"][CAMERA]
    text = json.dumps(body)
    assert "fps" in json.dumps(camera)
    assert "inference_ms" in text
    assert "queue_drops" in camera
    assert "outbox_depth" in text


def test_events_produced_during_a_broker_outage_arrive_after_it(box: Box) -> None:
    box.wait_events(1)
    last_seq = max(e["seq"] for e in box.events())
    box.broker.stop()
    time.sleep(6)  # the agent keeps seeing the square come and go
    box.broker.start()

    def later(_w: Wire) -> list[int] | None:
        seqs = sorted(e["seq"] for e in box.events() if e["seq"] > last_seq)
        return seqs if len(seqs) >= 3 else None

    seqs = box.wire.wait_for(later, 40, "events after the outage")
    assert seqs == list(range(last_seq + 1, seqs[-1] + 1)), f"sequence numbers missing after the outage: {seqs}"


def test_sigkill_publishes_the_last_will_and_seq_survives_a_restart(box: Box) -> None:
    last_seq = max(e["seq"] for e in box.wait_events(1))
    killed = time.time()
    box.program.kill()
    box.wire.wait_for(
        lambda w: any(m.payload == b"offline" and m.at >= killed for m in w.on(AVAILABILITY)), 60, "last will"
    )
    assert retained(box.broker.port, AVAILABILITY) == {AVAILABILITY: b"offline"}
    started = time.time()
    box.program.start()
    box.wire.wait_for(lambda w: any(m.payload == b"online" and m.at >= started for m in w.on(AVAILABILITY)), 60, "up")
    fresh = box.wait_events(2, after=started)
    assert max(e["seq"] for e in fresh) > last_seq
    seqs = [e["seq"] for e in box.events()]
    assert len(seqs) == len(set(seqs)), "a sequence number was reused after the restart"


def test_sigterm_stops_cleanly_and_says_offline(box: Box) -> None:
    stopped = time.time()
    assert box.program.terminate() == 0, box.program.log()[-2000:]
    box.wire.wait_for(
        lambda w: any(m.payload == b"offline" and m.at >= stopped for m in w.on(AVAILABILITY)), 15, "offline"
    )
    assert retained(box.broker.port, AVAILABILITY) == {AVAILABILITY: b"offline"}
