"""The rules engine core: routes inputs to rule instances, runs their state machines, emits RuleSignals.

Pure: no sockets, no clock. Time is an argument (`now`); wake-ups (`for:` timers, silent sensors,
windows, schedules) are kept in a heap and run at their exact deadline, so the output depends only
on the inputs and their times: a replay of recorded traffic produces exactly what live processing did.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Any

from qinghe.contracts import EventType, ObjectEvent, RuleSignal, SensorKind, SensorReading
from rules.checkpoint import ChangeLog
from rules.compile import CompiledRule
from rules.correlate import Correlator
from rules.ingestion import Fields, adapt, ingest_event, ingest_reading
from rules.loader import RuleSet
from rules.machine import Transition, evaluate, next_wake, quiet
from rules.registry import Registry
from rules.signals import build_signal
from rules.state import Env, Instance, Phase

SWEEP_EVERY_S = 60.0
SENSOR_KINDS = frozenset(k.value for k in SensorKind)
InstanceKey = tuple[str, ...]
# rule, its instances, gap seconds, instance key, labels, the rule's fields for the reading's kind
Route = tuple[CompiledRule, dict[InstanceKey, "Instance"], float, InstanceKey, dict[str, str], Fields | None]
CorrRoute = tuple[CompiledRule, int, float]  # rule, correlation clause index, gap seconds
SensorRoutes = tuple[SensorKind, str, list[Route], list[CorrRoute]]  # for a sensor of this kind in this zone


@dataclass(frozen=True, slots=True)
class CameraUpdate:
    """A camera's health changed (from camera/{id}/status)."""

    camera_id: str
    state: str  # online | degraded | offline


Input = SensorReading | ObjectEvent | CameraUpdate | None  # None = just let time pass


