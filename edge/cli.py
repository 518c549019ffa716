"""Command-line verbs of the edge package: `qinghe edge --config FILE` and `qinghe onvif probe`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def run_edge(args: argparse.Namespace) -> int:
    """Handler for `qinghe edge`: load the config, run the agent until SIGINT/SIGTERM."""
    from edge.agent import EdgeAgent
    from edge.config import check_edge_file, load_edge_config
    from qinghe.errors import QingheError
    from qinghe.yamlload import ConfigError

    try:
        config = check_edge_file(args.config) if args.check else load_edge_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    if args.check:
        print(f"{args.config}: ok ({len(config.cameras)} cameras)")
        return 0
    base_dir = os.path.dirname(os.path.abspath(args.config))
    try:
        agent = EdgeAgent(config, base_dir)
    except QingheError as exc:
        print(f"qinghe edge: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    agent.start()
    agent.run_until(stop)
    return 0


def run_onvif_probe(args: argparse.Namespace) -> int:
    """Handler for `qinghe onvif probe`: unicast ONVIF query of one device; prints identity and stream URIs."""
    from pydantic import SecretStr

    from edge.config_camera import OnvifConfig
    from edge.onvif import OnvifError, probe_device

    password = os.environ.get(args.password_env, "") if args.password_env else ""
    config = OnvifConfig(host=args.host, port=args.port, username=args.user, password=SecretStr(password))
    try:
        device = probe_device(config)
    except OnvifError as exc:
        print(f"qinghe onvif probe: {exc}", file=sys.stderr)
        return 1
    print(f"{device.manufacturer} {device.model} firmware {device.firmware} serial {device.serial}")
    for profile in device.profiles:
        print(f"  profile {profile.token} ({profile.name}): {profile.uri}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `edge` and `onvif probe`."""
    edge = subparsers.add_parser(
        "edge",
        help="run the edge agent for the cameras in a config file",
        description="Capture the configured cameras, detect, track and analyse, and publish events, snapshots, "
        "camera status and stats over MQTT through a durable outbox. Stops cleanly on SIGINT/SIGTERM.",
    )
    edge.add_argument("--config", required=True, metavar="FILE", help="edge config (see config/edge.yaml)")
    edge.add_argument("--check", action="store_true", help="only validate the config and exit")
    edge.set_defaults(handler=run_edge)

    onvif = subparsers.add_parser("onvif", help="ONVIF tools (unicast only; no discovery multicast)")
    verbs = onvif.add_subparsers(dest="onvif_verb", metavar="VERB", required=True)
    probe = verbs.add_parser(
        "probe",
        help="ask one ONVIF device for its identity, profiles and RTSP stream URIs",
        description="Unicast SOAP calls to one address (GetCapabilities, GetDeviceInformation, GetProfiles, "
        "GetStreamUri). Nothing is broadcast or multicast.",
    )
    probe.add_argument("--host", required=True)
    probe.add_argument("--port", type=int, default=80)
    probe.add_argument("--user", default="")
    probe.add_argument(
        "--password-env",
        default="ONVIF_PASSWORD",
        metavar="VAR",
        help="environment variable holding the password (default ONVIF_PASSWORD)",
    )
    probe.set_defaults(handler=run_onvif_probe)
