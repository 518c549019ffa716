"""`qinghe serve`: the central services (ingest -> rules -> alerting), each with its own MQTT connection."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from qinghe.central_config import CentralConfig
from qinghe.clock import Clock, SystemClock

log = logging.getLogger(__name__)

SERVICE_NAMES = ("ingest", "rules", "alerting")


class Service(Protocol):
    """What serve needs from a service."""

    def start(self) -> None:
        """Start threads and connections."""
        ...

    def stop(self) -> None:
        """Stop cleanly, flushing buffers."""
        ...


def _optional_class(module_name: str, class_name: str) -> Callable[..., Any] | None:
    """The class if its module exists yet (services land independently); None otherwise."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    factory: Callable[..., Any] | None = getattr(module, class_name, None)
    return factory


class CentralServices:
    """The composition `qinghe serve` runs; usable in-process by the demo and the benchmark.

    Readings flow in-process from ingest to rules (`handle_reading`) and signals from rules to
    alerting (`handle_signal`). A service running without its upstream subscribes on MQTT instead.
    Sinks start first and stop last; a retained `service/{id}/availability` says whether we run.
    """

    def __init__(
        self, config: CentralConfig, config_dir: Path, clock: Clock, only: Iterable[str] | None = None
    ) -> None:
        self.config = config
        self.config_dir = Path(config_dir)
        self.clock = clock
        wanted = set(only) if only is not None else {n for n in SERVICE_NAMES if getattr(config, n).enabled}
        self._subset = only is not None
        self.ingest: Any = None
        self.rules: Any = None
        self.alerting: Any = None
        self._build(wanted)
        self._availability: Any = None

    def _build(self, wanted: set[str]) -> None:
        ingest_cls = _optional_class("ingest.service", "IngestService") if "ingest" in wanted else None
        rules_cls = _optional_class("rules.service", "RulesService") if "rules" in wanted else None
        alerting_cls = _optional_class("alerting.service", "AlertingService") if "alerting" in wanted else None
        for name, cls in (("ingest", ingest_cls), ("rules", rules_cls), ("alerting", alerting_cls)):
            if name in wanted and cls is None:
                log.warning("the %s service is not available in this build; running without it", name)
        args = (self.config, self.config_dir, self.clock)
        if alerting_cls is not None:
            self.alerting = alerting_cls(*args, subscribe_signals=rules_cls is None)
        if rules_cls is not None:
            on_signal = self.alerting.handle_signal if self.alerting is not None else None
            self.rules = rules_cls(*args, on_signal=on_signal, subscribe_readings=ingest_cls is None)
        if ingest_cls is not None:
            on_reading = self.rules.handle_reading if self.rules is not None else None
            self.ingest = ingest_cls(*args, on_reading=on_reading)

    @property
    def running(self) -> list[str]:
        """Names of the services in this composition, source first."""
        return [name for name in SERVICE_NAMES if getattr(self, name) is not None]

    def start(self) -> None:
        """Start sinks first (alerting, rules, ingest), then announce availability."""
        started: list[str] = []
        try:
            for name in reversed(self.running):
                log.info("starting %s", name)
                getattr(self, name).start()
                started.append(name)
        except Exception:
            for name in reversed(started):
                getattr(self, name).stop()
            raise
        self._availability = self._availability_bus()
        self._availability.start(wait_s=None)

    def stop(self) -> None:
        """Stop sources first (ingest, rules, alerting) so every buffer drains into a live sink."""
        if self._availability is not None:
            self._availability.stop()
            self._availability = None
        for name in self.running:
            log.info("stopping %s", name)
            try:
                getattr(self, name).stop()
            except Exception:  # keep stopping the others; their buffers still need flushing
                log.exception("stopping %s failed", name)

    @property
    def identity(self) -> str:
        """Who announces availability: `{service_id}`, or `{service_id}-serve-{services}` for an `--only` subset.

        Processes running different subsets of one config (ingest here, rules and alerting there) must not
        share an MQTT client id (the broker would drop one for the other, forever) or an availability topic.
        """
        if not self._subset:
            return self.config.service_id
        return f"{self.config.service_id}-serve-{'-'.join(self.running)}"

    def _availability_bus(self) -> Any:
        from qinghe.bus import Availability, MqttBus
        from qinghe.topics import Topics

        topic = Topics(self.config.broker.topic_prefix).build("service_availability", service=self.identity)
        client_id = f"{self.config.service_id}-serve" if not self._subset else self.identity
        return MqttBus(self.config.broker, client_id, availability=Availability(topic), clean_start=True)


def load_for_serve(path: Path) -> CentralConfig:
    """Load the central config plus its extra sensor registries; raises ConfigError."""
    from ingest.registry import load_central

    return load_central(path)


def parse_only(text: str | None) -> list[str] | None:
    """`ingest,rules` -> ["ingest", "rules"]; raises ValueError naming an unknown service."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SERVICE_NAMES]
    if unknown or not names:
        raise ValueError(f"--only takes a comma-separated subset of {','.join(SERVICE_NAMES)}, got {text!r}")
    return names


def run_serve(args: argparse.Namespace) -> int:
    """Handler for `qinghe serve`: run until SIGTERM or SIGINT, then stop cleanly."""
    from qinghe.yamlload import ConfigError

    try:
        only = parse_only(args.only)
    except ValueError as exc:
        print(f"qinghe serve: {exc}", file=sys.stderr)
        return 2
    path = Path(args.config)
    try:
        config = load_for_serve(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    log.info("config %s; broker %s; database %s", path.resolve(), config.broker.redacted_url(), config.influx.url)
    stop = threading.Event()
    _install_signal_handlers(stop)
    try:
        services = CentralServices(config, path.resolve().parent, SystemClock(), only)
    except ConfigError as exc:  # a rule file or another file the services load
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    if not services.running:
        print("qinghe serve: no service to run (all disabled or unavailable)", file=sys.stderr)
        return 1
    try:
        services.start()
    except Exception as exc:  # e.g. an unwritable state_dir: say so and exit, nothing half-running
        log.exception("could not start the central services")
        print(f"qinghe serve: could not start: {exc}", file=sys.stderr)
        return 1
    log.info("serving: %s", ", ".join(services.running))
    stop.wait()
    log.info("stopping")
    services.stop()
    return 0


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `serve` verb."""
    parser = subparsers.add_parser(
        "serve",
        help="run the central services: ingest, rules, alerting",
        description="Run the central services from one config file. Ingest feeds rules and rules feed alerting "
        "in-process; --only runs a subset, which then talks over MQTT. SIGTERM or SIGINT stops cleanly "
        "(sources first, buffers flushed). QINGHE_BROKER and QINGHE_INFLUX_URL override the file's servers. "
        "Exit 1 on a bad config (file:line: key: message).",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="central config, e.g. config/central.yaml")
    parser.add_argument("--only", metavar="LIST", help="comma-separated subset of ingest,rules,alerting")
    parser.set_defaults(handler=run_serve)


def main(argv: Sequence[str]) -> int:
    """Run `serve` directly (for tests)."""
    parser = argparse.ArgumentParser(prog="qinghe")
    register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["serve", *argv])
    return int(args.handler(args))
