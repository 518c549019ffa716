"""Sensor traffic generator: realistic readings (plus invalid ones) published at a steady rate, QoS 1."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import subprocess
import sys
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ingest.simbad import CLASS_ORDER, make_bad
from ingest.simmodels import Environment, Episode, SimSensor, canonical_values, reported_values
from qinghe.bus import MqttBus, PublishHandle
from qinghe.config import BrokerConfig, SensorConfig
from qinghe.contracts import SensorKind
from qinghe.timefmt import to_rfc3339
from qinghe.topics import Topics

log = logging.getLogger(__name__)

PER_PROCESS_RATE = 8000.0  # a paho publisher tops out around 20k msg/s; leave headroom for pacing
KIND_CYCLE = tuple(SensorKind)


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """What to publish: which sensors, how fast, for how long, how much of it invalid."""

    broker: BrokerConfig
    sensors: tuple[SimSensor, ...]
    rate: float
    duration_s: float
    bad_fraction: float = 0.0
    episodes: tuple[Episode, ...] = ()
    seed: int = 1
    max_payload_bytes: int = 16 * 1024
    time_scale: float = 1.0
    processes: int | None = None
    ack_timeout_s: float = 60.0
    in_process: bool = True  # a single publisher runs in this process (False: always child processes)

    @property
    def total(self) -> int:
        """Messages to publish in all."""
        return round(self.rate * self.duration_s)


@dataclass(frozen=True, slots=True)
class SimulationCounts:
    """Exactly what was published and acknowledged by the broker."""

    valid: int
    invalid: int
    unacknowledged: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0  # from the first publish to the last PUBACK (slowest publisher)

    def __add__(self, other: SimulationCounts) -> SimulationCounts:
        by_class = dict(self.by_class)
        for name, count in other.by_class.items():
            by_class[name] = by_class.get(name, 0) + count
        return SimulationCounts(
            self.valid + other.valid,
            self.invalid + other.invalid,
            self.unacknowledged + other.unacknowledged,
            by_class,
            max(self.elapsed_s, other.elapsed_s),
        )


def synthetic_sensors(count: int, zones: Sequence[str] = (), start: int = 0) -> list[SimSensor]:
    """`sim-<kind>-<n>` sensors, kinds and zones in rotation (deterministic, so a registry can be written)."""
    zone_names = list(zones) or [f"sim-zone-{k}" for k in range(1, 5)]
    out = []
    for i in range(start, start + count):
        kind = KIND_CYCLE[i % len(KIND_CYCLE)]
        zone = zone_names[(i // len(KIND_CYCLE)) % len(zone_names)]
        lat = 30.25 + 0.002 * ((i * 7) % 20 - 10)
        lon = 119.75 + 0.002 * ((i * 11) % 20 - 10)
        out.append(
            SimSensor(f"sim-{kind.value}-{i // len(KIND_CYCLE) + 1}", kind, zone, {}, round(lat, 5), round(lon, 5))
        )
    return out


def plan_sensors(count: int, registry: Sequence[SensorConfig]) -> tuple[list[SimSensor], list[SimSensor]]:
    """(all sensors to simulate, the synthetic ones among them): the registry first, then synthetic ones."""
    known = [
        SimSensor(
            s.id,
            s.kind,
            s.zone,
            dict(s.units),
            s.location.lat if s.location else None,
            s.location.lon if s.location else None,
        )
        for s in registry[:count]
    ]
    zones = sorted({s.zone for s in registry})
    taken = {s.id for s in registry}
    extra: list[SimSensor] = []
    index = 0
    while len(known) + len(extra) < count:
        candidate = synthetic_sensors(1, zones, index)[0]
        index += 1
        if candidate.sensor_id not in taken:
            extra.append(candidate)
    return known + extra, extra


def registry_yaml(sensors: Sequence[SimSensor]) -> str:
    """A registry file (`sensors:` list) for `ingest.registry_files`, so ingest knows synthetic sensors."""
    lines = ["# Written by `qinghe simulate sensors --write-registry`; name it in ingest.registry_files.", "sensors:"]
    for s in sensors:
        lines.append(f"  - {{id: {s.sensor_id}, kind: {s.kind.value}, zone: {s.zone!r}")
        if s.lat is not None and s.lon is not None:
            lines[-1] += f", location: {{lat: {s.lat}, lon: {s.lon}}}"
        if s.units:
            lines[-1] += ", units: {" + ", ".join(f"{k}: {v!r}" for k, v in s.units.items()) + "}"
        lines[-1] += "}"
    return "\n".join(lines) + "\n"


class TrafficGenerator:
    """Builds message i of a stream: a good reading, or (a fraction F of them) an invalid one."""

    def __init__(self, plan: SimulationPlan, sensors: Sequence[SimSensor], rate: float, seed: int) -> None:
        self.plan = plan
        self.sensors = list(sensors)
        self.rate = rate
        self.rng = random.Random(seed)
        self.env = Environment(time.time(), plan.seed, plan.episodes, plan.time_scale, plan.duration_s)
        topics = Topics(plan.broker.topic_prefix)
        self.topics = [topics.sensor_reading(s.sensor_id) for s in self.sensors]
        self._seq = [0] * len(self.sensors)
        self._last_ms = [0] * len(self.sensors)
        self._previous: list[bytes | None] = [None] * len(self.sensors)
        self._rfc3339 = [zlib.crc32(s.sensor_id.encode()) % 3 == 0 for s in self.sensors]  # both ts forms
        self._next_class = 0
        self._good = 0

    def message(self, i: int, now: float) -> tuple[str, bytes, str | None]:
        """(topic, payload, bad class or None) of message `i`, sent at wall time `now`.

        Exactly floor(i*F) of the first i messages are invalid; each is built from a random sensor's
        would-be reading (good ones go round-robin), so no sensor is starved of valid readings.
        """
        f = self.plan.bad_fraction
        if math.floor((i + 1) * f) > math.floor(i * f):
            k = self.rng.randrange(len(self.sensors))
            bad = self._bad(k, self._reading(k, i, now)[0], now)
            if bad is not None:
                return bad
        k = self._good % len(self.sensors)
        self._good += 1
        good, ts_ms = self._reading(k, i, now)
        payload = _dump(good)
        self._seq[k] += 1
        self._last_ms[k] = ts_ms
        self._previous[k] = payload
        return self.topics[k], payload, None

    def _reading(self, k: int, i: int, now: float) -> tuple[dict[str, object], int]:
        sensor = self.sensors[k]
        ts_ms = max(round(now * 1000), self._last_ms[k] + 1)
        values = reported_values(sensor, canonical_values(sensor, self.env, i / self.rate, self.rng))
        ts: object = to_rfc3339(ts_ms / 1000) if self._rfc3339[k] else ts_ms
        return {"ts": ts, "seq": self._seq[k], "values": values}, ts_ms

    def _bad(self, k: int, good: dict[str, object], now: float) -> tuple[str, bytes, str] | None:
        for _ in range(len(CLASS_ORDER)):
            name = CLASS_ORDER[self._next_class % len(CLASS_ORDER)]
            self._next_class += 1
            bad = make_bad(
                name,
                self.sensors[k],
                self.topics[k],
                good,
                now=now,
                previous=self._previous[k],
                max_payload_bytes=self.plan.max_payload_bytes,
            )
            if bad is not None:
                return bad.topic, bad.payload, bad.bad_class
        return None


def _dump(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def publish_stream(plan: SimulationPlan, sensors: Sequence[SimSensor], count: int, rate: float) -> SimulationCounts:
    """Publish `count` messages for `sensors` at `rate` msg/s on one connection; wait for every PUBACK."""
    bus = MqttBus(plan.broker, f"qinghe-sim-{os.getpid()}-0", clean_start=True, max_inflight=1000)
    bus.start(wait_s=30)
    try:
        return _publish_paced(bus, TrafficGenerator(plan, sensors, rate, plan.seed * 1009), count, rate, plan)
    finally:
        bus.stop()


def _publish_paced(
    bus: MqttBus, gen: TrafficGenerator, count: int, rate: float, plan: SimulationPlan
) -> SimulationCounts:
    pending: deque[tuple[PublishHandle, str | None]] = deque()
    done = {"valid": 0, "invalid": 0}
    by_class: dict[str, int] = {}

    def settle() -> None:
        while pending and pending[0][0].is_published():
            _handle, bad = pending.popleft()
            done["invalid" if bad else "valid"] += 1
            if bad:
                by_class[bad] = by_class.get(bad, 0) + 1

    t0 = time.monotonic()
    for i in range(count):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0.001:
            time.sleep(delay)
        topic, payload, bad = gen.message(i, time.time())
        pending.append((bus.publish(topic, payload, qos=1), bad))
        if len(pending) >= 512:
            settle()
    deadline = time.monotonic() + plan.ack_timeout_s
    while pending and time.monotonic() < deadline:
        settle()
        if pending:
            pending[0][0].wait(0.2)
    settle()
    if pending:
        log.error("%d messages were not acknowledged by the broker within %.0f s", len(pending), plan.ack_timeout_s)
        # an unacknowledged QoS 1 message may or may not have reached the broker: count it as neither
    return SimulationCounts(done["valid"], done["invalid"], len(pending), by_class, time.monotonic() - t0)


def run_simulation(plan: SimulationPlan) -> SimulationCounts:
    """Publish the plan's traffic (several processes for high rates) and return exact counts."""
    if not plan.sensors or plan.total == 0:
        return SimulationCounts(0, 0)
    workers = plan.processes or max(1, math.ceil(plan.rate / PER_PROCESS_RATE))
    workers = max(1, min(workers, len(plan.sensors)))
    groups = [plan.sensors[w::workers] for w in range(workers)]
    counts = _split(plan.total, [len(g) for g in groups])
    rates = [plan.rate * len(g) / len(plan.sensors) for g in groups]
    log.info(
        "simulating %d sensors at %.0f msg/s for %.0f s with %d publisher(s)",
        len(plan.sensors),
        plan.rate,
        plan.duration_s,
        workers,
    )
    if workers == 1 and plan.in_process:
        return publish_stream(plan, groups[0], counts[0], rates[0])
    return _run_processes(plan, groups, counts, rates)


