#!/usr/bin/python3
"""A local RTSP camera on GStreamer's RTSP server, bound to 127.0.0.1 (run with Debian's /usr/bin/python3).

python3-gi lives in Debian's interpreter, not in the project venv, so this script imports nothing
from the project. Each mount serves an H.264 MP4 clip (looped seamlessly with a flushing seek at the
end of the file, paced in real time) or a live test pattern. Every client gets its own pipeline, so
K cameras on one mount are K independent streams.

    /usr/bin/python3 edge/tools/rtsp_server.py --port 8554 --mount /cam=clip.mp4 --testsrc /pattern
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

FILE_LAUNCH = (
    "( filesrc location={path} ! qtdemux ! h264parse name=parse config-interval=-1 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
TEST_LAUNCH = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def _loop_at_eos(_factory: object, media: object) -> None:
    """Drop the clip's EOS before it reaches the stream and seek back to the start instead."""
    element = media.get_element()  # type: ignore[attr-defined]
    parse = element.get_by_name("parse")
    pipeline = element.get_parent()
    if parse is None or pipeline is None:
        return

    def restart() -> bool:
        """Seek back to the start (runs in the GLib main loop, not the streaming thread)."""
        pipeline.seek(1.0, Gst.Format.TIME, Gst.SeekFlags.FLUSH, Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1)
        return False

    def probe(_pad: object, info: object) -> object:
        """Swallow EOS and schedule the restart."""
        event = info.get_event()  # type: ignore[attr-defined]
        if event is not None and event.type == Gst.EventType.EOS:
            GLib.idle_add(restart)
            return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK

    parse.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, probe)


def _quote(path: str) -> str:
    """A path as a gst-launch string literal."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_server(args: argparse.Namespace) -> GstRtspServer.RTSPServer:
    """An RTSP server on 127.0.0.1:port with one factory per mount."""
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for spec in args.mount:
        name, _, path = spec.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(FILE_LAUNCH.format(path=_quote(path)))
        factory.set_shared(False)
        if not args.no_loop:
            factory.connect("media-configure", _loop_at_eos)
        mounts.add_factory(name, factory)
    for name in args.testsrc:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(TEST_LAUNCH.format(width=args.width, height=args.height, fps=args.fps))
        factory.set_shared(True)
        mounts.add_factory(name, factory)
    return server


def main(argv: list[str]) -> int:
    """Parse arguments, serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", action="append", default=[], metavar="/NAME=FILE.mp4")
    parser.add_argument("--testsrc", action="append", default=[], metavar="/NAME")
    parser.add_argument("--no-loop", action="store_true", help="end the stream at the end of the clip")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=10)
    args = parser.parse_args(argv)
    if not args.mount and not args.testsrc:
        parser.error("give at least one --mount or --testsrc")
    Gst.init(None)
    server = build_server(args)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready rtsp://127.0.0.1:{args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
