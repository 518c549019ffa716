"""Command-line verbs of the rules package: `rules check|test|replay|stats` and `record`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "config/central.yaml"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rules` (check, test, replay, stats) and `record`."""
    rules = subparsers.add_parser("rules", help="lint, unit-test, backtest rules; fatigue stats")
    verbs = rules.add_subparsers(dest="rules_verb", metavar="VERB", required=True)
    _register_check(verbs)
    _register_test(verbs)
    _register_replay(verbs)
    _register_stats(verbs)
    _register_record(subparsers)


def _register_check(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = verbs.add_parser(
        "check",
        help="validate rule files against the registry; warn about unreachable tiers and overlapping rules",
        description="Schema, cross-references (unknown zone, sensor, camera, tag, speaker, schedule), then "
        "warnings: tiers that can never be the highest, resolve thresholds without hysteresis, overlapping "
        "rules, selectors that match nothing. Exit 1 on errors (or on warnings with --strict).",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--config", default=None, metavar="FILE", help=f"registry to check against ({DEFAULT_CONFIG})")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    check.set_defaults(handler=run_check)


def _register_test(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = verbs.add_parser(
        "test",
        help="run rule unit-test files (series and events on a timeline, expected signals)",
        description="Run rule test files. Exit 1 if any test fails (a diff of expected - / actual + is printed) "
        "or a file is invalid (file:line: key: message).",
    )
    test.add_argument("files", nargs="+", metavar="FILE")
    test.add_argument("-v", "--verbose", action="store_true", help="print every signal of every test")
    test.set_defaults(handler=run_test)


def _register_replay(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = verbs.add_parser(
        "replay",
        help="backtest rules on a recording: incidents per rule, diff to the deployed rules, precision/recall",
        description="Replay recorded MQTT traffic (from `qinghe record`) through the candidate rules exactly as "
        "the live service would, and report per rule: incidents by colour, durations, flapping; with "
        "--baseline the difference to the deployed rules; with --labels precision and recall; with --plot a PNG.",
    )
    replay.add_argument("--rules", nargs="+", required=True, metavar="FILE", help="candidate rule files")
    replay.add_argument("--input", required=True, metavar="RECORDING", help="recording (.jsonl or .jsonl.gz)")
    replay.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE", help="central config (the registry)")
    replay.add_argument("--baseline", nargs="+", metavar="FILE", help="the deployed rule files to compare with")
    replay.add_argument("--labels", metavar="FILE", help="labelled incidents, for precision and recall")
    replay.add_argument("--plot", metavar="PNG", help="write a plot of series, thresholds and incident spans")
    replay.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.set_defaults(handler=run_replay)


def _register_stats(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = verbs.add_parser(
        "stats",
        help="alert-fatigue stats per rule: fires, resolves, flaps, median time to resolve",
        description="Print the fatigue stats the rules service publishes (retained) on rules/stats, or compute "
        "them from the rule signals in a recording (--input).",
    )
    stats.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE", help="central config (broker)")
    stats.add_argument("--broker", metavar="URL", help="broker URL (overrides the config)")
    stats.add_argument("--input", metavar="RECORDING", help="compute from recorded rules/signal traffic instead")
    stats.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the retained stats")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=run_stats)


def _register_record(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    record = subparsers.add_parser(
        "record",
        help="capture MQTT traffic to compressed JSONL (for `rules replay`)",
        description="Subscribe to the given topics (default: sensor readings, camera events and status, rule "
        "signals) and write every message with its receive time to FILE (gzip if it ends in .gz). "
        "Stops after --duration seconds, or on Ctrl-C.",
    )
    record.add_argument("--broker", required=True, metavar="URL", help="mqtt://host:port")
    record.add_argument("--out", required=True, metavar="FILE", help="e.g. traffic.jsonl.gz")
    record.add_argument("--duration", type=float, metavar="S", help="seconds to record (default: until Ctrl-C)")
    record.add_argument("--topics", nargs="+", metavar="FILTER", help="topic filters (default: rules inputs)")
    record.add_argument("--prefix", default="qh", help="topic prefix for the default filters (default qh)")
    record.set_defaults(handler=run_record)


# ----- handlers --------------------------------------------------------------------------------------


def _registry_for(config: str | None) -> tuple[Any, str]:
    """(Registry, note) from --config, or the default file if it exists, or an empty registry."""
    from rules.lint import load_registry
    from rules.registry import Registry

    path = Path(config or DEFAULT_CONFIG)
    if config is None and not path.is_file():
        return Registry(), f"note: no {DEFAULT_CONFIG}; registry cross-references not checked"
    return load_registry(path), f"registry: {path}"


def run_check(args: argparse.Namespace) -> int:
    """Handler for `qinghe rules check`."""
    from qinghe.yamlload import ConfigError
    from rules.lint import check_rules

    try:
        registry, note = _registry_for(args.config)
    except ConfigError as exc:
        _print_issues(exc.issues)
        return EXIT_FAILED
    result = check_rules(args.files, registry)
    _print_issues(result.errors)
    _print_issues(result.warnings)
    failed = bool(result.errors) or (args.strict and bool(result.warnings))
    if not args.quiet and result.ruleset is not None:
        print(f"{', '.join(args.files)}: ok ({result.ruleset.summary()}; {len(result.warnings)} warnings; {note})")
    return EXIT_FAILED if failed else EXIT_OK


def _print_issues(issues: Any) -> None:
    for issue in issues:
        print(issue, file=sys.stderr)


def run_test(args: argparse.Namespace) -> int:
    """Handler for `qinghe rules test`."""
    from qinghe.yamlload import ConfigError
    from rules.testrun import format_outcomes, run_test_file

    failed = passed = 0
    for path in args.files:
        try:
            outcomes = run_test_file(path)
        except ConfigError as exc:
            _print_issues(exc.issues)
            failed += 1
            continue
        print(format_outcomes(path, outcomes))
        if args.verbose:
            for outcome in outcomes:
                for sig in outcome.signals:
                    print(f"     {sig.ts:.3f} {sig.rule_id} {sig.status.value} {sig.colour.value} {sig.dedup_key}")
        failed += sum(1 for o in outcomes if not o.ok)
        passed += sum(1 for o in outcomes if o.ok)
    print(f"{passed} passed, {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    """Handler for `qinghe rules replay`."""
    from qinghe.yamlload import ConfigError
    from rules.backtest import backtest

    try:
        report = backtest(args)
    except ConfigError as exc:
        _print_issues(exc.issues)
        return EXIT_FAILED
    except (OSError, ValueError) as exc:
        print(f"qinghe rules replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report.text)
    if args.json:
        Path(args.json).write_text(json.dumps(report.data, indent=2, ensure_ascii=False), encoding="utf-8")
    return EXIT_OK


def run_stats(args: argparse.Namespace) -> int:
    """Handler for `qinghe rules stats`."""
    from rules.backtest import stats_from_broker, stats_from_recording
    from rules.stats import format_table

    try:
        summary = stats_from_recording(args.input) if args.input else stats_from_broker(args)
    except (OSError, ValueError) as exc:
        print(f"qinghe rules stats: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else format_table(summary))
    return EXIT_OK


def run_record(args: argparse.Namespace) -> int:
    """Handler for `qinghe record`."""
    import signal
    import threading

    from qinghe.config import BrokerConfig
    from qinghe.errors import QingheError
    from rules.recording import default_topics, record

    try:
        broker = BrokerConfig(url=args.broker)
    except ValueError as exc:
        print(f"qinghe record: bad --broker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    topics = args.topics or default_topics(args.prefix)
    try:
        count = record(broker, Path(args.out), topics, args.duration, stop)
    except QingheError as exc:
        print(f"qinghe record: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"recorded": count, "out": args.out}))
    return EXIT_OK
