"""Turn validated rule models into runtime rules: selector sets, condition trees, templates, key functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qinghe.contracts import Colour, ObjectEvent
from rules.calendar import Schedule
from rules.conditions import (
    AbsentTest,
    ActiveTest,
    AllOf,
    AnyOf,
    CameraStateTest,
    CountTest,
    EventMatcher,
    EventTest,
    Node,
    NotOf,
    ScheduleTest,
    ValueTest,
)
from rules.lang import ValueExpr, parse_value_expr
from rules.model import (
    AbsentCond,
    ActiveCond,
    AllCond,
    AnyCond,
    CameraStateCond,
    Condition,
    CorrelateModel,
    CountCond,
    EventCond,
    EventFilter,
    NotCond,
    ReadingSelector,
    RuleModel,
    ScheduleCond,
    ValueCond,
)
from rules.registry import Registry, SensorInfo
from rules.state import episode_of


class CompileError(ValueError):
    """A rule refers to something that does not exist (a schedule name); the loader maps it to a line."""


@dataclass(frozen=True, slots=True)
class SensorMatcher:
    """A compiled reading selector (sets; empty = any)."""

    kinds: frozenset[str] = frozenset()
    sensors: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    def matches(self, sensor_id: str, kind: str, zone: str, info: SensorInfo | None) -> bool:
        """Does a reading from this sensor pass the selector?"""
        if self.tags and (info is None or not (self.tags & info.tags)):
            return False
        return (
            (not self.kinds or kind in self.kinds)
            and (not self.sensors or sensor_id in self.sensors)
            and (not self.zones or zone in self.zones)
        )


@dataclass(frozen=True, slots=True)
class Tier:
    """A compiled tier."""

    colour: Colour
    node: Node
    for_s: float


@dataclass(frozen=True, slots=True)
class Correlation:
    """A compiled correlation clause."""

    name: str
    sensors: SensorMatcher | None
    events: EventMatcher | None
    spike: Node | None
    within_m: float
    within_s: float
    raise_: int
    series: dict[str, float]
    fields: dict[str, tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class CompiledRule:
    """A rule ready to run."""

    model: RuleModel
    source: str  # file:line
    sensors: SensorMatcher | None
    events: EventMatcher | None
    key_fields: tuple[str, ...]
    tiers: tuple[Tier, ...]
    resolve: Node | None
    resolve_for: float
    schedule: Schedule | None
    correlations: tuple[Correlation, ...]
    series: dict[str, float]  # series key -> retention seconds
    fields: dict[str, tuple[tuple[str, str], ...]]  # kind -> ((field, series key), ...)
    value_expr: ValueExpr | None
    time_driven: bool
    deadman: bool
    camera_driven: bool  # instances come from camera/{id}/status too (camera_state conditions)
    wakes_idle: bool = False  # an instance neither firing nor pending may still need a wake-up (time, gaps)
    quiet_tests: tuple[ValueTest, ...] | None = None  # set when every tier tests the newest value (machine.quiet)
    quiet_unsaved: bool = False  # a quiet reading only replaces newest values: checkpoints need not save it
    dedup_template: str = ""
    horizon: float = 3600.0  # an idle inactive instance older than this holds nothing worth keeping
    digest: str = ""

    @property
    def id(self) -> str:
        """The rule id."""
        return self.model.id

    def sensor_key(self, sensor_id: str, zone: str, kind: str) -> tuple[tuple[str, ...], dict[str, str]]:
        """Instance key and labels for the readings of a sensor."""
        labels = {"sensor": sensor_id, "zone": zone, "kind": kind}
        return tuple(labels.get(f, "") for f in self.key_fields), _key_labels(self.key_fields, labels)

    def event_key(self, event: ObjectEvent) -> tuple[tuple[str, ...], dict[str, str]]:
        """Instance key and labels for a camera event."""
        labels = {
            "camera": event.camera_id, "zone": event.zone, "episode": episode_of(event),
            "label": event.label, "analytic": event.analytic,
        }  # fmt: skip
        key_labels = _key_labels(self.key_fields, labels)
        if "episode" in self.key_fields or "camera" in self.key_fields:
            key_labels["camera"] = event.camera_id
        return tuple(labels.get(f, "") for f in self.key_fields), key_labels


def _key_labels(fields: tuple[str, ...], labels: Mapping[str, str]) -> dict[str, str]:
    return {f: labels[f] for f in fields if f in labels}


def compile_rule(rule: RuleModel, source: str, schedules: Mapping[str, Schedule], registry: Registry) -> CompiledRule:
    """Build the runtime form of one rule (raises CompileError for an unknown schedule)."""
    builder = _Builder(schedules, registry)
    default_value = parse_value_expr(rule.value) if rule.value else None
    builder.full_window = rule.full_window
    tiers = tuple(
        Tier(t.colour, builder.tier_node(t.threshold(), t.when, default_value), rule.for_ if t.for_ is None else t.for_)
        for t in rule.tiers
    )
    resolve: Node | None = None
    if rule.resolve is not None and (rule.resolve.when is not None or rule.resolve.threshold() is not None):
        resolve = builder.tier_node(rule.resolve.threshold(), rule.resolve.when, default_value)
    schedule = builder.schedule(rule.schedule) if rule.schedule else None
    correlations = tuple(builder.correlation(i, c) for i, c in enumerate(rule.correlate))
    nodes = [t.node for t in tiers] + ([resolve] if resolve else [])
    exprs = [e for n in nodes for e in n.series()]
    series = _retention(exprs)
    time_driven = any(n.time_driven() for n in nodes) or schedule is not None
    wakes_idle = time_driven or rule.gap.notify == "always"
    newest = [t.node for t in tiers if isinstance(t.node, ValueTest) and t.node.last_only]
    quiet = len(newest) == len(tiers) and schedule is None and not correlations and not wakes_idle
    return CompiledRule(
        model=rule,
        source=source,
        sensors=_sensor_matcher(rule.readings) if rule.readings is not None else None,
        events=builder.matcher(rule.events, default_types=()) if rule.events is not None else None,
        key_fields=tuple(rule.key_fields()),
        tiers=tiers,
        resolve=resolve,
        resolve_for=rule.resolve.for_ if rule.resolve else 0.0,
        schedule=schedule,
        correlations=correlations,
        series=series,
        fields=fields_of(series),
        value_expr=default_value or (exprs[0] if exprs else None),
        time_driven=time_driven,
        deadman=any(_has(n, AbsentTest) for n in nodes),
        camera_driven=any(_has(n, CameraStateTest) for n in nodes) and rule.key_fields() == ["camera"],
        wakes_idle=wakes_idle,
        quiet_tests=tuple(newest) if quiet else None,
        quiet_unsaved=quiet and all(keep <= 0 for keep in series.values()),
        dedup_template=rule.dedup_key or "{rule}:" + ":".join("{" + f + "}" for f in rule.key_fields() if f != "rule"),
        horizon=max([_window_span(nodes), rule.keep_firing_for, *(t.for_s for t in tiers)]) + 60.0,
    )


def _window_span(nodes: list[Node]) -> float:
    """The longest window any condition looks back over."""
    spans = [0.0]
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ValueTest):
            spans.append(node.expr.window_s)
        elif isinstance(node, CountTest):
            spans.append(node.window_s)
        elif isinstance(node, AllOf):
            stack.extend(node.children)
    return max(spans)


def fields_of(series: Mapping[str, float]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Series keys by the sensor kind that feeds them: kind -> ((field, key), ...)."""
    fields: dict[str, list[tuple[str, str]]] = {}
    for key in series:
        kind, name = key.split(".", 1)
        fields.setdefault(kind, []).append((name, key))
    return {k: tuple(v) for k, v in fields.items()}


