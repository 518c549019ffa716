"""`qinghe incidents list|show|stats` (reports from the durable state) and `qinghe alerting serve|silence`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    from qinghe.central_config import CentralConfig

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    from alerting.store import AlertingStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Subparsers) -> None:
    """Add the `incidents` and `alerting` verb groups."""
    incidents = subparsers.add_parser("incidents", help="list, show and report on incidents")
    verbs = incidents.add_subparsers(dest="incidents_verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="incidents, newest first (open ones unless --all)")
    _state_args(listing)
    listing.add_argument("--all", action="store_true", help="include resolved, closed and archived incidents")
    listing.add_argument("--colour", choices=("red", "orange", "yellow", "blue"))
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=run_list)
    show = verbs.add_parser("show", help="one incident with its clocks and history")
    _state_args(show)
    show.add_argument("incident_id")
    show.set_defaults(handler=run_show)
    stats = verbs.add_parser("stats", help="open by colour, 1510 compliance, parking outcomes, noisiest rules")
    _state_args(stats)
    stats.add_argument("--since", help="only incidents opened on or after this local date (YYYY-MM-DD)")
    stats.add_argument("--chart", type=Path, help="also write a PNG chart (per-hour incidents, compliance)")
    stats.set_defaults(handler=run_stats)
    _register_alerting(subparsers)


def _register_alerting(subparsers: Subparsers) -> None:
    alerting = subparsers.add_parser("alerting", help="run the alerting service alone; manage silences")
    verbs = alerting.add_subparsers(dest="alerting_verb", metavar="VERB", required=True)
    serve = verbs.add_parser("serve", help="run the alerting service (subscribes to rules/signal/+)")
    serve.add_argument("--config", required=True, type=Path, help="central config file")
    serve.add_argument("--no-signals", action="store_true", help="do not subscribe to rules/signal/+")
    serve.set_defaults(handler=run_serve)
    demo = verbs.add_parser("demo", help="the alerting loop alone: voice WAV, responder ack, a missed clock")
    demo.add_argument("--out", type=Path, default=Path("var/alerting-demo"), help="state, WAVs and broker files")
    demo.set_defaults(handler=run_demo)
    silence = verbs.add_parser("silence", help="add or expire a runtime silence (published over MQTT)")
    silence.add_argument("--config", required=True, type=Path, help="central config file (for the broker)")
    silence.add_argument("action", choices=("add", "expire"))
    silence.add_argument("--id", help="silence id (required for expire)")
    silence.add_argument("--match", action="append", default=[], metavar="KEY=GLOB", help="type, zone, rule_id, ...")
    silence.add_argument("--for", dest="duration", help="how long, e.g. 2h")
    silence.add_argument("--reason", default="")
    silence.add_argument("--by", default="")
    silence.set_defaults(handler=run_silence)


def _state_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="central config (state_dir and alerting.state_file)")
    where.add_argument("--state", type=Path, help="directory holding alerting.db")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _open_store(args: argparse.Namespace) -> tuple[AlertingStore, Any] | None:
    from alerting.config import AlertingConfig
    from alerting.store import AlertingStore
    from qinghe.central_config import load_central_config
    from qinghe.yamlload import ConfigError

    if args.config is not None:
        try:
            config = load_central_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return None
        path = config.resolve(args.config.resolve().parent, config.state_dir) / config.alerting.state_file
        settings = config.alerting
    else:
        settings = AlertingConfig()
        path = args.state / settings.state_file
    if not path.exists():
        print(f"no alerting state at {path}", file=sys.stderr)
        return None
    return AlertingStore(path), settings


def run_list(args: argparse.Namespace) -> int:
    """Handler for `qinghe incidents list`."""
    opened = _open_store(args)
    if opened is None:
        return EXIT_FAILED
    store, settings = opened
    records = [r for r in store.records(include_archived=args.all) if args.all or r.active]
    if args.colour:
        records = [r for r in records if r.incident.colour.value == args.colour]
    records = sorted(records, key=lambda r: r.incident.opened_at, reverse=True)[: args.limit]
    if args.json:
        from qinghe.codec import to_jsonable

        print(json.dumps([to_jsonable(r.incident) for r in records], ensure_ascii=False))
        return EXIT_OK
    from alerting.report import open_by_colour

    counts = open_by_colour(store.records(include_archived=False))
    print("open: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    for record in records:
        inc = record.incident
        print(f"{inc.id}  {inc.colour.value:<6} {inc.state.value:<12} {inc.type:<16} {inc.zone:<12} "
              f"tier {inc.tier} {record.team:<12} {_local(inc.opened_at, settings)}  {inc.message}")  # fmt: skip
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """Handler for `qinghe incidents show`."""
    opened = _open_store(args)
    if opened is None:
        return EXIT_FAILED
    store, settings = opened
    record = store.record(args.incident_id)
    if record is None:
        print(f"no incident {args.incident_id}", file=sys.stderr)
        return EXIT_FAILED
    inc = record.incident
    if args.json:
        from qinghe.codec import to_jsonable

        print(json.dumps(to_jsonable(inc), ensure_ascii=False))
        return EXIT_OK
    from alerting.sla import outcome

    print(f"{inc.id} {inc.type} {inc.colour.value} {inc.state.value} (outcome {inc.outcome or '-'})")
    print(f"  zone {inc.zone}, rule {inc.rule_id}, team {record.team}, tier {inc.tier}, data {inc.data_state}")
    print(f"  {inc.message}")
    for clock in inc.sla:
        deadline = _local(clock.deadline, settings) if clock.deadline else "-"
        print(f"  clock {clock.name.value:<12} deadline {deadline}  {outcome(clock, inc.state).value}")
    print(f"  sources: {', '.join(f'{s.kind}:{s.id}' for s in inc.sources) or '-'}")
    print(f"  evidence: {', '.join(f'{e.role}:{e.ref}' for e in inc.evidence) or '-'}")
    print("  history:")
    for entry in _full_history(record):
        print(f"    {_local(entry.ts, settings)} {entry.action:<16} {entry.by:<18} {entry.state.value:<12} "
              f"{entry.colour.value:<6} {entry.note}")  # fmt: skip
    return EXIT_OK


def _full_history(record: Any) -> list[Any]:
    """The wire history with the trimmed middle put back in place."""
    from alerting.emit import TRIMMED

    out: list[Any] = []
    for entry in record.incident.history:
        out.extend(record.older_history if entry.action == TRIMMED else [entry])
    return out


def run_stats(args: argparse.Namespace) -> int:
    """Handler for `qinghe incidents stats`."""
    from datetime import datetime

    from alerting import report

    opened = _open_store(args)
    if opened is None:
        return EXIT_FAILED
    store, settings = opened
    since = None
    if args.since:
        try:
            since = datetime.strptime(args.since, "%Y-%m-%d").replace(tzinfo=settings.tz).timestamp()
        except ValueError:
            print(f"--since {args.since!r} is not YYYY-MM-DD", file=sys.stderr)
            return EXIT_USAGE
    records = list(store.records(since=since))
    by_colour, by_team = report.compliance(records)
    result = {
        "incidents": len(records),
        "open_by_colour": report.open_by_colour(records),
        "compliance_by_colour": {c: v.as_dict() for c, v in by_colour.items()},
        "compliance_by_team": {t: v.as_dict() for t, v in by_team.items()},
        "parking": report.parking(records),
        "noisiest_rules": report.noisiest(store.rule_stats(args.since or ""), records),
    }
    if args.chart is not None:
        result["chart"] = str(report.chart(records, by_colour, settings.tz, args.chart))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_stats(result)
    return EXIT_OK


def _print_stats(result: dict[str, Any]) -> None:
    print(f"incidents: {result['incidents']}")
    print("open by colour: " + ", ".join(f"{c} {n}" for c, n in result["open_by_colour"].items()))
    for title, table in (("per colour", result["compliance_by_colour"]), ("per team", result["compliance_by_team"])):
        print(f"1510 compliance {title} (met/missed/pending, on-time rate):")
        for name, clocks in table.items():
            cells = [f"{k} {v['met']}/{v['missed']}/{v['pending']} {_pct(v['rate'])}" for k, v in clocks.items()]
            print(f"  {name:<12} " + "  ".join(cells))
    p = result["parking"]
    print(f"parking: complied {p['complied']}, violation {p['violation']}, complied ratio {_pct(p['complied_ratio'])}")
    print("noisiest rules (signals, opened, grouped, suppressed, flapping, cleared before ack):")
    for row in result["noisiest_rules"]:
        print(f"  {row['rule_id']:<24} {row['signals']:>6} {row['opened']:>6} {row['grouped']:>6} "
              f"{row['suppressed']:>6} {row['flapping']:>6} {row['cleared_unacked']:>6}")  # fmt: skip
    if "chart" in result:
        print(f"chart: {result['chart']}")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def _local(ts: float | None, settings: Any) -> str:
    from datetime import datetime

    return "-" if ts is None else datetime.fromtimestamp(ts, settings.tz).strftime("%Y-%m-%d %H:%M:%S")


def _load(path: Path) -> CentralConfig | None:
    from qinghe.central_config import load_central_config
    from qinghe.yamlload import ConfigError

    try:
        return load_central_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def run_serve(args: argparse.Namespace) -> int:
    """Handler for `qinghe alerting serve`: run until SIGTERM / Ctrl-C."""
    import signal
    import threading

    from alerting.service import AlertingService
    from qinghe.clock import SystemClock

    config = _load(args.config)
    if config is None:
        return EXIT_FAILED
    service = AlertingService(
        config, args.config.resolve().parent, SystemClock(), subscribe_signals=not args.no_signals
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    service.start()
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    service.stop()
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    """Handler for `qinghe alerting demo`: a private Mosquitto, the service, a responder, one missed clock."""
    from alerting.demo import demo_alerting
    from alerting.demo import run_demo as drive
    from alerting.service import AlertingService
    from qinghe.central_config import CentralConfig
    from qinghe.clock import SystemClock
    from qinghe.localservers import LocalMosquitto

    out: Path = args.out.resolve()
    broker = LocalMosquitto(out / "mosquitto")
    broker.start()
    config = CentralConfig.model_validate(
        {
            "service_id": "alerting-demo",
            "state_dir": str(out / "state"),
            "broker": {"url": broker.url, "reconnect_min_s": 0.1},
            "cameras": [{"id": "cam-north-gate", "kind": "road_warden", "speaker_id": "spk-north-gate"}],
            "alerting": demo_alerting(out / "voice"),
        }
    )
    service = AlertingService(
        config, out, SystemClock(), on_voice_file=lambda path, w: print(f"  WAV   {w.speaker_id} spoke: {path}")
    )
    service.start()
    try:
        code = drive(service, config.broker)
    finally:
        service.stop()
        broker.stop()
    print(f"incidents: qinghe incidents show --state {out / 'state'} <id>   (list: qinghe incidents list --state ...)")
    return EXIT_OK if code == 0 else EXIT_FAILED


def run_silence(args: argparse.Namespace) -> int:
    """Handler for `qinghe alerting silence add|expire`."""
    from alerting.config import parse_duration
    from qinghe.bus import MqttBus
    from qinghe.errors import QingheError
    from qinghe.topics import Topics

    config = _load(args.config)
    if config is None:
        return EXIT_FAILED
    command: dict[str, Any] = {"action": args.action, "reason": args.reason, "by": args.by}
    if args.id:
        command["id"] = args.id
    if args.action == "add":
        try:
            command["matchers"] = dict(m.split("=", 1) for m in args.match)
            command["duration_s"] = parse_duration(args.duration)
        except ValueError as exc:
            print(f"bad --match or --for: {exc}", file=sys.stderr)
            return EXIT_USAGE
    bus = MqttBus(config.broker, f"{config.service_id}-silence-cli", clean_start=True)
    try:
        bus.start(wait_s=10)
        topic = f"{Topics(config.broker.topic_prefix).root}/alerting/silence/cmd"
        bus.publish_and_wait(topic, json.dumps(command, ensure_ascii=False))
    except QingheError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    finally:
        bus.stop()
    print(f"sent {args.action} to {topic}; the active list is retained on {topic.rsplit('/', 2)[0]}/silences")
    return EXIT_OK