def _split(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights`, exactly."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    for i in range(total - sum(shares)):
        shares[i % len(shares)] += 1
    return shares


def _run_processes(
    plan: SimulationPlan, groups: list[tuple[SimSensor, ...]], counts: list[int], rates: list[float]
) -> SimulationCounts:
    """One publisher process per group (`python -m ingest.simworker`), started together once all connected."""
    procs = []
    for worker, job in enumerate(zip(groups, counts, rates, strict=True)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.simworker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdin is not None
        pickle.dump((plan, *job, worker), proc.stdin)
        proc.stdin.flush()
        procs.append(proc)
    try:
        for proc in procs:  # each says "ready" once connected (or exits on failure)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"publisher process {proc.pid} failed to start (see its log above)")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        total = SimulationCounts(0, 0)
        for proc in procs:
            out, _ = proc.communicate(timeout=plan.duration_s + plan.ack_timeout_s + 60)
            if proc.returncode != 0 or not out.strip():
                raise RuntimeError(f"publisher process {proc.pid} exited with {proc.returncode}")
            data = json.loads(out.decode().strip().splitlines()[-1])
            total = total + SimulationCounts(
                data["valid"], data["invalid"], data["unacknowledged"], data["by_class"], data["elapsed_s"]
            )
        return total
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def worker_stdio() -> int:
    """Body of a publisher process: job from stdin (pickle), `ready`, wait for `go`, publish, counts as JSON."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    plan, sensors, count, rate, worker = pickle.load(stdin)  # our own parent process wrote it
    bus = MqttBus(plan.broker, f"qinghe-sim-{os.getpid()}-{worker}", clean_start=True, max_inflight=1000)
    bus.start(wait_s=30)
    try:
        stdout.write(b"ready\n")
        stdout.flush()
        if stdin.readline().strip() != b"go":
            return 1
        gen = TrafficGenerator(plan, sensors, rate, plan.seed * 1009 + worker)
        counts = _publish_paced(bus, gen, count, rate, plan)
    finally:
        bus.stop()
    result: dict[str, object] = {"valid": counts.valid, "invalid": counts.invalid}
    result |= {"unacknowledged": counts.unacknowledged, "by_class": counts.by_class, "elapsed_s": counts.elapsed_s}
    stdout.write((json.dumps(result) + "\n").encode())
    stdout.flush()
    return 0


def with_rate(plan: SimulationPlan, rate: float, duration_s: float) -> SimulationPlan:
    """The same plan at another rate and duration (for benchmarks)."""
    return replace(plan, rate=rate, duration_s=duration_s)
