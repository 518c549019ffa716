"""The edge agent service: wires capture, the shared detector, camera pipelines, events, health and stats.

Start order follows Telegraf's rule (sinks before sources): the bus and outbox first, then the
detector worker, then the camera readers; stop in reverse. The agent is usable in-process (tests,
demo, bench) or through `qinghe edge --config FILE`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from detectors.core import Analytic, Detector, EventDraft, Frame, FrameObservation
from edge.analytics_hook import build_camera_analytics, compile_zone_schedules
from edge.camera import CameraPipeline, ThermalReplay, WorkItem
from edge.capture import CameraReader, make_source
from edge.config import EdgeConfig
from edge.config_camera import CameraConfig
from edge.events import EventPublisher, FrameContext, SeqStore
from edge.health import Backoff, CameraHealth
from edge.snapshots import FrameRing, SnapshotStore
from edge.stats import BoxProbe, CameraSample, Sample, compute_stats
from edge.worker import DetectorWorker
from qinghe.bus import Availability, MqttBus
from qinghe.clock import Clock, SystemClock
from qinghe.codec import encode
from qinghe.contracts import CameraStatus, ObjectEvent
from qinghe.outbox import Outbox, OutboxEntry
from qinghe.topics import Topics

log = logging.getLogger(__name__)

EventHook = Callable[[ObjectEvent], None]
ProcessedHook = Callable[[WorkItem], None]
AnalyticsFactory = Callable[[CameraConfig], list[Analytic]]


@dataclass
class CameraRuntime:
    """Everything running for one camera."""

    config: CameraConfig
    pipeline: CameraPipeline
    reader: CameraReader
    events: int = 0
    status: CameraStatus | None = None


class EdgeAgent:
    """One edge box: cameras in, events, snapshots, statuses and stats out over MQTT via the outbox."""

    def __init__(
        self,
        config: EdgeConfig,
        base_dir: Path | str,
        *,
        clock: Clock | None = None,
        detector: Detector | None = None,
        analytics_factory: AnalyticsFactory | None = None,
    ) -> None:
        self.config = config
        self.base_dir = Path(base_dir)
        self.clock = clock or SystemClock()
        self.topics = Topics(config.broker.topic_prefix)
        self.state_dir = config.resolve(self.base_dir, config.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        availability = Availability(self.topics.build("edge_availability", edge_id=config.edge_id))
        self.bus = MqttBus(config.broker, f"qinghe-edge-{config.edge_id}", availability=availability)
        self.outbox = Outbox(self.state_dir / "outbox.db", self.bus)
        self.seq = SeqStore(self.state_dir / "edge.db")
        store = SnapshotStore(self.state_dir / config.snapshots.dir, int(config.snapshots.max_mb * 1024 * 1024))
        self.publisher = EventPublisher(
            config.edge_id, self.topics, self.outbox, seq=self.seq, store=store, snapshots=config.snapshots
        )
        self.detector = detector if detector is not None else self._open_detector()
        self._analytics_factory = analytics_factory
        self.cameras: dict[str, CameraRuntime] = {}
        for camera in config.cameras:
            if camera.enabled:
                self.cameras[camera.id] = self._camera_runtime(camera)
        batch = config.detector.batch_size if config.detector is not None else 4
        pipelines = {cid: rt.pipeline for cid, rt in self.cameras.items()}
        self.worker = DetectorWorker(self.detector, pipelines, self._on_result, batch, config.batch_wait_ms / 1000)
        self._event_hooks: list[EventHook] = []
        self._processed_hooks: list[ProcessedHook] = []
        self._stop = threading.Event()
        self._housekeeping = threading.Thread(target=self._housekeep, name="edge-housekeeping", daemon=True)
        self._box = BoxProbe()
        self._last_sample: Sample | None = None
        self.last_stats: dict[str, object] | None = None

    # ----- construction ----------------------------------------------------------------------------
    def _open_detector(self) -> Detector | None:
        if self.config.detector is None or not any(c.detector == "shared" and c.enabled for c in self.config.cameras):
            return None
        from detectors.yolo import create_detector

        return create_detector(self.config.detector, self.base_dir)

    def _camera_runtime(self, camera: CameraConfig) -> CameraRuntime:
        if self._analytics_factory is not None:
            analytics = self._analytics_factory(camera)
        else:
            analytics = build_camera_analytics(camera, self.config, self.base_dir)
        ring = FrameRing(self.config.snapshots.ring_interval_s, max(camera.before_s, 1.0) + 2.0)
        thermal = None
        if camera.thermal is not None:
            thermal = ThermalReplay(self.config.resolve(self.base_dir, camera.thermal.path), camera.thermal.loop)
        schedules = compile_zone_schedules(camera, self.base_dir)
        pipeline = CameraPipeline(
            camera, self.config.full_check_s(camera), analytics, ring=ring, schedules=schedules, thermal=thermal
        )
        health = CameraHealth(camera.watchdog, camera.min_capture_fps(), self.clock.now())
        reader = CameraReader(
            camera.id,
            make_source(camera.detect, self.base_dir, camera.id),
            health,
            self.clock,
            on_frame=functools.partial(self._on_frame, pipeline),
            wants=pipeline.wants,
            on_status=functools.partial(self._on_status, camera.id),
            backoff=Backoff(camera.watchdog.backoff_min_s, camera.watchdog.backoff_max_s),
            resize=camera.detect.resize,
        )
        log.info(
            "camera %s (%s): %d analytics: %s",
            camera.id,
            camera.kind.value,
            len(analytics),
            ", ".join(a.name for a in analytics) or "none",
        )
        return CameraRuntime(camera, pipeline, reader)

    # ----- lifecycle -------------------------------------------------------------------------------
    def on_event(self, hook: EventHook) -> None:
        """Call `hook(event)` for every event committed to the outbox (demo live view, bench latency)."""
        self._event_hooks.append(hook)

    def on_processed(self, hook: ProcessedHook) -> None:
        """Call `hook(item)` after every due frame was processed (benchmarks measure frame latency with it)."""
        self._processed_hooks.append(hook)

    def start(self, wait_broker_s: float | None = None) -> None:
        """Connect (in the background unless `wait_broker_s`), then start the worker and the cameras."""
        self.bus.start(wait_s=wait_broker_s)
        self.outbox.start()
        self.worker.start()
        for runtime in self.cameras.values():
            runtime.reader.start()
        self._housekeeping.start()
        log.info("edge %s running %d cameras", self.config.edge_id, len(self.cameras))

    def stop(self) -> None:
        """Stop cameras first, then the worker, then flush and close the outbox and the bus."""
        self._stop.set()
        for runtime in self.cameras.values():
            runtime.reader.stop()
        self.worker.stop()
        if self._housekeeping.is_alive():
            self._housekeeping.join(5)
        self.outbox.flush(2.0)
        self.outbox.stop()
        self.bus.stop()
        self.seq.close()

    def run_until(self, stop: threading.Event) -> None:
        """Block until `stop` is set (signal handlers set it), then stop cleanly."""
        stop.wait()
        self.stop()

    # ----- data path -------------------------------------------------------------------------------
    def _on_frame(self, pipeline: CameraPipeline, frame: Frame, ts: float) -> None:
        self.worker.submit(pipeline.admit(frame, ts))

    def _on_result(
        self, pipeline: CameraPipeline, item: WorkItem, observation: FrameObservation, drafts: list[EventDraft]
    ) -> None:
        del observation
        for processed in self._processed_hooks:
            processed(item)
        if not drafts:
            return
        zones = {z.name: z.polygon for z in pipeline.config.zones}
        context = FrameContext(item.frame, pipeline.ring, zones, pipeline.config.before_s)
        events = self.publisher.publish(pipeline.camera_id, drafts, item.ts, context)
        self.cameras[pipeline.camera_id].events += len(events)
        for event in events:
            for hook in self._event_hooks:
                try:
                    hook(event)
                except Exception:
                    log.exception("event hook failed")

    def _on_status(self, camera_id: str, status: CameraStatus) -> None:
        self.cameras[camera_id].status = status
        self.outbox.put(OutboxEntry(self.topics.camera_status(camera_id), encode(status), qos=1, retain=True))

    # ----- housekeeping ----------------------------------------------------------------------------
    def _housekeep(self) -> None:
        next_stats = self.clock.monotonic() + self.config.stats_interval_s
        while not self._stop.wait(0.5):
            for runtime in self.cameras.values():
                runtime.reader.poll_health()
            if self.clock.monotonic() >= next_stats:
                next_stats += self.config.stats_interval_s
                try:
                    self.publish_stats()
                except Exception:
                    log.exception("stats failed")

    def sample(self) -> Sample:
        """Snapshot every counter now."""
        cams = {}
        for cid, rt in self.cameras.items():
            counters = self.worker.counters.per_camera[cid]
            state = rt.status.state.value if rt.status is not None else "starting"
            cams[cid] = CameraSample(
                state,
                rt.reader.health.meter.fps(self.clock.now()),
                rt.reader.frames,
                counters.analysed,
                counters.inferred,
                self.worker.drops(cid),
                rt.reader.reconnects,
                rt.events,
                counters.latency_s,
            )
        cpu, rss, mem = self._box.read()
        w = self.worker.counters
        return Sample(self.clock.now(), cams, w.inferred, w.inference_s, w.batches, self.outbox.depth(), cpu, rss, mem)

    def publish_stats(self) -> dict[str, object]:
        """Publish `edge/{id}/stats` (QoS 0, not through the outbox: stale stats are worthless)."""
        current = self.sample()
        previous = self._last_sample or current
        self._last_sample = current
        stats = compute_stats(self.config.edge_id, previous, current)
        self.last_stats = stats
        import json

        self.bus.publish(self.topics.build("edge_stats", edge_id=self.config.edge_id), json.dumps(stats), qos=0)
        return stats

    def state_sizes(self) -> dict[str, dict[str, int]]:
        """Keyed state per camera (leak checks)."""
        return {cid: rt.pipeline.state_size() for cid, rt in self.cameras.items()}


def camera_ids(config: EdgeConfig) -> Sequence[str]:
    """Enabled camera ids of a config."""
    return [c.id for c in config.cameras if c.enabled]
