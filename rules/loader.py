"""Load rule files: parse with line numbers, validate, cross-check against the registry, compile.

Every problem in every file is collected and raised together as one ConfigError
(`file:line: key: message`), so a broken set of files is never half-loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qinghe.config import validate_document
from qinghe.yamlload import ConfigError, ConfigIssue, Loc, YamlDocument, load_yaml_file
from rules.calendar import CalendarModel, DayCalendar, Schedule, load_calendar
from rules.compile import CompiledRule, CompileError, compile_rule
from rules.model import (
    AllCond,
    AnyCond,
    CorrelateModel,
    EventFilter,
    NotCond,
    ReadingSelector,
    RuleFileModel,
    RuleModel,
    ScheduleCond,
    VoiceAction,
    rule_problems,
)
from rules.registry import Registry


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """One validated rule file."""

    path: str
    doc: YamlDocument
    model: RuleFileModel
    schedules: dict[str, Schedule]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The compiled rules of a set of files, swapped into the engine as a whole."""

    rules: dict[str, CompiledRule] = field(default_factory=dict)
    files: tuple[LoadedFile, ...] = ()
    digest: str = ""

    def summary(self) -> str:
        """e.g. `12 rules from 6 files`."""
        return f"{len(self.rules)} rules from {len(self.files)} files"


def registry_checks(registry: Registry | None) -> list[object]:
    """Cross-reference checks of a rule file against the registry (none without a registry)."""
    if registry is None:
        return []

    def check(model: RuleFileModel) -> Iterable[tuple[Loc, str]]:
        for i, rule in enumerate(model.rules):
            yield from _rule_refs(rule, ("rules", i), registry)

    return [check]


def _rule_refs(rule: RuleModel, loc: Loc, registry: Registry) -> Iterator[tuple[Loc, str]]:
    if rule.readings is not None:
        yield from _selector_refs(rule.readings, (*loc, "readings"), registry)
    if rule.events is not None:
        yield from _filter_refs(rule.events, (*loc, "events"), registry)
    for i, corr in enumerate(rule.correlate):
        yield from _correlate_refs(corr, (*loc, "correlate", i), registry)
    for i, action in enumerate(rule.actions):
        if isinstance(action, VoiceAction) and action.speaker and action.speaker not in registry.speakers():
            yield (*loc, "actions", i, "speaker"), f"unknown speaker {action.speaker!r} (no camera names it)"
    for cloc, flt in _condition_filters(rule, loc):
        yield from _filter_refs(flt, cloc, registry)


def _correlate_refs(corr: CorrelateModel, loc: Loc, registry: Registry) -> Iterator[tuple[Loc, str]]:
    if corr.readings is not None:
        yield from _selector_refs(corr.readings, (*loc, "readings"), registry)
    if corr.events is not None:
        yield from _filter_refs(corr.events, (*loc, "events"), registry)


def _selector_refs(sel: ReadingSelector, loc: Loc, registry: Registry) -> Iterator[tuple[Loc, str]]:
    zones, tags = registry.zones(), registry.tags()
    for i, sensor in enumerate(sel.sensor):
        if sensor not in registry.sensors:
            yield (*loc, "sensor", i), f"unknown sensor {sensor!r} (not in the sensor registry)"
    for i, zone in enumerate(sel.zone):
        if zone not in zones:
            yield (*loc, "zone", i), f"unknown zone {zone!r} (no sensor or camera is in it)"
    for i, tag in enumerate(sel.tag):
        if tag not in tags:
            yield (*loc, "tag", i), f"unknown tag {tag!r} (no sensor carries it)"


def _filter_refs(flt: EventFilter, loc: Loc, registry: Registry) -> Iterator[tuple[Loc, str]]:
    zones = registry.zones()
    for i, camera in enumerate(flt.camera):
        if camera not in registry.cameras:
            yield (*loc, "camera", i), f"unknown camera {camera!r} (not in the camera registry)"
    for i, zone in enumerate(flt.zone):
        if zone not in zones:
            yield (*loc, "zone", i), f"unknown zone {zone!r} (no sensor or camera is in it)"
    for i, kind in enumerate(flt.camera_kind):
        if kind not in {"generic", "road_warden", "ar_tower", "thermal"}:
            yield (*loc, "camera_kind", i), f"unknown camera kind {kind!r} (generic, road_warden, ar_tower, thermal)"


def walk_conditions(rule: RuleModel, loc: Loc) -> Iterator[tuple[Loc, object]]:
    """Every condition node of a rule (tiers, resolve, correlation spikes), with its location."""
    roots: list[tuple[Loc, object]] = [((*loc, "tiers", i, "when"), t.when) for i, t in enumerate(rule.tiers)]
    if rule.resolve is not None:
        roots.append(((*loc, "resolve", "when"), rule.resolve.when))
    roots += [((*loc, "correlate", i, "when"), c.when) for i, c in enumerate(rule.correlate)]
    stack = [r for r in roots if r[1] is not None]
    while stack:
        cloc, cond = stack.pop()
        yield cloc, cond
        if isinstance(cond, AllCond):
            stack += [((*cloc, "all", i), c) for i, c in enumerate(cond.all)]
        elif isinstance(cond, AnyCond):
            stack += [((*cloc, "any", i), c) for i, c in enumerate(cond.any)]
        elif isinstance(cond, NotCond):
            stack.append(((*cloc, "not"), cond.not_))


