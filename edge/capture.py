"""Frame capture adapters: OpenCV/FFmpeg readers (RTSP over TCP, ONVIF, files), one thread per camera.

A reader decodes its detect stream, counts frames into the camera's health, and hands each frame to
a callback (the camera's scheduler). When reading fails, the stream stalls or its frame rate
collapses, it reconnects with exponential backoff. Queues between threads are `LatestFrameQueue`s:
bounded, dropping the oldest item, counting what they drop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

# FFmpeg reads this when a capture opens: RTSP over TCP survives lossy links (no smeared UDP frames).
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")

import cv2
import numpy as np

from detectors.core import Frame
from edge.config_camera import StreamConfig
from edge.health import Backoff, CameraHealth
from qinghe.clock import Clock
from qinghe.contracts import CameraStatus
from qinghe.errors import RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")


class CaptureError(RetryableError):
    """A stream could not be opened or read (network, camera, file); the reader retries."""


class LatestFrameQueue(Generic[T]):
    """Bounded queue that keeps the newest items: a put on a full queue drops the oldest and counts it."""

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self.drops = 0

    def put(self, item: T) -> T | None:
        """Add `item`; returns the item dropped to make room, if any."""
        with self._lock:
            dropped = None
            if len(self._items) >= self._maxsize:
                dropped = self._items.popleft()
                self.drops += 1
            self._items.append(item)
            return dropped

    def get_nowait(self) -> T | None:
        """The oldest item, or None when empty."""
        with self._lock:
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class FrameSource(Protocol):
    """Something that yields decoded BGR frames until it fails."""

    description: str
    ended: bool  # a finite source (a clip without loop) reached its end: do not reconnect

    def open(self) -> None:
        """Connect or open; raise CaptureError on failure."""
        ...

    def grab(self) -> bool:
        """Advance to (and decode) the next frame; False when the stream ended or failed."""
        ...

    def retrieve(self) -> Frame | None:
        """The grabbed frame as BGR (the colour conversion is the costly part: skip it for unwanted frames)."""
        ...

    def close(self) -> None:
        """Release the stream."""
        ...


class OpenCvSource:
    """A stream or file read with OpenCV's FFmpeg backend, with open/read timeouts and file replay."""

    def __init__(
        self,
        uri: str,
        *,
        is_file: bool = False,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        loop: bool = False,
        realtime: bool = True,
        start_s: float = 0.0,
        description: str | None = None,
    ) -> None:
        self.uri = uri
        self.is_file = is_file
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        self.loop, self.realtime = loop, realtime
        self.start_s = start_s
        self.description = description or (uri if is_file else _redact(uri))
        self._cap: cv2.VideoCapture | None = None
        self.ended = False
        self._period = 0.0
        self._next_at = 0.0

    def open(self) -> None:
        """Open the capture; raises CaptureError if FFmpeg cannot."""
        if self.is_file and not Path(self.uri).is_file():
            raise CaptureError(f"file {self.uri} does not exist")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout_s * 1000),
            cv2.CAP_PROP_N_THREADS,
            1,  # one decode thread per camera: K cameras must not mean K x cores threads
        ]
        cap = cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"cannot open {self.description}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        if self.is_file and self.start_s > 0:
            cap.set(cv2.CAP_PROP_POS_MSEC, self.start_s * 1000)
        self._period = 1.0 / fps if self.is_file and self.realtime and 0 < fps <= 240 else 0.0
        self._next_at = time.monotonic()
        self._cap = cap

    def grab(self) -> bool:
        """Next frame; files loop (if asked) and are paced at their frame rate (if realtime)."""
        if self._cap is None:
            return False
        ok = self._cap.grab()
        if not ok and self.is_file and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok = self._cap.grab()
        if not ok:
            self.ended = self.is_file and not self.loop
            return False
        if self._period:
            self._pace()
        return True

    def retrieve(self) -> Frame | None:
        """The grabbed frame, converted to BGR."""
        if self._cap is None:
            return None
        ok, frame = self._cap.retrieve()
        return np.asarray(frame, np.uint8) if ok else None

    def read(self) -> Frame | None:
        """grab() then retrieve()."""
        return self.retrieve() if self.grab() else None

    def _pace(self) -> None:
        self._next_at += self._period
        delay = self._next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:
            self._next_at = time.monotonic()  # far behind: do not burst to catch up

    def close(self) -> None:
        """Release the capture."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _redact(uri: str) -> str:
    """rtsp://user:pass@host -> rtsp://user:***@host, for logs and status reasons."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return uri
    userinfo, _, hostpart = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"


