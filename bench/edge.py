"""Edge benchmark: K simultaneous 640x360 camera streams through the agent versus a naive loop per camera.

Both run the same yolo11n-size ONNX model at 320 in the same process and run, on the same clip (opencv-doc's
real CCTV vtest.avi, 10 fps, replayed in real time, each camera at a different offset):

- agent: the real EdgeAgent (capture threads, motion gating, scheduled full checks, one shared detector
  batching across cameras, tracking, zones, events through the outbox to a local Mosquitto);
- naive: one cv2.VideoCapture loop per camera running the model on every frame, one ONNX Runtime session
  per camera (one thread, no spinning: its cheapest setting; `--naive-defaults` for ORT's defaults), no
  gating, no batching.

For each system it finds the largest K that keeps every camera at its target (agent: 5 analysed frames/s;
naive: every frame of the 10 fps stream, i.e. keeping up in real time), and prints frames analysed per
second per CPU core, inferences per second, the share of frames skipped by gating, latency from frame to
processed and from frame to event, and the ratio of streams per core.

    .venv/bin/python bench/edge.py                   # defaults: ~2 minutes
    .venv/bin/python bench/edge.py --gating frame    # motion gating on the whole frame instead of near the zone
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.yolo_build import COCO_NAMES, export_ultralytics  # noqa: E402
from detectors.yolo_ops import letterbox, to_blob  # noqa: E402
from edge.agent import EdgeAgent  # noqa: E402
from edge.camera import WorkItem  # noqa: E402
from edge.config import EdgeConfig  # noqa: E402
from edge.rtsp_testing import VTEST_AVI, encode_clip, vtest_clip  # noqa: E402
from qinghe.bus import InboundMessage, MqttBus  # noqa: E402
from qinghe.codec import decode  # noqa: E402
from qinghe.config import BrokerConfig  # noqa: E402
from qinghe.contracts import ObjectEvent  # noqa: E402
from qinghe.localservers import LocalMosquitto  # noqa: E402

DETECT_FPS = 5.0
PASS = 0.95  # a camera passes at 95 % of its target rate (timer jitter on a loaded box)
# In vtest the white van and the car stand at the kerb, top right: the road-warden camera's no-parking zone.
KERB = [[0.72, 0.04], [1.0, 0.04], [1.0, 0.22], [0.72, 0.22]]
PLAZA = [[0.0, 0.25], [1.0, 0.25], [1.0, 1.0], [0.0, 1.0]]


@dataclass
class Result:
    """One run of K cameras."""

    k: int
    seconds: float
    per_camera_fps: list[float]
    inferences: int
    analysed: int
    cpu_s: float
    frame_latency_ms: list[float] = field(default_factory=list)
    event_latency_ms: list[float] = field(default_factory=list)
    drops: int = 0

    @property
    def min_fps(self) -> float:
        """The slowest camera's rate."""
        return min(self.per_camera_fps) if self.per_camera_fps else 0.0

    @property
    def cores(self) -> float:
        """CPU cores used on average."""
        return self.cpu_s / self.seconds

    def per_core(self) -> float:
        """Frames analysed per second per CPU core used."""
        return self.analysed / self.seconds / max(self.cores, 1e-6)


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile, None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


# ----- the agent ---------------------------------------------------------------------------------


def agent_config(
    k: int, *, model: Path, clip: Path, state: Path, broker: str, gating: str, duration: float
) -> dict[str, Any]:
    """Edge config for K road-warden cameras on the clip plus the motion probe camera."""
    cameras: list[dict[str, Any]] = []
    for i in range(k):
        zone = {"name": "kerb", "polygon": KERB, "objects": ["car", "truck", "bus"], "trigger": "stationary"}
        cameras.append(
            {
                "id": f"cam-{i:02d}",
                "kind": "road_warden",
                "speaker_id": f"spk-{i:02d}",
                "detect": {"path": str(clip), "loop": True, "realtime": True, "start_s": (i * 7.3) % duration},
                "detect_fps": DETECT_FPS,
                "motion": {"enabled": gating != "off", "zones_only": gating == "zones"},
                "zones": [zone],
            }
        )
    # A probe camera measures frame -> event latency under the same load: the built-in `object` analytic on
    # motion blobs (no model), so it has events even when the benchmarked model has random weights.
    cameras.append(
        {
            "id": "probe",
            "detect": {"path": str(clip), "loop": True, "realtime": True},
            "detect_fps": DETECT_FPS,
            "detector": "motion",
            "tracking": {"min_hits": 2, "confirm_score": 0.1, "high_score": 0.5},
            "zones": [{"name": "plaza", "polygon": PLAZA, "objects": ["motion"], "inertia": 1}],
        }
    )
    return {
        "edge_id": "bench",
        "broker": {"url": broker},
        "state_dir": str(state),
        "detector": {"model": str(model), "batch_size": 8, "threads": os.cpu_count() or 2},
        "stats_interval_s": 5,
        "cameras": cameras,
    }


