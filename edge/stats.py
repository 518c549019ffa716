"""`edge/{id}/stats`: per-camera capture/detect/inference rates and drops, box outbox depth, CPU, memory.

`Sample` is a snapshot of monotonic counters; `compute_stats(prev, cur)` turns two samples into rates
(pure). `sample_box()` reads the process's CPU and memory with psutil (the adapter part).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psutil

from qinghe.timefmt import to_rfc3339


@dataclass(frozen=True, slots=True)
class CameraSample:
    """Counters of one camera at one instant."""

    state: str
    capture_fps: float
    frames: int
    analysed: int
    inferred: int
    drops: int
    reconnects: int
    events: int
    latency_s: float


@dataclass(frozen=True, slots=True)
class Sample:
    """Counters of the whole agent at one instant."""

    ts: float
    cameras: dict[str, CameraSample]
    inferred: int
    inference_s: float
    batches: int
    outbox_depth: int
    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    memory_percent: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _rate(cur: float, prev: float, dt: float) -> float:
    return round((cur - prev) / dt, 2) if dt > 0 else 0.0


def compute_stats(edge_id: str, prev: Sample, cur: Sample) -> dict[str, Any]:
    """The stats payload for the interval between two samples."""
    dt = cur.ts - prev.ts
    cameras: dict[str, Any] = {}
    for cid, cam in cur.cameras.items():
        before = prev.cameras.get(cid, cam)
        analysed = cam.analysed - before.analysed
        inferred = cam.inferred - before.inferred
        cameras[cid] = {
            "state": cam.state,
            "capture_fps": round(cam.capture_fps, 2),
            "detect_fps": _rate(cam.analysed, before.analysed, dt),
            "inference_fps": _rate(cam.inferred, before.inferred, dt),
            "gated_share": round(1 - inferred / analysed, 3) if analysed > 0 else None,
            "queue_drops": cam.drops,
            "reconnects": cam.reconnects,
            "events": cam.events,
            "latency_ms": round(cam.latency_s * 1000, 1),
        }
    inferred = cur.inferred - prev.inferred
    batches = cur.batches - prev.batches
    return {
        "v": 1,
        "edge_id": edge_id,
        "ts": to_rfc3339(cur.ts),
        "interval_s": round(dt, 3),
        "cameras": cameras,
        "detector": {
            "inferences_per_s": _rate(cur.inferred, prev.inferred, dt),
            "inference_ms": round((cur.inference_s - prev.inference_s) / inferred * 1000, 2) if inferred else None,
            "avg_batch": round(inferred / batches, 2) if batches else None,
        },
        "box": {
            "outbox_depth": cur.outbox_depth,
            "cpu_percent": round(cur.cpu_percent, 1),
            "rss_mb": round(cur.rss_mb, 1),
            "memory_percent": round(cur.memory_percent, 1),
            **cur.extra,
        },
    }


class BoxProbe:
    """CPU and memory of this process (CPU percent of one core, over the time since the last call)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the first call always returns 0

    def read(self) -> tuple[float, float, float]:
        """(cpu_percent, rss_mb, system memory percent)."""
        cpu = self._process.cpu_percent(None)
        rss = self._process.memory_info().rss / (1024 * 1024)
        return cpu, rss, psutil.virtual_memory().percent
