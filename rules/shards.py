"""Scaling out: the rules service split into worker processes, each owning a disjoint group of zones.

One paho consumer tops out near 45k msg/s whatever the rules do, so a busy site runs several workers.
MQTT cannot hash-partition a wildcard subscription, so each worker subscribes to the topics of the
sensors and cameras it owns. Zones are grouped so that everything one rule instance needs lands in
one worker: a camera covering two zones joins them, and so do sources within a correlation radius.
Rules whose state spans zones (per: rule, kind, label or analytic alone) cannot be split; the pool
then refuses to start and names them.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import zlib
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path

from qinghe.central_config import CentralConfig
from qinghe.clock import SystemClock
from qinghe.yamlload import ConfigError, ConfigIssue
from rules.correlate import sources_near
from rules.loader import RuleSet
from rules.registry import Registry

log = logging.getLogger(__name__)

ZONE_LOCAL_KEYS = frozenset({"sensor", "zone", "camera", "episode"})
READY_TIMEOUT_S = 120.0  # how long a worker waits for the others before connecting alone


@dataclass(frozen=True, slots=True)
class Shard:
    """What one worker owns."""

    index: int
    count: int
    sensors: frozenset[str]
    cameras: frozenset[str]

    @property
    def name(self) -> str:
        """e.g. `2of4`, used in client ids and state file names."""
        return f"{self.index + 1}of{self.count}"


class _Groups:
    """Union-find over zones."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, zone: str) -> str:
        """The representative zone of the group `zone` is in."""
        parent = self.parent.setdefault(zone, zone)
        if parent != zone:
            parent = self.parent[zone] = self.find(parent)
        return parent

    def join(self, a: str, b: str) -> None:
        """Put two zones in one group."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def unshardable(ruleset: RuleSet) -> list[str]:
    """Rules whose instances can span zones (they need every input in one process)."""
    return sorted(rid for rid, rule in ruleset.rules.items() if not set(rule.key_fields) & ZONE_LOCAL_KEYS)


def zone_groups(registry: Registry, ruleset: RuleSet) -> _Groups:
    """Zones that must share a worker: cameras over several zones, sources within correlation radii."""
    groups = _Groups()
    for sensor in registry.sensors.values():
        groups.find(sensor.zone)
    for camera in registry.cameras.values():
        for zone in camera.zones[1:]:
            groups.join(camera.zones[0], zone)
    for rule in ruleset.rules.values():
        for clause in rule.correlations:
            anchors = [("sensor", s.id, s.zone) for s in registry.sensors.values() if rule.sensors is not None
                       and rule.sensors.matches(s.id, s.kind, s.zone, s)]  # fmt: skip
            if rule.events is not None:
                anchors += [("camera", c.id, c.zones[0]) for c in registry.cameras.values() if c.zones]
            for kind, ident, zone in anchors:
                for source in sources_near(registry, clause, (kind, ident)):
                    groups.join(zone, _zone_of(registry, source))
    return groups


def _zone_of(registry: Registry, source: str) -> str:
    if source in registry.sensors:
        return registry.sensors[source].zone
    camera = registry.cameras[source]
    return camera.zones[0] if camera.zones else ""


def plan(registry: Registry, ruleset: RuleSet, workers: int) -> list[Shard]:
    """Split sensors and cameras over `workers` shards by zone group; ConfigError if the rules forbid it."""
    blocked = unshardable(ruleset)
    if blocked:
        issue = ConfigIssue("rules", 1, "rules.workers", f"rules {', '.join(blocked)} keep state across zones "
                            "(per: rule, kind, label or analytic): run them with workers: 1")  # fmt: skip
        raise ConfigError([issue])
    groups = zone_groups(registry, ruleset)

    def shard_of(zone: str) -> int:
        return zlib.crc32(groups.find(zone).encode()) % workers

    sensors: list[set[str]] = [set() for _ in range(workers)]
    cameras: list[set[str]] = [set() for _ in range(workers)]
    for sensor in registry.sensors.values():
        sensors[shard_of(sensor.zone)].add(sensor.id)
    for camera in registry.cameras.values():
        cameras[shard_of(camera.zones[0] if camera.zones else "")].add(camera.id)
    return [Shard(i, workers, frozenset(sensors[i]), frozenset(cameras[i])) for i in range(workers)]


def restrict(registry: Registry, shard: Shard) -> Registry:
    """The part of the registry one worker sees (its deadman rules watch only its sensors)."""
    return Registry(
        {k: v for k, v in registry.sensors.items() if k in shard.sensors},
        {k: v for k, v in registry.cameras.items() if k in shard.cameras},
    )


def _worker_main(config: CentralConfig, config_dir: Path, shard: Shard, stop: Event, ready: Barrier) -> None:
    """Entry point of a worker process: load rules and state, wait for the others, then connect."""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s rules[{shard.name}] %(name)s: %(message)s"
    )
    from rules.service import RulesService

    service = RulesService(config, config_dir, SystemClock(), subscribe_readings=True, shard=shard)
    try:  # loading takes seconds: connecting together, the workers share a backlog from the start
        ready.wait(READY_TIMEOUT_S)
    except threading.BrokenBarrierError:
        log.warning("not every rules worker was ready within %.0f s; connecting anyway", READY_TIMEOUT_S)
    service.start()
    stop.wait()
    service.stop()


class WorkerPool:
    """Runs one RulesService per shard in its own process (spawned, so nothing is shared by accident)."""

    def __init__(self, config: CentralConfig, config_dir: Path, shards: list[Shard]) -> None:
        self.config, self.config_dir, self.shards = config, config_dir, shards
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._ready = self._context.Barrier(len(shards))
        self._processes: list[multiprocessing.process.BaseProcess] = []

    def start(self) -> None:
        """Start every worker."""
        for shard in self.shards:
            process = self._context.Process(
                target=_worker_main,
                args=(self.config, self.config_dir, shard, self._stop, self._ready),
                name=f"rules-{shard.name}",
            )
            process.start()
            self._processes.append(process)
        owned = ", ".join(f"{s.name}: {len(s.sensors)} sensors, {len(s.cameras)} cameras" for s in self.shards)
        log.info("rules: %d workers started (%s)", len(self.shards), owned)

    def alive(self) -> int:
        """Workers still running."""
        return sum(1 for p in self._processes if p.is_alive())

    def stop(self, timeout_s: float = 20.0) -> None:
        """Ask every worker to stop (they checkpoint and flush), then reap them."""
        self._stop.set()
        for process in self._processes:
            process.join(timeout_s)
            if process.is_alive():
                log.warning("rules worker %s did not stop in %.0f s; terminating", process.name, timeout_s)
                process.terminate()
                process.join(5)
        self._processes.clear()
