"""The shared detector worker: one model for every camera, fed from per-camera latest-frame queues.

Each camera's queue holds one item (the newest due frame; an unconsumed older one is dropped and
counted, passing on its need for detection). The worker takes one item from every camera that has
one, runs the frames that need the model as one batch, then hands each item, with its detections,
to its camera's pipeline. So N cameras share one model and the batch grows with the load.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from detectors.core import Detections, Detector, EventDraft, FrameObservation
from edge.camera import CameraPipeline, WorkItem, merge_dropped
from edge.capture import LatestFrameQueue

log = logging.getLogger(__name__)

ResultHook = Callable[[CameraPipeline, WorkItem, FrameObservation, list[EventDraft]], None]


@dataclass(slots=True)
class CameraCounters:
    """Per-camera work counters (monotonic; stats compute rates from differences)."""

    analysed: int = 0  # due frames processed (inferred or held)
    inferred: int = 0  # frames that went through the model
    latency_s: float = 0.0  # last frame -> processed delay


@dataclass(slots=True)
class WorkerCounters:
    """Detector counters."""

    batches: int = 0
    inferred: int = 0
    inference_s: float = 0.0  # total model time
    per_camera: dict[str, CameraCounters] = field(default_factory=dict)


class DetectorWorker:
    """Batches frames across cameras through one Detector and drives the camera pipelines."""

    def __init__(
        self,
        detector: Detector | None,
        pipelines: Mapping[str, CameraPipeline],
        on_result: ResultHook,
        batch_size: int = 4,
        batch_wait_s: float = 0.005,
    ) -> None:
        self.detector = detector
        self.pipelines = dict(pipelines)
        self.queues: dict[str, LatestFrameQueue[WorkItem]] = {cid: LatestFrameQueue(1) for cid in self.pipelines}
        self._on_result = on_result
        self.batch_size = max(1, batch_size)
        self.batch_wait_s = batch_wait_s
        self._wake = threading.Condition()
        self._pending = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detector", daemon=True)
        self._rr = 0
        self.counters = WorkerCounters(per_camera={cid: CameraCounters() for cid in self.pipelines})

    def submit(self, item: WorkItem) -> None:
        """Queue a camera's newest due frame (called from reader threads)."""
        queue = self.queues[item.camera_id]
        with self._wake:
            dropped = queue.put(item)
            if dropped is not None:
                queue.get_nowait()
                queue.put(merge_dropped(item, dropped))
            else:
                self._pending += 1
            self._wake.notify()

    def drops(self, camera_id: str) -> int:
        """Frames of a camera dropped because the worker was busy."""
        return self.queues[camera_id].drops

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current batch."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            items = self._collect()
            if not items:
                continue
            try:
                self.run_once(items)
            except Exception:  # keep the worker alive; the frames are lost but the cameras go on
                log.exception("detector worker failed on a batch of %d frames", len(items))

    def _collect(self) -> list[WorkItem]:
        with self._wake:
            if self._pending == 0:
                self._wake.wait(0.5)
            if self._pending == 0:
                return []
        if self.batch_wait_s > 0 and self._pending < min(self.batch_size, len(self.queues)):
            time.sleep(self.batch_wait_s)  # let a few more cameras join the batch
        ids = list(self.queues)
        self._rr = (self._rr + 1) % len(ids)
        items: list[WorkItem] = []
        with self._wake:
            for cid in ids[self._rr :] + ids[: self._rr]:
                item = self.queues[cid].get_nowait()
                if item is not None:
                    items.append(item)
                    self._pending -= 1
        return items

    def run_once(self, items: list[WorkItem]) -> None:
        """Infer the items that need the shared model (in batches), then process every item."""
        needs = [i for i in items if i.detect and self.pipelines[i.camera_id].config.detector == "shared"]
        results: dict[int, Detections] = {}
        if needs and self.detector is not None:
            for start in range(0, len(needs), self.batch_size):
                chunk = needs[start : start + self.batch_size]
                began = time.perf_counter()
                dets = self.detector.detect([i.frame for i in chunk])
                self.counters.inference_s += time.perf_counter() - began
                self.counters.batches += 1
                self.counters.inferred += len(chunk)
                for item, d in zip(chunk, dets, strict=True):
                    results[id(item)] = d
        for item in items:
            pipeline = self.pipelines[item.camera_id]
            observation, drafts = pipeline.process(item, results.get(id(item)))
            counters = self.counters.per_camera[item.camera_id]
            counters.analysed += 1
            counters.inferred += int(id(item) in results)
            counters.latency_s = time.time() - item.ts
            self._on_result(pipeline, item, observation, drafts)
