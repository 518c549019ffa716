"""Cross-source correlation: recent spikes of nearby sensors or cameras raise an instance's colour."""

from __future__ import annotations

from dataclasses import dataclass, field

from qinghe.contracts import ObjectEvent, SensorReading, SourceRef
from rules.compile import CompiledRule, Correlation
from rules.ingestion import ingest_values
from rules.machine import EPS
from rules.registry import Registry, distance_m
from rules.state import Env, Instance

ClauseKey = tuple[str, int]  # (rule id, clause index)


@dataclass(slots=True)
class Correlator:
    """Remembers when each correlated source last spiked, and which sources are near which instance."""

    registry: Registry
    spikes: dict[ClauseKey, dict[str, float]] = field(default_factory=dict)  # source id -> last spike time
    probes: dict[ClauseKey, dict[str, Instance]] = field(default_factory=dict)  # per-sensor spike series
    _near: dict[tuple[str, int, tuple[str, str]], dict[str, float]] = field(default_factory=dict)

    def clear(self, rule_ids: set[str] | None = None) -> None:
        """Forget state of these rules (all when None), e.g. after a reload changed them."""
        for store in (self.spikes, self.probes):
            for key in [k for k in store if rule_ids is None or k[0] in rule_ids]:
                del store[key]
        self._near = {k: v for k, v in self._near.items() if rule_ids is not None and k[0] not in rule_ids}

    def observe_reading(self, rule: CompiledRule, index: int, reading: SensorReading, env: Env, gap_s: float) -> bool:
        """Feed a reading to a readings clause; True if it is a spike now."""
        clause = rule.correlations[index]
        assert clause.spike is not None
        probes = self.probes.setdefault((rule.id, index), {})
        probe = probes.get(reading.sensor_id)
        if probe is None:
            labels = {"sensor": reading.sensor_id, "zone": reading.zone}
            probe = probes[reading.sensor_id] = Instance((reading.sensor_id,), labels, 0, env.now)
        ingest_values(probe, clause.fields, clause.series, reading, now=env.now, gap_s=gap_s)
        if clause.spike.eval(probe, env) is True:
            self.spikes.setdefault((rule.id, index), {})[reading.sensor_id] = env.now
            return True
        return False

    def observe_event(self, rule: CompiledRule, index: int, event: ObjectEvent, now: float) -> bool:
        """Feed a camera event to an events clause; True if it matches (the camera "spiked")."""
        clause = rule.correlations[index]
        if clause.events is None or not clause.events.matches(event):
            return False
        self.spikes.setdefault((rule.id, index), {})[event.camera_id] = now
        return True

    def boost(self, rule: CompiledRule, inst: Instance, now: float) -> int:
        """The colour levels recent nearby spikes add now; records the corroborating source on `inst`."""
        best = 0
        for index, clause in enumerate(rule.correlations):
            spikes = self.spikes.get((rule.id, index))
            if not spikes or clause.raise_ <= best:
                continue
            for source, metres in self.near(rule, index, inst).items():
                at = spikes.get(source)
                if at is not None and now - at <= clause.within_s + EPS:
                    best = clause.raise_
                    kind = "reading" if clause.sensors is not None else "event"
                    inst.add_source(
                        SourceRef(kind, source, at, f"correlated {clause.name}: {source} at {metres:.0f} m",
                                  camera_id=source if kind == "event" else None,
                                  sensor_id=source if kind == "reading" else None)
                    )  # fmt: skip
                    break
        return best

    def near(self, rule: CompiledRule, index: int, inst: Instance) -> dict[str, float]:
        """Sources of a clause within its radius of the instance (same zone when it has no location)."""
        anchor = inst.location_key or ("zone", inst.labels.get("zone", ""))
        key = (rule.id, index, anchor)
        found = self._near.get(key)
        if found is None:
            found = self._near[key] = self._compute_near(rule.correlations[index], anchor)
        return found

    def _compute_near(self, clause: Correlation, anchor: tuple[str, str]) -> dict[str, float]:
        return sources_near(self.registry, clause, anchor)

    def sweep(self, now: float, rules: dict[str, CompiledRule]) -> None:
        """Drop spikes older than their window and probes of sensors long silent."""
        for (rule_id, index), spikes in list(self.spikes.items()):
            rule = rules.get(rule_id)
            if rule is None or index >= len(rule.correlations):
                del self.spikes[(rule_id, index)]
                continue
            within = rule.correlations[index].within_s
            for source in [s for s, t in spikes.items() if now - t > within]:
                del spikes[source]
        for (rule_id, index), probes in list(self.probes.items()):
            rule = rules.get(rule_id)
            if rule is None or index >= len(rule.correlations):
                del self.probes[(rule_id, index)]
                continue
            keep = max([*rule.correlations[index].series.values(), rule.correlations[index].within_s]) + 60
            for sensor in [s for s, p in probes.items() if now - p.last_input > keep]:
                del probes[sensor]


def sources_near(registry: Registry, clause: Correlation, anchor: tuple[str, str]) -> dict[str, float]:
    """Source ids of a clause (sensors or cameras) within its radius of an anchor, with their distance.

    An anchor is ("sensor", id), ("camera", id), or ("zone", name) for instances without a location,
    which correlate with the sources in the same zone.
    """
    here = registry.location_of(*anchor) if anchor[0] != "zone" else None
    zone = anchor[1] if anchor[0] == "zone" else None
    out: dict[str, float] = {}
    if clause.sensors is not None:
        for s in registry.sensors.values():
            if not clause.sensors.matches(s.id, s.kind, s.zone, s):
                continue
            if here is not None and s.location is not None:
                if (d := distance_m(here, s.location)) <= clause.within_m:
                    out[s.id] = d
            elif zone is not None and s.zone == zone:
                out[s.id] = 0.0
        return out
    assert clause.events is not None
    for c in registry.cameras.values():
        if clause.events.camera is not None and c.id not in clause.events.camera:
            continue
        if here is not None and c.location is not None:
            if (d := distance_m(here, c.location)) <= clause.within_m:
                out[c.id] = d
        elif zone is not None and zone in c.zones:
            out[c.id] = 0.0
    return out
