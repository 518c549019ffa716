"""Building blocks for `qinghe demo`: a local RTSP camera serving a real clip, and the edge agent on it.

    edge = start_demo_edge(workdir, broker_url)          # vtest.avi over RTSP, agent in-process
    edge.agent.on_event(print)                           # live view
    ...
    edge.stop()

Without a model the camera runs the model-free `motion` detector with the built-in `object` analytic, so
events and snapshots appear on any machine; with `model=` (an ONNX YOLO export) the shared detector runs.
Pass `clip`, `zones` and `analytics` to show the enforcement analytics on their own scenes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from edge.rtsp_testing import LocalRtspServer, vtest_clip

log = logging.getLogger(__name__)

PLAZA = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]  # the walkway and the grass of vtest
KERB = [[0.72, 0.04], [1.0, 0.04], [1.0, 0.22], [0.72, 0.22]]  # where vtest's van and car are parked


def demo_zones(with_model: bool) -> list[dict[str, Any]]:
    """Zones for vtest: a plaza where people linger, and the kerb where the van and the car stand."""
    if not with_model:
        return [
            {
                "name": "plaza",
                "polygon": PLAZA,
                "objects": ["motion"],
                "inertia": 3,
                "loitering_s": 4,
                "dwell_milestones_s": [15],
            }
        ]
    return [
        {"name": "plaza", "polygon": PLAZA, "objects": ["person"], "loitering_s": 3, "dwell_milestones_s": [20]},
        {"name": "kerb", "polygon": KERB, "objects": ["car", "truck", "bus"], "trigger": "stationary"},
    ]


def demo_edge_config(
    *,
    broker_url: str,
    state_dir: Path,
    camera_url: str,
    model: Path | None = None,
    zones: Sequence[dict[str, Any]] | None = None,
    analytics: dict[str, Any] | None = None,
    edge_id: str = "demo-edge",
    camera_id: str = "cam-demo",
    speaker_id: str = "spk-demo",
) -> EdgeConfig:
    """An edge config with one road-warden camera on `camera_url` (validated like a config file)."""
    camera: dict[str, Any] = {
        "id": camera_id,
        "name": "Demo camera (opencv-doc vtest.avi over RTSP)",
        "kind": "road_warden",
        "speaker_id": speaker_id,
        "detect": {"url": camera_url},
        "detect_fps": 5,
        "detector": "shared" if model is not None else "motion",
        "tracking": {"min_hits": 3, "confirm_score": 0.3, "max_disappeared": 10} if model is None else {},
        "zones": list(zones) if zones is not None else demo_zones(model is not None),
        "analytics": analytics or {},
    }
    data: dict[str, Any] = {
        "edge_id": edge_id,
        "broker": {"url": broker_url, "reconnect_min_s": 0.2, "reconnect_max_s": 2.0},
        "state_dir": str(state_dir),
        "stats_interval_s": 5,
        "cameras": [camera],
    }
    if model is not None:
        data["detector"] = {"model": str(model)}
    return EdgeConfig.model_validate(data)


@dataclass
class DemoEdge:
    """The running demo camera and agent."""

    rtsp: LocalRtspServer
    agent: EdgeAgent
    config: EdgeConfig

    @property
    def snapshot_dir(self) -> Path:
        """Where the agent keeps event snapshots (JPEG files the user can open)."""
        return self.agent.state_dir / self.config.snapshots.dir

    def stop(self) -> None:
        """Stop the agent, then the camera."""
        self.agent.stop()
        self.rtsp.stop()


def start_demo_edge(
    workdir: Path,
    broker_url: str,
    *,
    model: Path | None = None,
    clip: Path | None = None,
    zones: Sequence[dict[str, Any]] | None = None,
    analytics: dict[str, Any] | None = None,
    config_dir: Path | None = None,
) -> DemoEdge:
    """Serve `clip` (default: vtest.avi at 640x360) on a local RTSP server and run the agent on it in-process."""
    workdir = Path(workdir)
    source = clip if clip is not None else vtest_clip(workdir / "clips")
    rtsp = LocalRtspServer(workdir / "rtsp", {"/cam": source})
    rtsp.start()
    try:
        config = demo_edge_config(
            broker_url=broker_url, state_dir=workdir / "edge", camera_url=rtsp.url("/cam"), model=model,
            zones=zones, analytics=analytics,
        )  # fmt: skip
        agent = EdgeAgent(config, config_dir or workdir)
        agent.start()
    except Exception:
        rtsp.stop()
        raise
    log.info("demo camera at %s; snapshots in %s", rtsp.url("/cam"), workdir / "edge" / config.snapshots.dir)
    return DemoEdge(rtsp, agent, config)
