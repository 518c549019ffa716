"""`qinghe rules check`: schema and registry errors, plus warnings a reviewer would raise.

Warnings: tiers that can never be the highest, resolve thresholds without a hysteresis band,
rules that overlap (same incident type over the same inputs), selectors that match nothing,
voice actions at cameras without a speaker.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from qinghe.yamlload import ConfigError, ConfigIssue
from rules.compile import CompiledRule
from rules.loader import LoadedFile, RuleSet, load_rules
from rules.model import RuleModel, TierModel, VoiceAction
from rules.registry import Registry

_WEEK_SAMPLES = [i * 900.0 for i in range(7 * 96)]  # every 15 minutes over a week


@dataclass(frozen=True, slots=True)
class LintResult:
    """Errors make a rule set unloadable; warnings are worth reading."""

    ruleset: RuleSet | None
    errors: tuple[ConfigIssue, ...]
    warnings: tuple[ConfigIssue, ...]


def check_rules(paths: Sequence[str | Path], registry: Registry) -> LintResult:
    """Load (errors) and lint (warnings) a set of rule files against a registry."""
    try:
        ruleset = load_rules(paths, registry)
    except ConfigError as exc:
        return LintResult(None, exc.issues, ())
    warnings = [w for loaded in ruleset.files for w in _file_warnings(loaded, ruleset, registry)]
    warnings += list(_overlaps(ruleset, registry))
    return LintResult(ruleset, (), tuple(warnings))


def _file_warnings(loaded: LoadedFile, ruleset: RuleSet, registry: Registry) -> Iterator[ConfigIssue]:
    for i, rule in enumerate(loaded.model.rules):
        loc = ("rules", i)
        for cloc, message in _tier_warnings(rule):
            yield _warn(loaded, (*loc, *cloc), message)
        compiled = ruleset.rules.get(rule.id)
        if compiled is not None:
            for cloc, message in _reach_warnings(rule, compiled, registry):
                yield _warn(loaded, (*loc, *cloc), message)


def _warn(loaded: LoadedFile, loc: tuple[str | int, ...], message: str) -> ConfigIssue:
    issue = loaded.doc.issue(loc, message)
    return ConfigIssue(issue.file, issue.line, issue.key, f"warning: {message}")


def _implies(op_low: str, t_low: float, op_high: str, t_high: float) -> bool:
    """Does `value op_low t_low` imply `value op_high t_high`?"""
    if op_low in ("above", "at_least") and op_high in ("above", "at_least"):
        return t_low > t_high or (t_low == t_high and (op_low == "above" or op_high == "at_least"))
    if op_low in ("below", "at_most") and op_high in ("below", "at_most"):
        return t_low < t_high or (t_low == t_high and (op_low == "below" or op_high == "at_most"))
    return False


def _tier_warnings(rule: RuleModel) -> Iterator[tuple[tuple[str | int, ...], str]]:
    tiers = rule.tiers
    for (i, high), (j, low) in itertools.combinations(enumerate(tiers), 2):
        if _shadowed(rule, high, low):
            yield (
                ("tiers", j),
                (
                    f"the {low.colour.value} tier can never be the highest: whenever it holds, "
                    f"the {high.colour.value} tier (tiers[{i}]) holds too and fires no later"
                ),
            )
    yield from _hysteresis_warnings(rule)


def _for_of(rule: RuleModel, tier: TierModel) -> float:
    return rule.for_ if tier.for_ is None else tier.for_


def _shadowed(rule: RuleModel, high: TierModel, low: TierModel) -> bool:
    if _for_of(rule, low) < _for_of(rule, high):
        return False
    low_t, high_t = low.threshold(), high.threshold()
    if low_t is not None and high_t is not None:
        return _implies(low_t[0], low_t[1], high_t[0], high_t[1])
    if low.when is not None and high.when is not None:
        return low.when.model_dump() == high.when.model_dump()
    return False


def _hysteresis_warnings(rule: RuleModel) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if rule.resolve is None or rule.resolve.threshold() is None:
        return
    r_op, r_t = rule.resolve.threshold()  # type: ignore[misc]
    shorthand = [t.threshold() for t in rule.tiers if t.threshold() is not None]
    ups = [t for op, t in shorthand if op in ("above", "at_least")]  # type: ignore[misc]
    downs = [t for op, t in shorthand if op in ("below", "at_most")]  # type: ignore[misc]
    if ups and r_op in ("above", "at_least"):
        yield ("resolve",), f"resolve {r_op} {r_t:g} points the same way as the tiers (they fire above a threshold)"
    elif ups and r_t > min(ups):
        yield ("resolve",), f"resolve below {r_t:g} is above the lowest tier threshold {min(ups):g}: no hysteresis band"
    if downs and r_op in ("below", "at_most"):
        yield ("resolve",), f"resolve {r_op} {r_t:g} points the same way as the tiers (they fire below a threshold)"
    elif downs and r_t < max(downs):
        yield (
            ("resolve",),
            f"resolve above {r_t:g} is below the highest tier threshold {max(downs):g}: no hysteresis band",
        )


def _reach_warnings(
    rule: RuleModel, compiled: CompiledRule, registry: Registry
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if registry.sensors and compiled.sensors is not None:
        matched = [s for s in registry.sensors.values() if compiled.sensors.matches(s.id, s.kind, s.zone, s)]
        if not matched:
            yield ("readings",), "matches no sensor in the registry"
        else:
            kinds = {key.split(".")[0] for key in compiled.series}
            missing = kinds - {s.kind for s in matched}
            if missing:
                yield ("readings",), f"no matched sensor is of kind {', '.join(sorted(missing))}, which the tiers read"
    voice = [i for i, a in enumerate(rule.actions) if isinstance(a, VoiceAction) and not a.speaker]
    if voice and compiled.events is not None and registry.cameras:
        cameras = compiled.events.camera
        scope = [c for c in registry.cameras.values() if cameras is None or c.id in cameras]
        zones = compiled.events.zone
        scope = [c for c in scope if not zones or set(c.zones) & zones]
        mute = sorted(c.id for c in scope if not c.speaker_id)
        if mute:
            yield ("actions", voice[0]), f"cameras without a speaker_id (their voice warnings fail): {', '.join(mute)}"


def _overlaps(ruleset: RuleSet, registry: Registry) -> Iterator[ConfigIssue]:
    where = {r.id: (f, i) for f in ruleset.files for i, r in enumerate(f.model.rules)}
    for a, b in itertools.combinations(sorted(ruleset.rules.values(), key=lambda r: r.source), 2):
        if a.model.type != b.model.type or a.key_fields != b.key_fields:
            continue
        if not (_inputs_overlap(a, b, registry) and _schedules_overlap(a, b)):
            continue
        loaded, index = where[b.model.id]
        same_key = a.dedup_template.replace("{rule}", "") == b.dedup_template.replace("{rule}", "") and (
            "{rule}" not in a.dedup_template
        )
        detail = "and the same dedup key, so they feed one incident" if same_key else "with different dedup keys"
        message = (
            f"overlaps rule {a.model.id!r} ({a.source}): both raise {a.model.type} incidents per "
            f"{', '.join(a.key_fields)} over the same inputs, {detail}"
        )
        yield _warn(loaded, ("rules", index, "id"), message)


def _inputs_overlap(a: CompiledRule, b: CompiledRule, registry: Registry) -> bool:
    if a.sensors is not None and b.sensors is not None:
        if registry.sensors:
            return any(
                a.sensors.matches(s.id, s.kind, s.zone, s) and b.sensors.matches(s.id, s.kind, s.zone, s)
                for s in registry.sensors.values()
            ) and bool(set(a.series) & set(b.series) or not (a.series or b.series))
        return all(not x or not y or bool(x & y) for x, y in _sensor_sets(a, b))
    if a.events is not None and b.events is not None:
        ea, eb = a.events, b.events
        pairs = [(ea.analytic, eb.analytic), (ea.label, eb.label), (ea.zone, eb.zone)]
        cameras_overlap = ea.camera is None or eb.camera is None or bool(ea.camera & eb.camera)
        return cameras_overlap and all(not x or not y or bool(x & y) for x, y in pairs)
    return False


def _sensor_sets(a: CompiledRule, b: CompiledRule) -> list[tuple[frozenset[str], frozenset[str]]]:
    assert a.sensors is not None
    assert b.sensors is not None
    return [
        (a.sensors.kinds, b.sensors.kinds),
        (a.sensors.sensors, b.sensors.sensors),
        (a.sensors.zones, b.sensors.zones),
        (a.sensors.tags, b.sensors.tags),
    ]


def _schedules_overlap(a: CompiledRule, b: CompiledRule) -> bool:
    if a.schedule is None or b.schedule is None:
        return True
    base = 1_767_196_800.0  # 2026-01-01 00:00 +08:00 (a Thursday); a week of samples
    return any(a.schedule.active(base + t) and b.schedule.active(base + t) for t in _WEEK_SAMPLES)


def find_central(start: Path) -> Path | None:
    """The central.yaml that governs a rule file: the nearest one in a parent directory."""
    for folder in [start.resolve().parent, *start.resolve().parents]:
        candidate = folder / "central.yaml"
        if candidate.is_file():
            return candidate
    return None


def load_registry(config_path: Path) -> Registry:
    """The registry of a central config (with ingest's extra registry files); ConfigError if broken."""
    from qinghe.central_config import load_central_config
    from rules.service import merge_registry_files

    config = load_central_config(config_path)
    return Registry.from_central(merge_registry_files(config, config_path.resolve().parent))


def check_rule_files_standalone(paths: Sequence[str]) -> None:
    """For `qinghe config check`: errors only, against the nearest central.yaml when there is one.

    A broken central.yaml is reported too, and the rule files are still checked (without its registry),
    so one run shows every problem."""
    central = find_central(Path(paths[0]))
    central_errors: list[ConfigIssue] = []
    registry = Registry()
    if central is not None:
        try:
            registry = load_registry(central)
        except ConfigError as exc:
            central_errors = list(exc.issues)
    result = check_rules(paths, registry)
    if central_errors or result.errors:
        raise ConfigError([*central_errors, *result.errors])
