"""Routing decisions (pure): group keys, causes, matchers for silences and maintenance, inhibition."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from alerting.config import GroupKey, InhibitRule, MaintenanceWindow
from alerting.model import IncidentRecord, Silence
from qinghe.contracts import Colour, RuleSignal


def cause_of(signal: RuleSignal) -> str:
    """What caused a signal: the rule's `explain.cause` if it gave one, else the incident type."""
    cause = signal.explain.get("cause")
    return str(cause) if cause not in (None, "") else signal.incident_type


def camera_of(signal: RuleSignal) -> str | None:
    """The camera behind a detection signal: its `camera_id`, else the first camera event source."""
    if signal.camera_id:
        return signal.camera_id
    return next((s.camera_id for s in signal.sources if s.camera_id), None)


def signal_fields(signal: RuleSignal) -> dict[str, str]:
    """The fields silences and maintenance windows match on."""
    return {
        "type": signal.incident_type,
        "zone": signal.zone,
        "rule_id": signal.rule_id,
        "camera_id": camera_of(signal) or "",
        "colour": signal.colour.value,
        "dedup_key": signal.dedup_key,
    }


def matches(matchers: Mapping[str, str], fields: Mapping[str, str]) -> bool:
    """Every matcher's glob pattern matches its field (case-sensitive)."""
    return all(fnmatch.fnmatchcase(fields.get(key, ""), pattern) for key, pattern in matchers.items())


def key_values(keys: Iterable[GroupKey], incident_type: str, zone: str, rule_id: str, cause: str) -> tuple[str, ...]:
    """The values of `keys` for an incident or signal, in order."""
    values = {"type": incident_type, "zone": zone, "rule_id": rule_id, "cause": cause}
    return tuple(values[k] for k in keys)


def signal_key(keys: Iterable[GroupKey], signal: RuleSignal) -> tuple[str, ...]:
    """Group / equality key of a signal."""
    return key_values(keys, signal.incident_type, signal.zone, signal.rule_id, cause_of(signal))


def record_key(keys: Iterable[GroupKey], record: IncidentRecord) -> tuple[str, ...]:
    """Group / equality key of an incident."""
    inc = record.incident
    return key_values(keys, inc.type, inc.zone, inc.rule_id, record.cause)


def active_silence(silences: Iterable[Silence], fields: Mapping[str, str], now: float) -> Silence | None:
    """The first silence in force at `now` that matches."""
    return next((s for s in silences if s.starts_at <= now < s.ends_at and matches(s.matchers, fields)), None)


def open_maintenance(
    windows: Iterable[MaintenanceWindow], fields: Mapping[str, str], now: float, tz: ZoneInfo
) -> MaintenanceWindow | None:
    """The first maintenance window open at `now` (local time in `tz`) that matches."""
    windows = list(windows)
    if not windows:
        return None
    local = datetime.fromtimestamp(now, tz)
    return next((w for w in windows if matches(w.matchers, fields) and w.contains(local)), None)


def inhibitor(
    rules: Iterable[InhibitRule], signal: RuleSignal, candidates: Iterable[IncidentRecord]
) -> IncidentRecord | None:
    """An active incident that inhibits `signal` under some rule (higher colour, same `equal` keys)."""
    for rule in rules:
        if signal.colour not in rule.target_colours:
            continue
        wanted = signal_key(rule.equal, signal)
        for record in candidates:
            colour = record.incident.colour
            if (
                record.active
                and colour in rule.source_colours
                and colour.rank > signal.colour.rank
                and record_key(rule.equal, record) == wanted
            ):
                return record
    return None


def highest(colours: Iterable[Colour]) -> Colour:
    """The highest colour (blue if none)."""
    return max(colours, key=lambda c: c.rank, default=Colour.BLUE)