class EventClock:
    """Subscribes to events and records frame -> arrival latency."""

    def __init__(self, url: str) -> None:
        self.latency_ms: list[float] = []
        self.bus = MqttBus(BrokerConfig(url=url), "bench-events", clean_start=True)
        self.bus.subscribe("qh/v1/camera/+/event", self._on_event)

    def _on_event(self, message: InboundMessage) -> None:
        event = decode(ObjectEvent, message.payload)
        self.latency_ms.append((time.time() - event.ts) * 1000)


def run_agent(k: int, args: argparse.Namespace, broker: LocalMosquitto, work: Path) -> Result:
    """Run the agent with K cameras: warm up, then measure counters, CPU and latencies."""
    state = Path(tempfile.mkdtemp(dir=work, prefix=f"agent-{k}-"))
    config = EdgeConfig.model_validate(
        agent_config(
            k,
            model=args.model,
            clip=args.clip,
            state=state,
            broker=broker.url,
            gating=args.gating,
            duration=args.clip_seconds,
        )
    )
    agent = EdgeAgent(config, work)
    frame_latency: list[float] = []
    measuring = threading.Event()

    def processed(item: WorkItem) -> None:
        """Frame capture -> processed latency of the benchmarked cameras."""
        if measuring.is_set() and item.camera_id != "probe":
            frame_latency.append((time.time() - item.ts) * 1000)

    agent.on_processed(processed)
    clock = EventClock(broker.url)
    clock.bus.start(wait_s=10)
    agent.start(wait_broker_s=10)
    try:
        time.sleep(args.warmup)
        before = _counters(agent)
        cpu0, t0 = _cpu(), time.monotonic()
        measuring.set()
        clock.latency_ms.clear()
        time.sleep(args.seconds)
        measuring.clear()
        cpu1, t1 = _cpu(), time.monotonic()
        after = _counters(agent)
    finally:
        agent.stop()
        clock.bus.stop()
    dt = t1 - t0
    cams = [c for c in after if c != "probe"]
    fps = [(after[c][0] - before[c][0]) / dt for c in cams]
    inferred = sum(after[c][1] - before[c][1] for c in cams)
    analysed = sum(after[c][0] - before[c][0] for c in cams)
    drops = sum(after[c][2] - before[c][2] for c in cams)
    return Result(k, dt, fps, inferred, analysed, cpu1 - cpu0, frame_latency, list(clock.latency_ms), drops)


def _counters(agent: EdgeAgent) -> dict[str, tuple[int, int, int]]:
    per = agent.worker.counters.per_camera
    return {cid: (c.analysed, c.inferred, agent.worker.drops(cid)) for cid, c in per.items()}


def _cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


# ----- the naive baseline ------------------------------------------------------------------------


@dataclass
class NaiveCounts:
    """What one naive camera loop did while measuring."""

    frames: int = 0
    latency_ms: list[float] = field(default_factory=list)


def naive_camera(
    session: Any,
    clip: Path,
    start_s: float,
    *,
    fps: float,
    stop: threading.Event,
    measuring: threading.Event,
    out: NaiveCounts,
) -> None:
    """Read every frame at the stream's pace, run the model on it, never skip: the obvious loop."""
    cap = cv2.VideoCapture(str(clip))
    cap.set(cv2.CAP_PROP_POS_MSEC, start_s * 1000)
    name = session.get_inputs()[0].name
    start, period, index = time.monotonic(), 1.0 / fps, 0
    while not stop.is_set():
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        delivered = start + index * period  # the camera delivers frame i at i / fps, never earlier
        index += 1
        wait = delivered - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        image, _ = letterbox(np.asarray(frame, np.uint8), (320, 320))
        session.run(None, {name: to_blob([image])})
        if measuring.is_set():
            out.frames += 1
            out.latency_ms.append((time.monotonic() - delivered) * 1000)
    cap.release()


