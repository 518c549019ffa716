"""Capture against a real GStreamer RTSP server and a local ONVIF SOAP responder (loopback only)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from detectors.core import Frame
from edge.capture import CameraReader, OpenCvSource
from edge.cli import run_onvif_probe
from edge.config_camera import OnvifConfig, WatchdogConfig
from edge.health import Backoff, CameraHealth
from edge.onvif import OnvifError, OnvifSource, resolve_stream_uri
from edge.rtsp_testing import LocalRtspServer
from edge.tools.onvif_responder import FakeProfile, OnvifResponder
from qinghe.clock import SystemClock
from qinghe.contracts import CameraState, CameraStatus

pytestmark = pytest.mark.integration

OFFLINE_AFTER_S = 3.0


class Watched:
    """A CameraReader with a health poller, recording frames and published statuses."""

    def __init__(self, source: OpenCvSource | OnvifSource) -> None:
        self.frames = 0
        self.statuses: list[CameraStatus] = []
        self.lock = threading.Lock()
        settings = WatchdogConfig(
            offline_after_s=OFFLINE_AFTER_S, recover_s=1.0, fps_window_s=2.0, degraded_after_s=60,
            backoff_min_s=0.2, backoff_max_s=1.0,
        )  # fmt: skip
        clock = SystemClock()
        self.health = CameraHealth(settings, min_fps=1.0, started_at=clock.now())
        self.reader = CameraReader(
            "cam", source, self.health, clock, on_frame=self._frame, on_status=self._status, backoff=Backoff(0.2, 1.0)
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)

    def _frame(self, frame: Frame, ts: float) -> None:
        assert frame.shape == (360, 640, 3)
        with self.lock:
            self.frames += 1

    def _status(self, status: CameraStatus) -> None:
        with self.lock:
            self.statuses.append(status)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            self.reader.poll_health()

    def __enter__(self) -> Watched:
        self.reader.start()
        self._poller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self.reader.stop()

    def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return
            time.sleep(0.05)
        raise AssertionError(f"{what} not within {timeout_s} s; statuses {self.statuses}, frames {self.frames}")

    def last_state(self) -> CameraState | None:
        return self.statuses[-1].state if self.statuses else None


def test_rtsp_frames_offline_when_killed_and_back_after_restart(rtsp_camera: LocalRtspServer) -> None:
    with Watched(OpenCvSource(rtsp_camera.url("/cam"), open_timeout_s=5, read_timeout_s=2)) as cam:
        cam.wait(lambda: cam.frames >= 20 and cam.last_state() is CameraState.ONLINE, 30, "frames and online")
        rtsp_camera.kill()
        killed_at = time.time()
        cam.wait(lambda: cam.last_state() is CameraState.OFFLINE, OFFLINE_AFTER_S + 5, "offline")
        offline = cam.statuses[-1]
        assert offline.since - killed_at <= OFFLINE_AFTER_S + 1.0  # the configured time, plus one poll
        frames_before = cam.frames
        rtsp_camera.start()
        cam.wait(lambda: cam.last_state() is CameraState.ONLINE and cam.frames > frames_before + 10, 30, "back online")
        assert cam.reader.reconnects >= 1
        states = [s.state for s in cam.statuses]
        assert states == [CameraState.ONLINE, CameraState.OFFLINE, CameraState.ONLINE]


def test_rtsp_clip_loops_without_reconnecting(tmp_path: Path, vtest_mp4: Path) -> None:
    from edge.rtsp_testing import encode_clip

    short = encode_clip(vtest_mp4, tmp_path / "short.mp4", seconds=2)
    with LocalRtspServer(tmp_path / "rtsp", {"/short": short}) as server:
        assert isinstance(server, LocalRtspServer)
        with Watched(OpenCvSource(server.url("/short"), open_timeout_s=5, read_timeout_s=3)) as cam:
            cam.wait(lambda: cam.frames >= 60, 30, "60 frames of a 20-frame clip")
            assert cam.reader.reconnects == 0


@pytest.fixture
def onvif_device(rtsp_camera: LocalRtspServer) -> Iterator[OnvifResponder]:
    profiles = [
        FakeProfile("Profile_1", "mainStream", rtsp_camera.url("/main"), 1920, 1080, 25),
        FakeProfile("Profile_2", "subStream", rtsp_camera.url("/cam")),
    ]
    responder = OnvifResponder(profiles, username="admin", password="s3cr:t@").start()
    yield responder
    responder.stop()


def _guard_udp(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every datagram send, so a test can prove nothing was multicast or broadcast."""
    sent: list[object] = []
    real = socket.socket.sendto

    def sendto(self: socket.socket, *args: object) -> int:
        sent.append(args[-1])
        return real(self, *args)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(socket.socket, "sendto", sendto)
    return sent


