"""Run rule unit-test files: build the timeline, drive a fresh engine, compare signals, print a diff."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qinghe.contracts import (
    EventType,
    GeoPoint,
    ObjectEvent,
    RuleSignal,
    SensorKind,
    SensorReading,
    SignalStatus,
    SnapshotRef,
)
from qinghe.yamlload import ConfigError, ConfigIssue, YamlDocument, load_yaml_file
from rules.engine import CameraUpdate, Engine, Input
from rules.lang import format_duration
from rules.lint import load_registry
from rules.loader import load_rules
from rules.registry import CameraInfo, Registry, SensorInfo
from rules.testfile import EventSpec, Expected, RuleTest, RuleTestFile, expand_series, load_test_file, parse_time

DEFAULT_TAIL_S = 600.0


@dataclass(slots=True)
class TestOutcome:
    """The result of one test: passed or not, what happened, and the diff when it failed."""

    name: str
    ok: bool
    signals: list[RuleSignal] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)


def run_test_file(path: str | Path) -> list[TestOutcome]:
    """Run every test of a file; ConfigError if the file, its registry or its rule files are broken."""
    model = load_test_file(path)
    base = Path(path).resolve().parent
    registry = _registry(model, base)
    ruleset = load_rules([_resolve(base, name) for name in model.rule_files], registry)
    doc = load_yaml_file(path)
    outcomes = []
    for index, test in enumerate(model.tests):
        timeline = build_timeline(model, test, registry, _Issues(doc, index))
        start = parse_time(test.start or model.start)
        engine = Engine(ruleset, registry)
        signals: list[RuleSignal] = []
        for ts, _order, item in timeline:
            signals += engine.step(item, ts)
        last = timeline[-1][0] if timeline else start
        until = start + test.until if test.until is not None else last + DEFAULT_TAIL_S
        signals += engine.advance(max(until, last))
        diff = compare(test, signals, start)
        outcomes.append(TestOutcome(test.name, not any(line[:1] in "+-" for line in diff), signals, diff))
    return outcomes


def _resolve(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _registry(model: RuleTestFile, base: Path) -> Registry:
    registry = load_registry(_resolve(base, model.config)) if model.config else Registry()
    sensors = dict(registry.sensors)
    for s in model.sensors:
        location = GeoPoint(s.location.lat, s.location.lon) if s.location else None
        sensors[s.id] = SensorInfo(s.id, s.kind.value, s.zone, location, s.expected_interval_s, frozenset(), s.name)
    cameras = dict(registry.cameras)
    for c in model.cameras:
        location = GeoPoint(c.location.lat, c.location.lon) if c.location else None
        cameras[c.id] = CameraInfo(c.id, c.kind, tuple(c.zones), location, c.speaker_id)
    return Registry(sensors, cameras)


Timeline = list[tuple[float, int, Input]]


@dataclass(frozen=True, slots=True)
class _Issues:
    """Builds ConfigIssues located inside test number `index` of the file."""

    doc: YamlDocument
    index: int

    def __call__(self, loc: tuple[str | int, ...], message: str) -> ConfigIssue:
        return self.doc.issue(("tests", self.index, *loc), message)


def build_timeline(
    model: RuleTestFile, test: RuleTest, registry: Registry, issue: Callable[[tuple[str | int, ...], str], ConfigIssue]
) -> Timeline:
    """Every input of a test with its time, in time order (listing order breaks ties)."""
    start = parse_time(test.start or model.start)
    items: Timeline = []
    problems: list[ConfigIssue] = []
    for j, series in enumerate(test.readings):
        info = registry.sensors.get(series.sensor)
        if info is None:
            problems.append(issue(("readings", j, "sensor"), f"unknown sensor {series.sensor!r}"))
            continue
        step = series.interval or test.interval or model.interval
        columns = {name: expand_series(text) for name, text in series.values.items()}
        for k in range(max(len(c) for c in columns.values())):
            values = {n: v for n, c in columns.items() if k < len(c) and (v := c[k]) is not None}
            if values:
                ts = start + series.at + k * step
                reading = SensorReading(info.id, SensorKind(info.kind), info.zone, ts, values, None, info.location)
                items.append((ts, len(items), reading))
    for j, spec in enumerate(test.events):
        camera = registry.cameras.get(spec.camera)
        if camera is None:
            problems.append(issue(("events", j, "camera"), f"unknown camera {spec.camera!r}"))
            continue
        items.append((start + spec.at, len(items), _event(test, j, spec, camera, start)))
    for status in test.camera_status:
        items.append((start + status.at, len(items), CameraUpdate(status.camera, status.state)))
    if problems:
        raise ConfigError(problems)
    items.sort(key=lambda item: (item[0], item[1]))
    return items


def _event(test: RuleTest, index: int, spec: EventSpec, camera: CameraInfo, start: float) -> ObjectEvent:
    ts = start + spec.at
    slug = re.sub(r"[^A-Za-z0-9]+", "-", test.name).strip("-").lower()[:40]
    event_id = spec.event_id or f"{slug}-e{index}"
    snapshots = tuple(
        SnapshotRef(s.topic or f"qh/v1/camera/{camera.id}/snapshot/{event_id}-{s.role}", s.role, ts)
        for s in spec.snapshots
    )
    return ObjectEvent(
        event_id=event_id, seq=index, edge_id="test", camera_id=camera.id, type=EventType(spec.type),
        analytic=spec.analytic, label=spec.label, zone=spec.zone or (camera.zones[0] if camera.zones else ""),
        track_id=spec.track_id, score=spec.score, box=(0.1, 0.1, 0.3, 0.3), dwell_s=spec.dwell_s, ts=ts,
        plate=spec.plate, snapshots=snapshots, phase=spec.phase, outcome=spec.outcome, episode_id=spec.episode,
    )  # fmt: skip


# ----- comparison ------------------------------------------------------------------------------------


def _offset(ts: float, start: float) -> str:
    delta = ts - start
    return ("-" if delta < 0 else "+") + format_duration(abs(delta))


def _line(at: str, rule: str, status: str, extra: list[str]) -> str:
    return " ".join([f"{at:>9}", f"{rule:<22}", f"{status:<8}", *extra])


def _wanted(exp: Expected) -> list[str]:
    """The optional fields an expectation names, as text."""
    out = [exp.colour.value] if exp.colour is not None else []
    if exp.key is not None:
        out.append(f"key={exp.key}")
    if exp.flapping is not None:
        out.append(f"flapping={exp.flapping}")
    if exp.transition is not None:
        out.append(f"transition={exp.transition}")
    if exp.message_contains is not None:
        out.append(f"message~{exp.message_contains!r}")
    if exp.actions is not None:
        out.append(f"actions={','.join(exp.actions)}")
    out += [f"explain.{name}={value}" for name, value in (exp.explain or {}).items()]
    return out


def _got(exp: Expected, sig: RuleSignal) -> list[str]:
    """The same fields of an actual signal."""
    out = [sig.colour.value] if exp.colour is not None else []
    if exp.key is not None:
        out.append(f"key={sig.dedup_key}")
    if exp.flapping is not None:
        out.append(f"flapping={sig.flapping}")
    if exp.transition is not None:
        out.append(f"transition={sig.explain.get('transition')}")
    if exp.message_contains is not None:
        found = exp.message_contains in sig.message
        out.append(f"message~{exp.message_contains!r}" if found else f"message={sig.message!r}")
    if exp.actions is not None:
        out.append(f"actions={','.join(a.kind for a in sig.actions)}")
    out += [f"explain.{name}={sig.explain.get(name)}" for name in (exp.explain or {})]
    return out


def _actual_line(sig: RuleSignal, start: float) -> str:
    extra = [sig.colour.value, f"key={sig.dedup_key}"] + (["flapping"] if sig.flapping else [])
    return _line(_offset(sig.ts, start), sig.rule_id, sig.status.value, extra)


def compare(test: RuleTest, signals: list[RuleSignal], start: float) -> list[str]:
    """Diff lines: `  ` matched, `- ` expected but missing/different, `+ ` actual but unexpected/different."""
    used: set[int] = set()
    rows: list[tuple[float, int, str]] = []
    for exp in sorted(test.expect, key=lambda e: e.at):
        at = start + exp.at
        wanted = _wanted(exp)
        candidates = [
            i for i, s in enumerate(signals)
            if i not in used and abs(s.ts - at) < 1e-3 and s.rule_id == exp.rule and s.status is exp.status
        ]  # fmt: skip
        exact = [i for i in candidates if _got(exp, signals[i]) == wanted]
        want = _line(_offset(at, start), exp.rule, exp.status.value, wanted)
        if not candidates:
            rows.append((at, 0, "- " + want))
            continue
        match = (exact or candidates)[0]
        used.add(match)
        got = _got(exp, signals[match])
        if got == wanted:
            rows.append((at, 1, "  " + want))
        else:
            rows.append((at, 0, "- " + want))
            rows.append((at, 2, "+ " + _line(_offset(at, start), exp.rule, exp.status.value, got)))
    if test.expect_exactly:
        rows += [(s.ts, 3, "+ " + _actual_line(s, start)) for i, s in enumerate(signals) if i not in used]
    rows += _state_rows(test, signals, start)
    return [text for _ts, _order, text in sorted(rows, key=lambda r: (r[0], r[1]))]


def open_at(signals: list[RuleSignal], at: float) -> dict[tuple[str, str], RuleSignal]:
    """Incidents open at `at`: the last signal per (rule, key) up to then is firing or unknown."""
    last: dict[tuple[str, str], RuleSignal] = {}
    for sig in signals:
        if sig.ts <= at + 1e-3:
            last[(sig.rule_id, sig.dedup_key)] = sig
    return {k: s for k, s in last.items() if s.status is not SignalStatus.RESOLVED}


def _state_rows(test: RuleTest, signals: list[RuleSignal], start: float) -> list[tuple[float, int, str]]:
    rows: list[tuple[float, int, str]] = []
    for state in test.open_at:
        at = start + state.at
        actual = open_at(signals, at)
        remaining = dict(actual)
        for want in state.open:
            found = next(
                (k for k, s in remaining.items() if k[0] == want.rule and (want.key is None or k[1] == want.key)
                 and (want.colour is None or s.colour is want.colour)),
                None,
            )  # fmt: skip
            colour = want.colour.value if want.colour else "*"
            text = f"{_offset(at, start):>9} open {want.rule} key={want.key or '*'} {colour}"
            if found is None:
                rows.append((at, 4, "- " + text))
            else:
                del remaining[found]
                rows.append((at, 4, "  " + text))
        for (rule, key), sig in remaining.items():
            rows.append((at, 5, f"+ {_offset(at, start):>9} open {rule} key={key} {sig.colour.value}"))
    return rows


def format_outcomes(path: str, outcomes: list[TestOutcome]) -> str:
    """Readable report: one line per test, the diff under each failure."""
    lines = []
    for outcome in outcomes:
        mark = "ok  " if outcome.ok else "FAIL"
        lines.append(f"{mark} {path}: {outcome.name} ({len(outcome.signals)} signals)")
        if not outcome.ok:
            lines.append("     expected (-) vs actual (+):")
            lines.extend("     " + line for line in outcome.diff)
    return "\n".join(lines)