def _retention(exprs: list[ValueExpr]) -> dict[str, float]:
    series: dict[str, float] = {}
    for expr in exprs:
        series[expr.series] = max(series.get(expr.series, 0.0), expr.window_s)
    return series


def _has(node: Node, kind: type[Node]) -> bool:
    if isinstance(node, kind):
        return True
    return isinstance(node, AllOf) and any(_has(c, kind) for c in node.children)


def _sensor_matcher(selector: ReadingSelector) -> SensorMatcher:
    return SensorMatcher(
        frozenset(selector.kind), frozenset(selector.sensor), frozenset(selector.zone), frozenset(selector.tag)
    )


class _Builder:
    """Compiles condition models with the file's schedules and the registry at hand."""

    def __init__(self, schedules: Mapping[str, Schedule], registry: Registry) -> None:
        self.schedules = schedules
        self.registry = registry
        self.full_window = False  # the rule's, for its `value` shorthand

    def schedule(self, name: str) -> Schedule:
        """A schedule of the file by name (CompileError if unknown)."""
        if name not in self.schedules:
            known = ", ".join(sorted(self.schedules)) or "none defined in this file"
            raise CompileError(f"unknown schedule {name!r} (known: {known})")
        return self.schedules[name]

    def tier_node(self, threshold: tuple[str, float] | None, when: Condition | None, value: ValueExpr | None) -> Node:
        """The condition of a tier or resolve: the threshold on `value`, or `when`."""
        if threshold is not None:
            assert value is not None, "checked by the model: thresholds need `value`"
            return ValueTest(value, threshold[0], threshold[1], self.full_window)
        assert when is not None, "checked by the model: a tier has a threshold or `when`"
        return self.node(when)

    def node(self, cond: Condition) -> Node:
        """Compile one condition model into its runtime node."""
        if isinstance(cond, ValueCond):
            op, threshold = cond.op()
            return ValueTest(parse_value_expr(cond.value), op, threshold, cond.full_window)
        if isinstance(cond, EventCond):
            return EventTest(self.matcher(cond.event, default_types=("start", "update")))
        if isinstance(cond, CountCond):
            op, threshold = cond.op()
            return CountTest(self.matcher(cond.count, default_types=("start",)), cond.window, op, threshold)
        if isinstance(cond, ActiveCond):
            op, threshold = cond.op()
            return ActiveTest(self.matcher(cond.active, default_types=()), op, threshold)
        if isinstance(cond, AbsentCond):
            return AbsentTest(cond.absent)
        if isinstance(cond, ScheduleCond):
            return ScheduleTest(self.schedule(cond.schedule))
        if isinstance(cond, CameraStateCond):
            return CameraStateTest(frozenset(cond.camera_state))
        if isinstance(cond, AllCond):
            return AllOf([self.node(c) for c in cond.all])
        if isinstance(cond, AnyCond):
            return AnyOf([self.node(c) for c in cond.any])
        assert isinstance(cond, NotCond)
        return NotOf([self.node(cond.not_)])

    def matcher(self, flt: EventFilter, default_types: tuple[str, ...]) -> EventMatcher:
        """Compile an event filter; camera kinds become the set of cameras of those kinds."""
        cameras: frozenset[str] | None = frozenset(flt.camera) if flt.camera else None
        if flt.camera_kind:
            of_kind = {c.id for c in self.registry.cameras.values() if c.kind in flt.camera_kind}
            cameras = frozenset(of_kind if cameras is None else cameras & of_kind)
        types = frozenset(flt.type or default_types)
        return EventMatcher(
            analytic=frozenset(flt.analytic),
            label=frozenset(flt.label),
            camera=cameras,
            zone=frozenset(flt.zone),
            type=types,
            phase=frozenset(flt.phase),
            outcome=frozenset(flt.outcome),
            min_score=flt.min_score,
            text=_filter_text(flt, types),
        )

    def correlation(self, index: int, model: CorrelateModel) -> Correlation:
        """Compile one correlation clause."""
        spike = self.node(model.when) if model.when is not None else None
        return Correlation(
            name=model.name or f"correlate[{index}]",
            sensors=_sensor_matcher(model.readings) if model.readings is not None else None,
            events=self.matcher(model.events, default_types=("start", "update")) if model.events is not None else None,
            spike=spike,
            within_m=model.within_m,
            within_s=model.within,
            raise_=model.raise_,
            series=(series := _retention(spike.series()) if spike is not None else {}),
            fields=fields_of(series),
        )


def _filter_text(flt: EventFilter, types: frozenset[str]) -> str:
    parts = [
        f"{name}={'|'.join(values)}"
        for name in ("analytic", "label", "camera", "camera_kind", "zone", "phase", "outcome")
        if (values := getattr(flt, name))
    ]
    if types and flt.type:
        parts.append(f"type={'|'.join(sorted(types))}")
    if flt.min_score is not None:
        parts.append(f"score>={flt.min_score:g}")
    return " ".join(parts) or "any event"
