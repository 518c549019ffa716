"""Command-line verbs of the ingest package: `qinghe simulate sensors`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `simulate` verb group."""
    simulate = subparsers.add_parser("simulate", help="publish simulated traffic")
    verbs = simulate.add_subparsers(dest="simulate_verb", metavar="VERB", required=True)
    sensors = verbs.add_parser(
        "sensors",
        help='publish realistic sensor readings (and invalid ones); print {"valid": n, "invalid": m}',
        description="Publish R messages/s in all for S seconds from N sensors at QoS 1: diurnal air and noise "
        "curves, rain showers and the water level that follows them, optional pollution episodes, and a "
        "fraction F of malformed or invalid messages covering every rejection class. When done, prints one "
        'JSON line {"valid": n, "invalid": m} with the exact counts acknowledged by the broker. Sensors come '
        "from --config's registry; beyond it, synthetic sim-<kind>-<n> sensors, which ingest knows once "
        "--write-registry's file is listed in ingest.registry_files.",
    )
    sensors.add_argument("--sensors", type=int, required=True, metavar="N", help="number of sensors")
    sensors.add_argument("--rate", type=float, metavar="R", help="messages per second in all (required to publish)")
    sensors.add_argument("--duration", type=float, metavar="S", help="seconds to publish for (required to publish)")
    sensors.add_argument("--bad-fraction", type=float, default=0.0, metavar="F", help="fraction of invalid messages")
    sensors.add_argument("--broker", metavar="URL", help="broker URL (default: --config's, $QINGHE_BROKER, or local)")
    sensors.add_argument("--config", metavar="FILE", help="central config: sensor registry, broker, topic prefix")
    sensors.add_argument(
        "--episode", action="append", default=[], metavar="pollution:ZONE:START:DURATION", help="pollution episode"
    )
    sensors.add_argument("--seed", type=int, default=1, help="random seed (same seed, same values)")
    sensors.add_argument("--time-scale", type=float, default=1.0, help="model time runs this much faster (diurnal)")
    sensors.add_argument("--processes", type=int, help="publisher processes (default: one per 8,000 msg/s)")
    sensors.add_argument("--write-registry", metavar="FILE", help="write the synthetic sensors' registry and exit")
    sensors.set_defaults(handler=run_simulate_sensors)


def run_simulate_sensors(args: argparse.Namespace) -> int:
    """Handler for `qinghe simulate sensors`."""
    problem = _usage_problem(args)
    if problem:
        print(f"qinghe simulate sensors: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from qinghe.yamlload import ConfigError

    try:
        plan, synthetic = _build_plan(args)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_FAILED
    except ValueError as exc:
        print(f"qinghe simulate sensors: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.write_registry:
        from ingest.simulate import registry_yaml

        Path(args.write_registry).write_text(registry_yaml(synthetic), encoding="utf-8")
        print(f"wrote {len(synthetic)} synthetic sensors to {args.write_registry}", file=sys.stderr)
        return EXIT_OK
    from ingest.simulate import run_simulation
    from qinghe.errors import RetryableError

    try:
        counts = run_simulation(plan)
    except RetryableError as exc:
        print(f"qinghe simulate sensors: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"valid": counts.valid, "invalid": counts.invalid}), flush=True)
    if counts.unacknowledged:
        print(f"{counts.unacknowledged} messages were never acknowledged by the broker", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.sensors < 1:
        return "--sensors must be at least 1"
    if args.write_registry:
        return None
    if args.rate is None or args.duration is None:
        return "--rate and --duration are required (except with --write-registry)"
    if not args.rate > 0:
        return "--rate must be positive"
    if not args.duration >= 0:
        return "--duration must be >= 0"
    if not 0.0 <= args.bad_fraction <= 1.0:
        return "--bad-fraction must be between 0 and 1"
    if args.processes is not None and args.processes < 1:
        return "--processes must be at least 1"
    if not args.time_scale > 0:
        return "--time-scale must be positive"
    return None


def _build_plan(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from ingest.simmodels import parse_episode
    from ingest.simulate import SimulationPlan, plan_sensors
    from qinghe.config import BrokerConfig

    registry: list[Any] = []
    broker = BrokerConfig(url=os.environ.get("QINGHE_BROKER") or DEFAULT_BROKER)
    max_payload = 16 * 1024
    if args.config:
        from ingest.registry import load_central

        config = load_central(Path(args.config))
        registry, broker, max_payload = list(config.sensors), config.broker, config.ingest.max_payload_bytes
    if args.broker:
        broker = broker.model_copy(update={"url": BrokerConfig(url=args.broker).url})
    episodes = tuple(parse_episode(text) for text in args.episode)
    sensors, synthetic = plan_sensors(args.sensors, registry)
    zones = {s.zone for s in sensors if s.kind.value == "air"}
    for episode in episodes:
        if episode.zone not in zones:
            raise ValueError(f"episode zone {episode.zone!r} has no simulated air sensor (zones: {sorted(zones)})")
    plan = SimulationPlan(
        broker=broker,
        sensors=tuple(sensors),
        rate=args.rate or 1.0,
        duration_s=args.duration or 0.0,
        bad_fraction=args.bad_fraction,
        episodes=episodes,
        seed=args.seed,
        max_payload_bytes=max_payload,
        time_scale=args.time_scale,
        processes=args.processes,
    )
    return plan, synthetic
