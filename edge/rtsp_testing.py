"""A local RTSP camera for tests, benches and the demo, plus the clips it serves (made with ffmpeg).

`LocalRtspServer` runs `edge/tools/rtsp_server.py` under Debian's /usr/bin/python3 (where GStreamer's
Python bindings live) on a free loopback port, restartable on the same port like the other local
servers. `vtest_clip` turns opencv-doc's real CCTV clip into a 640x360 H.264 MP4.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from qinghe.errors import QingheError
from qinghe.localservers import LOOPBACK, LocalServer

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("tools") / "rtsp_server.py"
VTEST_AVI = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
TESTSRC = "testsrc"  # as a mount's source: a live GStreamer test pattern instead of a file


class LocalRtspServer(LocalServer):
    """GStreamer RTSP server on 127.0.0.1; `sources` maps mount ("/cam") to an MP4 path or TESTSRC."""

    name = "rtsp"

    def __init__(
        self, workdir: Path, sources: Mapping[str, str | Path], port: int | None = None, loop: bool = True
    ) -> None:
        super().__init__(workdir, port)
        if not sources:
            raise ValueError("give at least one mount")
        self.sources = {(m if m.startswith("/") else f"/{m}"): str(s) for m, s in sources.items()}
        self.loop = loop

    def url(self, mount: str = "/cam") -> str:
        """rtsp:// URL of a mount."""
        return f"rtsp://{LOOPBACK}:{self.port}{mount if mount.startswith('/') else '/' + mount}"

    def command(self) -> list[str]:
        """The server command line (Debian's python with python3-gi)."""
        if not Path(SYSTEM_PYTHON).is_file():
            raise QingheError(f"{SYSTEM_PYTHON} is missing: the RTSP server needs Debian's python3-gi")
        argv = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        for mount, source in self.sources.items():
            if source == TESTSRC:
                argv += ["--testsrc", mount]
            else:
                if not Path(source).is_file():
                    raise QingheError(f"clip {source} for {mount} does not exist")
                argv += ["--mount", f"{mount}={source}"]
        if not self.loop:
            argv.append("--no-loop")
        return argv


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise QingheError("ffmpeg is not installed (Debian package ffmpeg)")
    return path


def encode_clip(
    source: Path | str,
    dest: Path | str,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 10,
    seconds: float | None = None,
    crf: int = 26,
    lavfi: bool = False,
) -> Path:
    """Re-encode any video to an RTSP-friendly H.264 MP4 (baseline, no B-frames, 1 s GOP); cached by path."""
    out = Path(dest)
    if out.is_file() and out.stat().st_size > 0:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.mp4")
    argv = [_ffmpeg(), "-y", "-loglevel", "error", *(["-f", "lavfi"] if lavfi else []), "-i", str(source)]
    if seconds is not None:
        argv += ["-t", str(seconds)]
    argv += [
        "-vf",
        f"scale={width}:{height}",
        "-r",
        str(fps),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-profile:v",
        "baseline",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(fps),
        "-bf",
        "0",
        "-crf",
        str(crf),
        "-an",
        str(tmp),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise QingheError(f"ffmpeg failed to encode {source}: {proc.stderr[-500:]}")
    tmp.replace(out)
    return out


def vtest_clip(dest_dir: Path | str, seconds: float | None = None) -> Path:
    """opencv-doc's vtest.avi (real CCTV: parked cars, pedestrians) as a 640x360 10 fps MP4 in `dest_dir`."""
    if not VTEST_AVI.is_file():
        raise QingheError(f"{VTEST_AVI} is missing (Debian package opencv-doc)")
    suffix = f"-{seconds:g}s" if seconds is not None else ""
    return encode_clip(VTEST_AVI, Path(dest_dir) / f"vtest-640x360{suffix}.mp4", seconds=seconds)


def pattern_clip(dest: Path | str, seconds: float = 10.0, width: int = 640, height: int = 360, fps: int = 10) -> Path:
    """A generated test-pattern clip (ffmpeg lavfi testsrc)."""
    out = Path(dest)
    if out.is_file() and out.stat().st_size > 0:
        return out
    return encode_clip(
        f"testsrc=size={width}x{height}:rate={fps}",
        out,
        width=width,
        height=height,
        fps=fps,
        seconds=seconds,
        lavfi=True,
    )