class Engine:
    """All rule instances of one RuleSet, advanced by inputs and by time."""

    def __init__(self, ruleset: RuleSet, registry: Registry) -> None:
        self.ruleset = ruleset
        self.rules = ruleset.rules
        self.registry = registry
        self.instances: dict[str, dict[tuple[str, ...], Instance]] = {rid: {} for rid in self.rules}
        self.env = Env(0.0, {})
        self.now: float | None = None
        self.counters: Counter[str] = Counter()
        self.changes = ChangeLog()  # what an incremental checkpoint must save
        self.correlator = Correlator(registry)
        # (deadline, rule rank, key, rule id): ties at one deadline always resolve in the same order,
        # whatever the history (a restored engine pushes its wake-ups in a different order)
        self._heap: list[tuple[float, int, tuple[str, ...], str]] = []
        self._rank = {rid: i for i, rid in enumerate(self.rules)}
        self._routes: dict[str, SensorRoutes] = {}  # by sensor id; rebuilt after a reload
        self._last_sweep = 0.0
        self._index_rules()
        self._warm_routes()

    def _index_rules(self) -> None:
        """Rules by the zone their readings selector names (most rules name one), so routing a new sensor
        looks at a few candidates, not every rule."""
        self._by_zone: dict[str, list[CompiledRule]] = {}
        self._any_zone: list[CompiledRule] = []
        self._candidates: dict[str, list[CompiledRule]] = {}  # by zone: its rules and the any-zone ones, ranked
        for rule in self.rules.values():
            if rule.sensors is None:
                continue
            if rule.sensors.zones:
                for zone in rule.sensors.zones:
                    self._by_zone.setdefault(zone, []).append(rule)
            else:
                self._any_zone.append(rule)
        self._correlating = [r for r in self.rules.values() if any(c.sensors for c in r.correlations)]

    # ----- inputs ----------------------------------------------------------------------------------
    def step(self, item: Input, now: float) -> list[RuleSignal]:
        """Process one input (or none) at `now`; returns the signals it caused, in order."""
        out = self.advance(now)
        now = self.env.now
        if isinstance(item, SensorReading):
            out += self._on_reading(item, now)
        elif isinstance(item, ObjectEvent):
            out += self._on_event(item, now)
        elif isinstance(item, CameraUpdate):
            out += self._on_camera(item, now)
        return out

    def advance(self, now: float) -> list[RuleSignal]:
        """Run every wake-up due by `now`, each at its own deadline; time never goes backwards."""
        if self.now is None:
            self._start(now)
        assert self.now is not None
        if now < self.now:  # noqa: PLR1730 - once per input: no builtin call
            now = self.now
        out: list[RuleSignal] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _rank, key, rule_id = heapq.heappop(heap)
            inst = self.instances.get(rule_id, {}).get(key)
            if inst is None or inst.wake_at != deadline:
                continue  # superseded
            inst.wake_at = None
            self.env.now = deadline
            out += self._evaluate(self.rules[rule_id], inst)
        self.now = self.env.now = now
        if now - self._last_sweep >= SWEEP_EVERY_S:
            self.sweep(now)
        return out

    def next_wakeup(self) -> float | None:
        """The earliest pending deadline (the service sleeps until then)."""
        while self._heap:
            deadline, _rank, key, rule_id = self._heap[0]
            inst = self.instances.get(rule_id, {}).get(key)
            if inst is not None and inst.wake_at == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def _start(self, now: float) -> None:
        self.now = self.env.now = self._last_sweep = now
        for rule in self.rules.values():
            self._seed_deadman(rule, now)

    def _on_reading(self, reading: SensorReading, now: float) -> list[RuleSignal]:
        self.counters["readings"] += 1
        entry = self._routes.get(reading.sensor_id)
        if entry is None or entry[0] is not reading.kind or entry[1] != reading.zone:
            entry = self._routes[reading.sensor_id] = self._route(reading.sensor_id, reading.kind, reading.zone)
        out: list[RuleSignal] = []
        env = self.env
        for rule, instances, gap_s, key, labels, names in entry[2]:
            inst = instances.get(key) or self._instance(rule, key, dict(labels), now)
            if inst is None:
                continue
            ingest_reading(rule, inst, reading, names, now=now, gap_s=gap_s)
            if quiet(rule, inst, env):  # what _evaluate would conclude for a quiet instance, cheaper
                if not (inst.dirty or rule.quiet_unsaved):  # (last values only: the next reading restores them)
                    self.changes.touch(rule.id, inst)
                continue
            out += self._evaluate(rule, inst)
        for rule, index, gap_s in entry[3]:
            if self.correlator.observe_reading(rule, index, reading, self.env, gap_s):
                out += self._reevaluate_near(rule, index, reading.sensor_id)
        return out

    def _warm_routes(self) -> None:
        """Route every registered sensor now, so first readings do not pay for it (a registry of 10,000
        sensors takes a fraction of a second)."""
        for info in self.registry.sensors.values():
            if info.kind in SENSOR_KINDS:
                self._routes[info.id] = self._route(info.id, SensorKind(info.kind), info.zone)

    def _route(self, sensor_id: str, sensor_kind: SensorKind, zone: str) -> SensorRoutes:
        """The rules (and correlation clauses) the readings of a sensor of this kind in this zone go to."""
        info = self.registry.sensors.get(sensor_id)
        interval = info.expected_interval_s if info else 60.0
        kind = sensor_kind.value
        routes: list[Route] = []
        corr: list[CorrRoute] = []
        candidates = self._candidates.get(zone)
        if candidates is None:
            order = self._rank
            candidates = sorted(self._by_zone.get(zone, []) + self._any_zone, key=lambda r: order[r.id])
            self._candidates[zone] = candidates
        for rule in candidates:
            gap = rule.model.gap.after or rule.model.gap.factor * interval
            sensors = rule.sensors
            if (
                sensors is not None
                and (kind in rule.fields or rule.deadman)
                and sensors.matches(sensor_id, kind, zone, info)
            ):
                key, labels = rule.sensor_key(sensor_id, zone, kind)
                routes.append((rule, self.instances[rule.id], gap, key, labels, rule.fields.get(kind)))
        for rule in self._correlating:
            gap = rule.model.gap.after or rule.model.gap.factor * interval
            for index, clause in enumerate(rule.correlations):
                if clause.sensors is not None and clause.sensors.matches(sensor_id, kind, zone, info):
                    corr.append((rule, index, gap))
        return sensor_kind, zone, routes, corr

    def _on_event(self, event: ObjectEvent, now: float) -> list[RuleSignal]:
        self.counters["events"] += 1
        out: list[RuleSignal] = []
        for rule in self.rules.values():
            if rule.events is not None and rule.events.matches(event):
                key, labels = rule.event_key(event)
                inst = self._instance(rule, key, labels, now)
                if inst is None:
                    continue
                updated = ingest_event(rule, inst, event, now)
                out += self._evaluate(rule, inst, updated=updated and inst.phase is Phase.FIRING)
                if event.type is EventType.END and inst.phase is Phase.INACTIVE and "episode" in rule.key_fields:
                    self._drop(rule, inst)  # the episode is over and nothing is open
            for index, _clause in enumerate(rule.correlations):
                if self.correlator.observe_event(rule, index, event, now):
                    out += self._reevaluate_near(rule, index, event.camera_id)
        return out

    def _on_camera(self, update: CameraUpdate, now: float) -> list[RuleSignal]:
        if self.env.cameras.get(update.camera_id) == update.state:
            return []
        self.env.cameras[update.camera_id] = update.state
        out: list[RuleSignal] = []
        for rule in self.rules.values():
            if rule.camera_driven and self._camera_in_scope(rule, update.camera_id):
                labels = {"camera": update.camera_id}
                inst = self._instance(rule, (update.camera_id,), labels, now)
                if inst is not None:
                    inst.last_input = now
            for inst in list(self.instances[rule.id].values()):
                if inst.camera_id == update.camera_id:
                    out += self._evaluate(rule, inst)
        return out

    def _camera_in_scope(self, rule: CompiledRule, camera_id: str) -> bool:
        matcher = rule.events
        if matcher is None or (matcher.camera is not None and camera_id not in matcher.camera):
            return False
        camera = self.registry.cameras.get(camera_id)
        return not matcher.zone or (camera is not None and bool(matcher.zone & set(camera.zones)))

    # ----- instances -------------------------------------------------------------------------------
    def _instance(
        self, rule: CompiledRule, key: tuple[str, ...], labels: dict[str, str], now: float
    ) -> Instance | None:
        instances = self.instances[rule.id]
        inst = instances.get(key)
        if inst is not None:
            return inst
        if len(instances) >= rule.model.max_instances and not self._evict_one(rule):
            self.counters["instances_refused"] += 1
            return None
        inst = instances[key] = Instance(key, labels, len(rule.tiers), now)
        if "sensor" in labels:
            inst.location_key = ("sensor", labels["sensor"])
        elif inst.camera_id is not None:
            inst.location_key = ("camera", inst.camera_id)
        self.counters["instances_created"] += 1
        return inst

    def _evaluate(self, rule: CompiledRule, inst: Instance, updated: bool = False) -> list[RuleSignal]:
        if not inst.dirty:
            self.changes.touch(rule.id, inst)
        env = self.env
        boost = self.correlator.boost(rule, inst, env.now) if rule.correlations else 0
        transitions = evaluate(rule, inst, env, boost, updated)
        signals: list[RuleSignal] = []
        if transitions:
            signals = [self._signal(rule, inst, t) for t in transitions]
            if transitions[-1].name == "resolved":
                inst.evidence.clear()  # the next incident of this instance starts with its own evidence
        wake = next_wake(rule, inst, env)
        if wake != inst.wake_at:
            inst.wake_at = wake
            if wake is not None:
                heapq.heappush(self._heap, (wake, self._rank[rule.id], inst.key, rule.id))
        return signals

    def _signal(self, rule: CompiledRule, inst: Instance, transition: Transition) -> RuleSignal:
        self.counters[f"signals_{transition.status.value}"] += 1
        return build_signal(rule, inst, transition, self.env, self.registry)

    def _reevaluate_near(self, rule: CompiledRule, index: int, source: str) -> list[RuleSignal]:
        out: list[RuleSignal] = []
        for inst in list(self.instances[rule.id].values()):
            if inst.phase is Phase.FIRING and source in self.correlator.near(rule, index, inst):
                out += self._evaluate(rule, inst)
        return out

    def _seed_deadman(self, rule: CompiledRule, now: float) -> None:
        """Deadman rules watch registered sensors from the start, so one that never reports is noticed."""
        if not rule.deadman or rule.sensors is None:
            return
        for info in self.registry.sensors.values():
            if rule.sensors.matches(info.id, info.kind, info.zone, info):
                labels = {"sensor": info.id, "zone": info.zone, "kind": info.kind}
                key = tuple(labels.get(f, "") for f in rule.key_fields)
                if key not in self.instances[rule.id]:
                    inst = self._instance(rule, key, {f: labels[f] for f in rule.key_fields if f in labels}, now)
                    if inst is not None:
                        self.env.now = now
                        self._evaluate(rule, inst)

    def _drop(self, rule: CompiledRule, inst: Instance) -> None:
        self.instances[rule.id].pop(inst.key, None)
        self.changes.drop(rule.id, inst.key)
        inst.wake_at = None
        self.counters["instances_evicted"] += 1

    def _evictable(self, rule: CompiledRule, inst: Instance, now: float) -> bool:
        if inst.phase is not Phase.INACTIVE or rule.deadman or any(s is not None for s in inst.true_since):
            return False
        if inst.unknown and rule.model.gap.notify == "always":
            return False
        flapping = rule.model.flapping
        last_cycle = inst.last_cycle()
        if flapping is not None and last_cycle is not None and last_cycle > now - flapping.window:
            return False
        return now - inst.last_input > rule.horizon

    def _evict_one(self, rule: CompiledRule) -> bool:
        """Make room: drop the longest-idle inactive instance of the rule."""
        idle = [i for i in self.instances[rule.id].values() if i.phase is Phase.INACTIVE and not rule.deadman]
        if not idle:
            return False
        self._drop(rule, min(idle, key=lambda i: i.last_input))
        return True

    def sweep(self, now: float) -> None:
        """Evict idle instances and stale correlation state (every keyed state has an end)."""
        self._last_sweep = now
        for rule_id, instances in self.instances.items():
            rule = self.rules[rule_id]
            for inst in [i for i in instances.values() if self._evictable(rule, i, now)]:
                self._drop(rule, inst)
        self.correlator.sweep(now, self.rules)

    # ----- reload ----------------------------------------------------------------------------------
    def swap(self, ruleset: RuleSet, now: float) -> list[RuleSignal]:
        """Switch to new rules atomically: instances of unchanged or edited rules keep their state;
        open incidents of removed (or re-keyed) rules are resolved."""
        out = self.advance(now)
        old = self.rules
        removed = [
            rid for rid in old if rid not in ruleset.rules or old[rid].key_fields != ruleset.rules[rid].key_fields
        ]
        for rid in removed:
            reason = "rule removed" if rid not in ruleset.rules else "rule re-keyed (per changed)"
            out += self._close_all(old[rid], reason)
            self.changes.drop_rule(rid)
        changed = {rid for rid, r in ruleset.rules.items() if rid in old and old[rid].digest != r.digest}
        self.ruleset, self.rules = ruleset, ruleset.rules
        self._rank = {rid: i for i, rid in enumerate(self.rules)}
        self._index_rules()
        self._heap = [(t, self._rank[rid], key, rid) for t, _r, key, rid in self._heap if rid in self._rank]
        heapq.heapify(self._heap)
        self.instances = {rid: ({} if rid in removed else self.instances.get(rid, {})) for rid in self.rules}
        self._routes.clear()
        self.correlator.clear(changed | set(removed))
        self.changes.touch_all(self.instances)  # adapt() below may change any of them
        for rid, rule in self.rules.items():
            for inst in self.instances[rid].values():
                adapt(rule, inst)
                out += self._evaluate(rule, inst) if rid in changed else []
            self._seed_deadman(rule, now)
        return out

    def _close_all(self, rule: CompiledRule, reason: str) -> list[RuleSignal]:
        out = []
        for inst in self.instances.get(rule.id, {}).values():
            if inst.phase is Phase.FIRING:
                inst.phase = Phase.INACTIVE
                inst.reset_episode()
                out.append(self._signal(rule, inst, Transition("resolved", self.env.now, reason)))
        return out

    # ----- introspection and checkpoint ---------------------------------------------------------------
    def summary(self) -> dict[str, dict[str, int]]:
        """Per rule: instances, firing, pending, unknown, flapping."""
        out = {}
        for rule_id, instances in self.instances.items():
            values = list(instances.values())
            out[rule_id] = {
                "instances": len(values),
                "firing": sum(1 for i in values if i.phase is Phase.FIRING),
                "pending": sum(
                    1 for i in values if i.phase is Phase.INACTIVE and any(s is not None for s in i.true_since)
                ),
                "unknown": sum(1 for i in values if i.unknown),
                "flapping": sum(1 for i in values if i.flapping),
            }
        return out

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue after a restart (pending timers, open incidents, windows)."""
        data = self.snapshot_meta()
        data["instances"] = {rid: [i.to_json() for i in insts.values()] for rid, insts in self.instances.items()}
        return data

    def snapshot_meta(self) -> dict[str, Any]:
        """The snapshot without its instances (an incremental checkpoint saves those from `changes`)."""
        return {
            "version": 1,
            "now": self.now,
            "digests": {rid: r.digest for rid, r in self.rules.items()},
            "cameras": dict(self.env.cameras),
            "spikes": [[rid, index, dict(spikes)] for (rid, index), spikes in self.correlator.spikes.items()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Load a snapshot taken by `snapshot()` (instances of rules no longer loaded are dropped)."""
        if data.get("version") != 1:
            raise ValueError(f"unsupported checkpoint version {data.get('version')!r}")
        self.now = self.env.now = self._last_sweep = float(data["now"])
        self.env.cameras = dict(data["cameras"])
        for rid, items in data["instances"].items():
            rule = self.rules.get(rid)
            if rule is None:
                self.changes.drop_rule(rid)
                continue
            for item in items:
                inst = Instance.from_json(item, len(rule.tiers))
                if len(inst.key) != len(rule.key_fields):
                    self.changes.drop(rid, inst.key)
                    continue
                adapt(rule, inst)
                self.instances[rid][inst.key] = inst
                self._evaluate_wake_only(rule, inst)
        for rid, index, spikes in data.get("spikes", []):
            if rid in self.rules:
                self.correlator.spikes[(rid, int(index))] = {k: float(v) for k, v in spikes.items()}

    def _evaluate_wake_only(self, rule: CompiledRule, inst: Instance) -> None:
        wake = next_wake(rule, inst, self.env)
        inst.wake_at = wake
        if wake is not None:
            heapq.heappush(self._heap, (wake, self._rank[rule.id], inst.key, rule.id))