def _condition_filters(rule: RuleModel, loc: Loc) -> Iterator[tuple[Loc, EventFilter]]:
    """Every event filter inside the rule's conditions, with its location."""
    for cloc, cond in walk_conditions(rule, loc):
        for key in ("event", "count", "active"):
            flt = getattr(cond, key, None)
            if isinstance(flt, EventFilter):
                yield (*cloc, key), flt


def _schedule_refs(model: RuleFileModel) -> Iterator[tuple[Loc, str]]:
    known = ", ".join(sorted(model.schedules)) or "none defined in this file"
    for i, rule in enumerate(model.rules):
        if rule.schedule is not None and rule.schedule not in model.schedules:
            yield ("rules", i, "schedule"), f"unknown schedule {rule.schedule!r} (known: {known})"
        for cloc, cond in walk_conditions(rule, ("rules", i)):
            if isinstance(cond, ScheduleCond) and cond.schedule not in model.schedules:
                yield (*cloc, "schedule"), f"unknown schedule {cond.schedule!r} (known: {known})"


def _model_checks(model: RuleFileModel) -> Iterable[tuple[Loc, str]]:
    seen: dict[str, int] = {}
    for i, rule in enumerate(model.rules):
        if rule.id in seen:
            yield ("rules", i, "id"), f"duplicate rule id {rule.id!r} (also rules[{seen[rule.id]}])"
        seen.setdefault(rule.id, i)
        yield from rule_problems(rule, ("rules", i))
    yield from _schedule_refs(model)


def load_rule_file(path: str | Path, registry: Registry | None) -> LoadedFile:
    """Parse, validate and cross-check one rule file (ConfigError on any problem)."""
    doc = load_yaml_file(path)
    checks = [_model_checks, *registry_checks(registry)]
    model = validate_document(doc, RuleFileModel, checks)  # type: ignore[arg-type]
    calendars = _load_calendars(doc, model)
    day_calendar = DayCalendar.merge(calendars)
    schedules = {
        name: Schedule.compile(name, sched, model.timezone, day_calendar) for name, sched in model.schedules.items()
    }
    return LoadedFile(str(path), doc, model, schedules)


def _load_calendars(doc: YamlDocument, model: RuleFileModel) -> list[CalendarModel]:
    base = Path(doc.path).resolve().parent
    calendars, issues = [], []
    for i, name in enumerate(model.calendars):
        path = Path(name) if Path(name).is_absolute() else base / name
        try:
            calendars.append(load_calendar(path))
        except ConfigError as exc:
            first = exc.issues[0]
            issues.append(doc.issue(("calendars", i), f"calendar {name}: {first.file}:{first.line}: {first.message}"))
    if issues:
        raise ConfigError(issues)
    return calendars


def compile_files(files: Sequence[LoadedFile], registry: Registry) -> RuleSet:
    """Compile validated files into one RuleSet; rule ids must be unique across files."""
    rules: dict[str, CompiledRule] = {}
    where: dict[str, str] = {}
    issues: list[ConfigIssue] = []
    for loaded in files:
        for i, rule in enumerate(loaded.model.rules):
            line = loaded.doc.line_of(("rules", i))
            if rule.id in where:
                issues.append(
                    loaded.doc.issue(("rules", i, "id"), f"rule id {rule.id!r} is also defined at {where[rule.id]}")
                )
                continue
            where[rule.id] = f"{display_path(loaded.path)}:{line}"
            if not rule.enabled:
                continue
            try:
                compiled = compile_rule(rule, where[rule.id], loaded.schedules, registry)
            except CompileError as exc:
                issues.append(loaded.doc.issue(("rules", i), str(exc)))
                continue
            compiled.digest = _digest(rule)
            rules[rule.id] = compiled
    if issues:
        raise ConfigError(issues)
    digest = hashlib.sha256("".join(f"{k}={r.digest};" for k, r in sorted(rules.items())).encode()).hexdigest()[:16]
    return RuleSet(rules, tuple(files), digest)


def display_path(path: str) -> str:
    """A path as short as it can be written: relative to the working directory when inside it."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def _digest(rule: RuleModel) -> str:
    text = json.dumps(rule.model_dump(mode="json", by_alias=True), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_rules(paths: Sequence[str | Path], registry: Registry, *, check_refs: bool = True) -> RuleSet:
    """Load, validate and compile every file; one ConfigError listing every problem in every file."""
    loaded: list[LoadedFile] = []
    issues: list[ConfigIssue] = []
    for path in paths:
        try:
            loaded.append(load_rule_file(path, registry if check_refs else None))
        except ConfigError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ConfigError(issues)
    return compile_files(loaded, registry)