def make_source(stream: StreamConfig, base_dir: str | Path | None, camera_id: str) -> FrameSource:
    """The FrameSource for a configured stream; ONVIF streams resolve their RTSP URI at each open."""
    if stream.path is not None:
        path = stream.file_path(base_dir)
        assert path is not None
        return OpenCvSource(str(path), is_file=True, loop=stream.loop, realtime=stream.realtime, start_s=stream.start_s)
    if stream.url is not None:
        return OpenCvSource(stream.url, open_timeout_s=stream.open_timeout_s, read_timeout_s=stream.read_timeout_s)
    assert stream.onvif is not None
    from edge.onvif import OnvifSource

    return OnvifSource(stream.onvif, stream.open_timeout_s, stream.read_timeout_s, camera_id)


FrameCallback = Callable[[Frame, float], None]
WantsCallback = Callable[[float], bool]
StatusCallback = Callable[[CameraStatus], None]


class CameraReader:
    """One camera's reader thread: open, read, report health, reconnect with backoff; never raises."""

    def __init__(
        self,
        camera_id: str,
        source: FrameSource,
        health: CameraHealth,
        clock: Clock,
        *,
        on_frame: FrameCallback,
        on_status: StatusCallback,
        backoff: Backoff,
        resize: tuple[int, int] | None = None,
        wants: WantsCallback | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.source, self.health, self.clock = source, health, clock
        self._on_frame, self._on_status, self._backoff = on_frame, on_status, backoff
        self._wants = wants  # asked per frame: is this one due? (frames not due are never converted)
        self._resize = resize
        self._health_lock = threading.Lock()
        self._stop = threading.Event()
        self._reconnect = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{camera_id}", daemon=True)
        self.frames = 0
        self.reconnects = 0

    def start(self) -> None:
        """Start reading in the background."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to stop and wait for it (a blocked read ends at its timeout)."""
        self._stop.set()
        self._thread.join(timeout_s)

    def poll_health(self) -> None:
        """Re-evaluate health now (called by the agent's housekeeping too, while reads block)."""
        with self._health_lock:
            verdict = self.health.tick(self.clock.now())
        if verdict.status is not None:
            log.info("camera %s is %s %s", self.camera_id, verdict.status.state.value, verdict.status.reason)
            self._on_status(verdict.status)
        if verdict.reconnect_reason is not None and not self._reconnect.is_set():
            log.warning("camera %s: %s; reconnecting", self.camera_id, verdict.reconnect_reason)
            self._reconnect.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except Exception:  # a reader must never die: log, back off, retry
                log.exception("camera %s reader failed", self.camera_id)
            self.source.close()
            if self._stop.is_set():
                break
            self.reconnects += 1
            self._stop.wait(self._backoff.next_delay())

    def _session(self) -> None:
        """One connection: open, then read until failure, stop or a watchdog reconnect."""
        with self._health_lock:
            self.health.on_reconnect(self.clock.now())
        self._reconnect.clear()
        try:
            self.source.open()
        except CaptureError as exc:
            self._error(str(exc))
            return
        self._reconnect.clear()  # a request raised while opening was about the previous connection
        started = self.clock.monotonic()
        while not self._stop.is_set() and not self._reconnect.is_set():
            if not self.source.grab():
                self._failed()
                return
            now = self.clock.now()
            with self._health_lock:
                self.health.on_frame(now)
            self.frames += 1
            if self.clock.monotonic() - started > 10.0:
                self._backoff.reset()  # a healthy stretch: next failure retries quickly
            if self._wants is None or self._wants(now):
                frame = self.source.retrieve()
                if frame is not None:
                    self._deliver(frame, now)
            self.poll_health()

    def _deliver(self, frame: Frame, now: float) -> None:
        if self._resize is not None and (frame.shape[1], frame.shape[0]) != self._resize:
            frame = np.asarray(cv2.resize(frame, self._resize, interpolation=cv2.INTER_AREA), np.uint8)
        self._on_frame(frame, now)

    def _failed(self) -> None:
        if self.source.ended:
            log.info("camera %s: end of %s", self.camera_id, self.source.description)
            self._error("end of clip")
            self._stop.set()
        else:
            self._error(f"read failed on {self.source.description}")

    def _error(self, reason: str) -> None:
        with self._health_lock:
            self.health.on_error(self.clock.now(), reason)
        self.poll_health()
