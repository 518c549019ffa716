"""`qinghe demo`: run the whole pipeline locally with real servers and narrate it live."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` verb."""
    from qinghe.demo import DEFAULT_MODEL

    demo = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on this machine with real local servers",
        description="Starts a private Mosquitto and VictoriaMetrics on free loopback ports, the central "
        "services, an RTSP camera server playing generated scenes to an edge agent, a sensor simulator with a "
        "pollution episode and simulated responders; prints incidents, camera events, snapshots and voice "
        "warnings as they happen, then stops everything and removes its temporary files.",
    )
    demo.add_argument("--duration", type=float, default=120.0, help="seconds of sensor traffic (default 120)")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="where snapshots and WAVs are kept")
    demo.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX detector for the cameras")
    demo.add_argument("--no-cameras", action="store_true", help="sensor path only (no RTSP, no edge agent)")
    demo.add_argument("--clip-cache", type=Path, default=Path("var/demo-clips"), help="generated scene clips")
    demo.add_argument("--keep-temp", action="store_true", help="keep the temporary state directory")
    demo.set_defaults(handler=run)


def _log_to_file(path: Path) -> None:
    """Service logs go to a file so the terminal shows the narration; warnings still reach the terminal."""
    import logging

    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    for handler in root.handlers:
        handler.setLevel(max(level, logging.WARNING))
    file_handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    file_handler.setLevel(level)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)


def run(args: argparse.Namespace) -> int:
    """Handler for `qinghe demo`."""
    import shutil

    from qinghe.demo import Demo, DemoOptions

    if args.duration < 20:
        print("qinghe demo: --duration must be at least 20 seconds")
        return 2
    if args.out.exists():
        shutil.rmtree(args.out / "snapshots", ignore_errors=True)
        shutil.rmtree(args.out / "voice", ignore_errors=True)
    _log_to_file(args.out / "demo.log")
    options = DemoOptions(
        args.duration,
        args.out.resolve(),
        args.model.resolve(),
        not args.no_cameras,
        args.clip_cache.resolve(),
        args.keep_temp,
    )
    return Demo(options).run()
