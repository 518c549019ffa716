"""Feeding inputs into rule instances: readings into series, camera events into episodes and evidence."""

from __future__ import annotations

from collections.abc import Mapping

from qinghe.contracts import EventType, ObjectEvent, SensorReading, SourceRef
from rules.compile import CompiledRule
from rules.series import make_series, resized
from rules.signals import add_event_evidence
from rules.state import Instance, episode_of


def adapt(rule: CompiledRule, inst: Instance) -> None:
    """Fit an existing instance to a (possibly edited) rule: tier timers and series retention."""
    tiers = len(rule.tiers)
    if len(inst.true_since) != tiers:
        inst.true_since = (inst.true_since + [None] * tiers)[:tiers]
        if inst.tier is not None and inst.tier >= tiers:
            inst.tier = tiers - 1
    for key, series in list(inst.series.items()):
        inst.series[key] = resized(series, rule.series.get(key, series.keep_s))


Fields = tuple[tuple[str, str], ...]  # ((field, series key), ...) that one sensor kind feeds


def ingest_values(
    inst: Instance,
    fields: Mapping[str, Fields],
    keep: Mapping[str, float],
    reading: SensorReading,
    *,
    now: float,
    gap_s: float,
) -> None:
    """Append the values that `fields` names for the reading's kind to the instance's series."""
    ingest_fields(inst, fields.get(reading.kind.value), keep, reading, now=now, gap_s=gap_s)


def ingest_fields(
    inst: Instance, names: Fields | None, keep: Mapping[str, float], reading: SensorReading, *, now: float, gap_s: float
) -> None:
    """Append the named values to the instance's series; a sample is placed at its own time (clamped to
    `now`), its arrival sets when the series was last heard from."""
    if names:
        ts = reading.ts if reading.ts < now else now
        values, all_series, seen, gaps = reading.values, inst.series, inst.seen, inst.gap
        for name, key in names:
            value = values.get(name)
            if value is None:
                continue
            series = all_series.get(key)
            if series is None:
                series = all_series[key] = make_series(keep[key])
                gaps[key] = gap_s
            series.add(ts, value, now)
            seen[key] = now
            if gaps[key] < gap_s:  # noqa: PLR1730 - max() is a call per sample on the hot path
                gaps[key] = gap_s
    inst.last_input = now


def ingest_reading(
    rule: CompiledRule, inst: Instance, reading: SensorReading, names: Fields | None, *, now: float, gap_s: float
) -> None:
    """Append the values this rule reads (`names`: its fields for the reading's kind); remember the reading."""
    ingest_fields(inst, names, rule.series, reading, now=now, gap_s=gap_s)
    inst.add_reading(reading)


def ingest_event(rule: CompiledRule, inst: Instance, event: ObjectEvent, now: float) -> bool:
    """Update the instance's view of camera events; True if the event brought new evidence."""
    inst.last_input = now
    inst.latest_event = event
    if event.plate:
        inst.labels["plate"] = event.plate
    if inst.camera_id is None or "camera" not in inst.labels:
        inst.camera_id = event.camera_id
    episode = episode_of(event)
    if event.type is EventType.END:
        inst.episodes.pop(episode, None)
    else:
        inst.episodes[episode] = event
    expire = rule.model.gap.expire
    for stale in [k for k, e in inst.episodes.items() if now - e.ts > expire]:
        del inst.episodes[stale]  # its end never came
    inst.log_event(event, now - rule.horizon)
    summary = f"{event.analytic} {event.type.value} {event.phase or ''}".strip()
    inst.add_source(SourceRef("event", event.event_id, event.ts, summary, camera_id=event.camera_id))
    return add_event_evidence(inst, event)