def test_onvif_resolves_the_profile_uri_and_streams(
    onvif_device: OnvifResponder, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _guard_udp(monkeypatch)
    config = OnvifConfig(
        host="127.0.0.1", port=onvif_device.port, username="admin", password="s3cr:t@", profile="subStream"
    )
    uri = resolve_stream_uri(config)
    host_port = uri.split("@", 1)[1]
    assert uri.startswith("rtsp://admin:s3cr%3At%40@127.0.0.1:")
    assert host_port.endswith("/cam")
    assert {"GetCapabilities", "GetProfiles", "GetStreamUri"} <= set(onvif_device.operations)
    with Watched(OnvifSource(config, 5.0, 2.0, "cam")) as cam:
        cam.wait(lambda: cam.frames >= 5, 30, "frames through the ONVIF-resolved URI")
    assert sent == [], "no datagram (WS-Discovery multicast or otherwise) may be sent"


def test_onvif_wrong_password_and_unknown_profile(onvif_device: OnvifResponder) -> None:
    bad = OnvifConfig(host="127.0.0.1", port=onvif_device.port, username="admin", password="nope")
    with pytest.raises(OnvifError, match="not authorized"):
        resolve_stream_uri(bad)
    unknown = OnvifConfig(
        host="127.0.0.1",
        port=onvif_device.port,
        username="admin",
        password="s3cr:t@",
        profile="thirdStream",
    )
    with pytest.raises(OnvifError, match=r"no profile 'thirdStream'.*Profile_1 \(mainStream\)"):
        resolve_stream_uri(unknown)
    by_index = OnvifConfig(host="127.0.0.1", port=onvif_device.port, username="admin", password="s3cr:t@", profile=0)
    assert resolve_stream_uri(by_index).endswith("/main")
    assert "GetSystemDateAndTime" not in onvif_device.operations
    synced = OnvifConfig(
        host="127.0.0.1", port=onvif_device.port, username="admin", password="s3cr:t@", adjust_time=True
    )
    assert resolve_stream_uri(synced).endswith("/main")
    assert onvif_device.operations[-4:] == ["GetSystemDateAndTime", "GetCapabilities", "GetProfiles", "GetStreamUri"]


def test_onvif_unreachable_device_is_a_capture_error() -> None:
    from qinghe.localservers import free_port

    config = OnvifConfig(host="127.0.0.1", port=free_port(), timeout_s=2)
    with pytest.raises(OnvifError, match="unreachable"):
        resolve_stream_uri(config)


def test_onvif_probe_cli(
    onvif_device: OnvifResponder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    monkeypatch.setenv("CAM_PW", "s3cr:t@")
    args = argparse.Namespace(host="127.0.0.1", port=onvif_device.port, user="admin", password_env="CAM_PW")
    assert run_onvif_probe(args) == 0
    out = capsys.readouterr().out
    assert "Qinghe Test Optics QT-IPC-2MP" in out
    assert "Profile_2 (subStream): rtsp://127.0.0.1:" in out
    assert "GetDeviceInformation" in onvif_device.operations