def naive_options(ort: Any, defaults: bool) -> Any:
    """Session options of the naive loop: by default the kindest to it (one thread per camera session, no
    spinning: the least CPU per inference); `--naive-defaults` gives it ONNX Runtime's defaults instead."""
    options = ort.SessionOptions()
    if not defaults:
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def run_naive(k: int, args: argparse.Namespace) -> Result:
    """Run K naive camera loops: warm up, then measure frames, CPU and latency."""
    import onnxruntime as ort

    ort.disable_telemetry_events()
    stop, measuring = threading.Event(), threading.Event()
    outs = [NaiveCounts() for _ in range(k)]
    sessions = [
        ort.InferenceSession(
            str(args.model), naive_options(ort, args.naive_defaults), providers=["CPUExecutionProvider"]
        )
        for _ in range(k)
    ]
    threads = [
        threading.Thread(
            target=naive_camera,
            args=(sessions[i], args.clip, (i * 7.3) % args.clip_seconds),
            kwargs={"fps": args.stream_fps, "stop": stop, "measuring": measuring, "out": outs[i]},
            daemon=True,
        )
        for i in range(k)
    ]
    for t in threads:
        t.start()
    time.sleep(args.warmup)
    cpu0, t0 = _cpu(), time.monotonic()
    measuring.set()
    time.sleep(args.seconds)
    measuring.clear()
    cpu1, t1 = _cpu(), time.monotonic()
    stop.set()
    for t in threads:
        t.join(10)
    dt = t1 - t0
    fps = [o.frames / dt for o in outs]
    frames = sum(o.frames for o in outs)
    latency = [v for o in outs for v in o.latency_ms]
    return Result(k, dt, fps, frames, frames, cpu1 - cpu0, latency)


# ----- search and report -------------------------------------------------------------------------


def search(run: Callable[[int], Result], ladder: list[int], target: float, label: str) -> tuple[int, list[Result]]:
    """Run K up the ladder until a camera falls below `target`; returns the largest passing K and all runs."""
    best, results = 0, []
    for k in ladder:
        result = run(k)
        results.append(result)
        ok = result.min_fps >= target * PASS
        print(
            f"  {label} K={k:>2}: min camera {result.min_fps:5.2f} fps (target {target:g}), "
            f"{result.inferences / result.seconds:6.1f} inferences/s, CPU {result.cores:4.2f} cores "
            f"-> {'ok' if ok else 'too slow'}",
            flush=True,
        )
        if not ok:
            break
        best = k
    return best, results


