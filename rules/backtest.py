"""`qinghe rules replay` and `rules stats`: run backtests and assemble their reports."""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qinghe.central_config import CentralConfig, load_central_config
from qinghe.codec import decode
from qinghe.contracts import RuleSignal
from qinghe.errors import PayloadError
from qinghe.topics import Topics
from rules.labels import load_labels, score
from rules.lang import format_duration
from rules.loader import RuleSet, load_rules
from rules.recording import read_recording
from rules.registry import Registry
from rules.replay import IncidentSpan, ProgressBar, ReplayResult, diff_spans, replay, rule_summary, spans_from
from rules.service import merge_registry_files
from rules.stats import FatigueStats


@dataclass(frozen=True, slots=True)
class Report:
    """The printed report and its JSON form."""

    text: str
    data: dict[str, Any]


def _count_lines(path: Path) -> int:
    return sum(1 for _ in read_recording(path))


def _run(ruleset: RuleSet, registry: Registry, config: CentralConfig, path: Path, show: bool) -> ReplayResult:
    bar = ProgressBar(_count_lines(path) if show else None) if show else None
    result = replay(ruleset, registry, config, read_recording(path), progress=bar)
    if bar is not None:
        bar(result.messages)
        bar.close()
    return result


def backtest(args: argparse.Namespace) -> Report:
    """Replay the candidate (and the baseline), score against labels, plot; ConfigError/ValueError/OSError."""
    config_path = Path(args.config)
    config = merge_registry_files(load_central_config(config_path), config_path.resolve().parent)
    registry = Registry.from_central(config)
    candidate = load_rules(args.rules, registry)
    recording = Path(args.input)
    show = not args.no_progress
    result = _run(candidate, registry, config, recording, show)
    types = {rid: r.model.type for rid, r in candidate.rules.items()}
    spans = spans_from(result.signals, types)
    end = result.last_t or 0.0
    data: dict[str, Any] = {
        "input": str(recording),
        "messages": result.messages,
        "inputs": result.inputs,
        "rejected": dict(result.rejected),
        "duplicate_events": result.duplicates,
        "span_s": result.span_s,
        "wall_s": round(result.wall_s, 3),
        "speedup": round(result.speedup, 1) if result.speedup != float("inf") else None,
        "signals": len(result.signals),
        "rules": rule_summary(spans, candidate.rules, end),
    }
    if args.baseline:
        baseline = load_rules(args.baseline, registry)
        base_result = _run(baseline, registry, config, recording, show=False)
        base_spans = spans_from(base_result.signals, {rid: r.model.type for rid, r in baseline.rules.items()})
        data["baseline"] = {
            "files": list(args.baseline),
            "rules": rule_summary(base_spans, baseline.rules, end),
            "diff": diff_spans(spans, base_spans, end),
        }
    if args.labels:
        labels = load_labels(args.labels)
        scores = score(labels, [s.predicted(end) for s in spans], types)
        data["labels"] = {
            s.rule_id: {"precision": s.precision, "recall": s.recall, "predicted": s.predicted, "labels": s.labels,
                        "true_positive": s.true_positive, "found": s.found}
            for s in scores
        }  # fmt: skip
    if args.plot:
        _plot(Path(args.plot), candidate, spans, recording, config)
        data["plot"] = args.plot
    return Report(format_report(data), data)


def _plot(path: Path, ruleset: RuleSet, spans: list[IncidentSpan], recording: Path, config: CentralConfig) -> None:
    from rules.inputs import InputDecoder
    from rules.plot import choose_panels, collect_points, render

    panels = choose_panels(list(ruleset.rules.values()), spans)
    collect_points(panels, read_recording(recording), InputDecoder(config, Topics(config.broker.topic_prefix)))
    render(path, panels, f"replay of {recording.name}: {len(spans)} incidents")


def format_report(data: dict[str, Any]) -> str:
    """Readable report."""
    speed = f"{data['speedup']:,.0f}x real time" if data.get("speedup") else "instant"
    lines = [
        f"replayed {data['messages']:,} messages ({data['inputs']:,} inputs, {sum(data['rejected'].values()):,} "
        f"rejected, {data['duplicate_events']} duplicate events) spanning {format_duration(data['span_s'])} "
        f"in {data['wall_s']:.2f} s: {speed}",
        "",
        f"{'rule':<28} {'incidents':>9}  {'by colour':<34} {'median':>8} {'max':>8} {'flapping':>8} {'unknown':>7}",
    ]
    for rule_id, row in data["rules"].items():
        colours = " ".join(f"{c} {n}" for c, n in row["by_colour"].items()) or "-"
        lines.append(
            f"{rule_id:<28} {row['incidents']:>9}  {colours:<34} {_dur(row['median_duration_s']):>8} "
            f"{_dur(row['max_duration_s']):>8} {row['flapping']:>8} {row['unknown']:>7}"
        )
    if "baseline" in data:
        lines += ["", f"diff against the deployed rules ({', '.join(data['baseline']['files'])}):"]
        for rule_id, row in data["baseline"]["diff"].items():
            lines.append(
                f"  {rule_id:<26} in both {row['both']:>4}   new {row['only_candidate']:>4}   "
                f"gone {row['only_baseline']:>4}   colour changed {row['colour_changed']:>4}"
            )
    if "labels" in data:
        lines += ["", "against the labels:"]
        for rule_id, row in data["labels"].items():
            lines.append(
                f"  {rule_id:<26} precision {_pct(row['precision'])}  recall {_pct(row['recall'])}  "
                f"({row['true_positive']}/{row['predicted']} incidents match, "
                f"{row['found']}/{row['labels']} labels found)"
            )
    if "plot" in data:
        lines += ["", f"plot: {data['plot']}"]
    return "\n".join(lines)


def _dur(value: float | None) -> str:
    return "-" if value is None else format_duration(value)


def _pct(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.0%}"


def stats_from_recording(path: str) -> dict[str, Any]:
    """Fatigue stats computed from the rules/signal messages of a recording."""
    stats = FatigueStats()
    last = None
    for record in read_recording(path):
        if "/rules/signal/" not in record.topic:
            continue
        try:
            signal = decode(RuleSignal, record.payload)
        except PayloadError:
            continue
        stats.observe(signal)
        last = record.t
    return stats.summary(last)


def stats_from_broker(args: argparse.Namespace) -> dict[str, Any]:
    """The retained rules/stats message from the broker (ValueError if none arrives in time)."""
    from qinghe.bus import InboundMessage, MqttBus
    from qinghe.config import BrokerConfig

    config = load_central_config(args.config) if Path(args.config).is_file() else None
    broker = BrokerConfig(url=args.broker) if args.broker else (config.broker if config else BrokerConfig())
    topic = Topics(broker.topic_prefix).build("rules_stats")
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(message: InboundMessage) -> None:
        got.append(message.payload)
        arrived.set()

    bus = MqttBus(broker, "qinghe-rules-stats", clean_start=True)
    bus.subscribe(topic, on_message)
    bus.start(wait_s=args.timeout)
    try:
        if not arrived.wait(args.timeout):
            raise ValueError(f"no stats on {topic} within {args.timeout:g} s (is the rules service running?)")
    finally:
        bus.stop()
    data: dict[str, Any] = json.loads(got[-1])
    return data
