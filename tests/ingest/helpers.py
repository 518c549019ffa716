"""Helpers for the ingest tests: a small registry, payload builders, VictoriaMetrics polling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ingest.registry import compile_registry
from ingest.validate import Limits, Validator
from qinghe.central_config import CentralConfig
from qinghe.config import SensorConfig
from qinghe.localservers import LocalVictoriaMetrics

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
NOW_MS = int(NOW * 1000)

SENSORS: list[dict[str, Any]] = [
    {"id": "aq-1", "kind": "air", "zone": "north gate", "location": {"lat": 30.25, "lon": 119.75}},
    {"id": "aq-mg", "kind": "air", "zone": "market", "units": {"pm25": "mg/m3"}},
    {"id": "noise-1", "kind": "noise", "zone": "market"},
    {"id": "wl-cm", "kind": "water_level", "zone": "lake", "units": {"level": "cm"}},
    {"id": "wq-1", "kind": "water_quality", "zone": "lake", "units": {"cod": "ppm"}},
    {"id": "rain-in", "kind": "rain", "zone": "lake", "units": {"rate": "in/h"}},
    {"id": "smoke-1", "kind": "smoke", "zone": "market"},
    {"id": "th-f", "kind": "thermal", "zone": "fields", "units": {"temp_max": "degF"}},
    {"id": "th-k", "kind": "thermal", "zone": "fields", "units": {"temp_max": "K"}},
]


def sensor_configs() -> list[SensorConfig]:
    """The test registry as config models."""
    return [SensorConfig.model_validate(s) for s in SENSORS]


def make_validator(limits: Limits | None = None) -> Validator:
    """A validator over the test registry with topic root qh/v1."""
    return Validator(compile_registry(sensor_configs()), "qh/v1", limits or Limits())


def topic(sensor_id: str) -> str:
    """The reading topic of a sensor."""
    return f"qh/v1/sensor/{sensor_id}/reading"


def payload(
    values: Mapping[str, object] | None = None, ts: object = NOW_MS, seq: object = None, **extra: object
) -> bytes:
    """A reading payload (default values: pm25 35.2); `extra` adds top-level keys."""
    doc: dict[str, object] = {"ts": ts, "values": dict(values) if values is not None else {"pm25": 35.2}}
    if seq is not None:
        doc["seq"] = seq
    doc.update(extra)
    return json.dumps(doc).encode()


def central(tmp_path: Path, broker_url: str, influx_url: str, **ingest: object) -> CentralConfig:
    """A central config for the test registry, pointing at the given servers, state under tmp_path."""
    return CentralConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "broker": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
            "influx": {"url": influx_url, "batch_size": 500, "flush_interval_ms": 100, "timeout_ms": 2000},
            "sensors": SENSORS,
            "ingest": {"retry_min_s": 0.2, "retry_max_s": 1.0, **ingest},
        }
    )


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.1) -> None:
    """Poll until `predicate()` holds; fail the test naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def settled_count(vm: LocalVictoriaMetrics, match: str, expected: int, timeout_s: float = 30.0) -> int:
    """Samples matching `match` once the count reaches `expected` and stays put for a moment (or timeout)."""
    deadline = time.monotonic() + timeout_s
    count = vm.count_samples(match)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        count = vm.count_samples(match)
    time.sleep(1.0)  # anything extra (a duplicate) would show up now
    return vm.count_samples(match)


def export_series(vm: LocalVictoriaMetrics, match: str, samples: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """Export `match` once at least `samples` samples are visible (VictoriaMetrics shows new data after 1-7 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        series = vm.export(match)
        if sum(len(s["values"]) for s in series) >= samples or time.monotonic() > deadline:
            return series
        time.sleep(0.3)