def summary(results: list[Result], k: int) -> dict[str, Any]:
    """The figures of the run at K (or the last run)."""
    chosen = next((r for r in results if r.k == k), results[-1])
    analysed = chosen.analysed / chosen.seconds
    return {
        "k": k,
        "frames_analysed_per_s": round(analysed, 1),
        "frames_analysed_per_s_per_core": round(chosen.per_core(), 1),
        "inferences_per_s": round(chosen.inferences / chosen.seconds, 1),
        "gated_share": round(1 - chosen.inferences / chosen.analysed, 3) if chosen.analysed else None,
        "cpu_cores_used": round(chosen.cores, 2),
        "frame_latency_ms_p50": _round(pct(chosen.frame_latency_ms, 50)),
        "frame_latency_ms_p95": _round(pct(chosen.frame_latency_ms, 95)),
        "event_latency_ms_p50": _round(pct(chosen.event_latency_ms, 50)),
        "event_latency_ms_p95": _round(pct(chosen.event_latency_ms, 95)),
        "events": len(chosen.event_latency_ms),
        "queue_drops": chosen.drops,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def prepare(args: argparse.Namespace, work: Path) -> None:
    """Make the clip and the model if they are not given (cached under var/bench)."""
    cache = ROOT / "var" / "bench"
    if args.clip is None and args.stream_fps == 10:
        args.clip = vtest_clip(cache)
    elif args.clip is None:  # ffmpeg repeats frames: a camera set to a higher rate on the same scene
        target = cache / f"vtest-640x360-{args.stream_fps:g}fps.mp4"
        args.clip = encode_clip(VTEST_AVI, target, fps=round(args.stream_fps))
    cap = cv2.VideoCapture(str(args.clip))
    args.stream_fps = cap.get(cv2.CAP_PROP_FPS) or args.stream_fps
    args.clip_seconds = cap.get(cv2.CAP_PROP_FRAME_COUNT) / max(args.stream_fps, 1)
    cap.release()
    if args.model is None:
        args.model = cache / "yolo11n-320.onnx"
        if not args.model.is_file():
            print("building yolo11n.yaml (random weights) and exporting ONNX at 320 with ultralytics ...", flush=True)
            export_ultralytics(args.model, cfg="yolo11n.yaml", imgsz=320, dynamic=True, names=COCO_NAMES)
    del work


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run both searches, print the report."""
    parser = argparse.ArgumentParser(description="Edge agent vs naive per-camera loop, same model, same run.")
    parser.add_argument("--model", type=Path, help="ONNX model (default: yolo11n.yaml exported at 320)")
    parser.add_argument("--clip", type=Path, help="clip (default: vtest.avi as 640x360 H.264)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--gating", choices=["zones", "frame", "off"], default="zones",
                        help="motion gating near the kerb zone only (default), on the whole frame, or off")  # fmt: skip
    parser.add_argument("--stream-fps", type=float, default=10.0,
                        help="camera fps: 10 is vtest's own; 25 re-encodes it like a PAL sub-stream")  # fmt: skip
    parser.add_argument("--naive-defaults", action="store_true",
                        help="naive sessions with ONNX Runtime defaults instead of 1 thread")  # fmt: skip
    parser.add_argument("--agent-ks", default="2,4,6,8,10,12,16,20,24,32")
    parser.add_argument("--naive-ks", default="1,2,3,4,6,8")
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="qinghe-bench-edge-") as tmp:
        work = Path(tmp)
        prepare(args, work)
        cores = len(os.sched_getaffinity(0))
        print(f"model {args.model.name}, clip {args.clip.name} ({args.clip_seconds:.0f} s, 640x360, "
              f"{args.stream_fps:g} fps), {cores} cores, gating={args.gating}", flush=True)  # fmt: skip
        broker = LocalMosquitto(work / "mosquitto")
        broker.start()
        try:
            print("agent (5 detect fps per camera, shared batched detector):", flush=True)
            ks = [int(v) for v in args.agent_ks.split(",")]
            k_agent, agent_runs = search(lambda k: run_agent(k, args, broker, work), ks, DETECT_FPS, "agent")
        finally:
            broker.stop()
        print("naive (every frame, one session per camera):", flush=True)
        ks = [int(v) for v in args.naive_ks.split(",")]
        k_naive, naive_runs = search(lambda k: run_naive(k, args), ks, args.stream_fps, "naive")
        k_naive5 = max([r.k for r in naive_runs if r.min_fps >= DETECT_FPS * PASS], default=0)
    report(args, cores, agent_runs, naive_runs, k_agent=k_agent, k_naive=k_naive, k_naive5=k_naive5)
    return 0


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def report(args: argparse.Namespace, cores: int, agent_runs: list[Result], naive_runs: list[Result], *,
           k_agent: int, k_naive: int, k_naive5: int) -> None:  # fmt: skip
    """Print the figures, then one JSON line with all of them."""
    agent = summary(agent_runs, k_agent)
    naive = summary(naive_runs, k_naive)
    # CPU-normalised capacity: frames a core analyses per second / frames a stream needs per second. It does
    # not depend on how much of the box other processes take, so it is the figure to trust on a shared box.
    agent_spc = statistics.median([r.per_core() for r in agent_runs]) / DETECT_FPS if agent_runs else 0.0
    naive_spc = statistics.median([r.per_core() for r in naive_runs]) / args.stream_fps if naive_runs else 0.0
    figures = {
        "agent": agent,
        "naive": naive,
        "k_agent": k_agent,
        "k_naive": k_naive,
        "k_naive_5fps": k_naive5,
        "ratio_k": _ratio(k_agent, k_naive),
        "ratio_k_5fps": _ratio(k_agent, k_naive5),
        "agent_streams_per_core_cpu": round(agent_spc, 2),
        "naive_streams_per_core_cpu": round(naive_spc, 2),
        "ratio_cpu": _ratio(agent_spc, naive_spc),
        "cores": cores,
        "gating": args.gating,
        "stream_fps": args.stream_fps,
        "naive_sessions": "onnxruntime defaults" if args.naive_defaults else "1 thread, no spinning",
    }
    print()
    print(
        f"largest K keeping {DETECT_FPS:g} detect fps on every agent camera: {k_agent} ({k_agent / cores:.1f} per core)"
    )
    print(f"largest K the naive loop keeps up with (every frame at {args.stream_fps:g} fps): {k_naive} "
          f"({k_naive / cores:.1f} per core)")  # fmt: skip
    print(f"  (naive at >= {DETECT_FPS:g} inferences/s per camera, falling behind the stream: {k_naive5})")
    print(f"ratio of streams per core from K: {figures['ratio_k']} (vs naive at 5 fps: {figures['ratio_k_5fps']})")
    print(f"CPU-normalised streams per core: agent {agent_spc:.2f}, naive {naive_spc:.2f}, "
          f"ratio {figures['ratio_cpu']} (target >= 4)")  # fmt: skip
    for name, values in (("agent", agent), ("naive", naive)):
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
