"""Backtesting: recorded traffic through a fresh engine, exactly as the live service would process it.

Each message is handled at the time it was received (its `t`), camera events are deduplicated by id
and readings validated as ingest does, so a replay of a recording reproduces the live signals.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from qinghe.central_config import CentralConfig
from qinghe.contracts import Colour, ObjectEvent, RuleSignal, SignalStatus
from qinghe.topics import Topics
from rules.engine import Engine
from rules.inputs import Ignored, InputDecoder, Rejected
from rules.labels import Predicted
from rules.loader import RuleSet
from rules.recording import Record
from rules.registry import Registry


@dataclass(slots=True)
class IncidentSpan:
    """One incident as the replay saw it: from its first FIRING to its RESOLVED (or the end)."""

    rule_id: str
    type: str
    key: str
    zone: str
    camera: str | None
    start: float
    end: float | None = None
    colours: list[tuple[float, Colour]] = field(default_factory=list)
    flapping: bool = False
    unknown: bool = False
    sensors: set[str] = field(default_factory=set)

    @property
    def max_colour(self) -> Colour:
        """The highest colour it reached."""
        return max((c for _t, c in self.colours), key=lambda c: c.rank)

    def duration(self, end_of_data: float) -> float:
        """Seconds open (until the end of the data if never resolved)."""
        return (self.end if self.end is not None else end_of_data) - self.start

    def predicted(self, end_of_data: float) -> Predicted:
        """The scorer's view."""
        end = self.end if self.end is not None else end_of_data
        return Predicted(
            self.rule_id, self.type, self.key, self.zone, frozenset(self.sensors), self.camera, self.start, end
        )


@dataclass(slots=True)
class ReplayResult:
    """What a replay produced."""

    signals: list[RuleSignal]
    messages: int = 0
    inputs: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    first_t: float | None = None
    last_t: float | None = None
    wall_s: float = 0.0

    @property
    def span_s(self) -> float:
        """Seconds of traffic covered."""
        return 0.0 if self.first_t is None or self.last_t is None else self.last_t - self.first_t

    @property
    def speedup(self) -> float:
        """How many times faster than real time."""
        return self.span_s / self.wall_s if self.wall_s > 0 else float("inf")


Progress = Callable[[int], None]


def replay(
    ruleset: RuleSet,
    registry: Registry,
    config: CentralConfig,
    records: Iterable[Record],
    *,
    progress: Progress | None = None,
    until: float | None = None,
) -> ReplayResult:
    """Feed records through a fresh engine; `progress(messages)` is called every 10,000 messages."""
    decoder = InputDecoder(config, Topics(config.broker.topic_prefix))
    engine = Engine(ruleset, registry)
    result = ReplayResult(signals=[])
    seen_events: set[str] = set()
    started = time.perf_counter()
    for record in records:
        result.messages += 1
        if result.first_t is None:
            result.first_t = record.t
        result.last_t = record.t
        decoded = decoder.decode(record.topic, record.payload, record.t)
        if isinstance(decoded, Rejected):
            result.rejected[decoded.reason.split(":")[0]] += 1
        elif isinstance(decoded, ObjectEvent) and decoded.event_id in seen_events:
            result.duplicates += 1
        elif not isinstance(decoded, Ignored):
            if isinstance(decoded, ObjectEvent):
                seen_events.add(decoded.event_id)
            result.inputs += 1
            result.signals += engine.step(decoded, record.t)
        if progress is not None and result.messages % 10_000 == 0:
            progress(result.messages)
    end = until if until is not None else result.last_t
    if end is not None:
        result.signals += engine.advance(end)
    result.wall_s = time.perf_counter() - started
    return result


def spans_from(signals: Iterable[RuleSignal], types: dict[str, str]) -> list[IncidentSpan]:
    """Group signals into incidents per (rule, dedup key)."""
    open_spans: dict[tuple[str, str], IncidentSpan] = {}
    spans: list[IncidentSpan] = []
    for sig in signals:
        key = (sig.rule_id, sig.dedup_key)
        span = open_spans.get(key)
        if span is None:
            if sig.status is SignalStatus.RESOLVED:
                continue
            span = IncidentSpan(sig.rule_id, types.get(sig.rule_id, sig.incident_type), sig.dedup_key, sig.zone,
                                sig.camera_id, sig.ts)  # fmt: skip
            open_spans[key] = span
            spans.append(span)
        span.colours.append((sig.ts, sig.colour))
        span.flapping |= sig.flapping
        span.unknown |= sig.status is SignalStatus.UNKNOWN
        span.sensors.update(s.sensor_id for s in sig.sources if s.sensor_id)
        if sig.status is SignalStatus.RESOLVED:
            span.end = sig.ts
            del open_spans[key]
    return spans


def rule_summary(spans: list[IncidentSpan], rule_ids: Iterable[str], end_of_data: float) -> dict[str, dict[str, Any]]:
    """Per rule: incidents, by colour, durations, flapping, unknown, still open at the end."""
    out: dict[str, dict[str, Any]] = {}
    for rule_id in sorted(rule_ids):
        mine = [s for s in spans if s.rule_id == rule_id]
        durations = [s.duration(end_of_data) for s in mine]
        out[rule_id] = {
            "incidents": len(mine),
            "by_colour": {c.value: n for c in Colour if (n := sum(1 for s in mine if s.max_colour is c))},
            "median_duration_s": round(statistics.median(durations), 1) if durations else None,
            "max_duration_s": round(max(durations), 1) if durations else None,
            "flapping": sum(1 for s in mine if s.flapping),
            "unknown": sum(1 for s in mine if s.unknown),
            "open_at_end": sum(1 for s in mine if s.end is None),
        }  # fmt: skip
    return out


def _overlap(a: IncidentSpan, b: IncidentSpan, end: float) -> bool:
    return a.start <= (b.end if b.end is not None else end) and b.start <= (a.end if a.end is not None else end)


def diff_spans(candidate: list[IncidentSpan], baseline: list[IncidentSpan], end: float) -> dict[str, dict[str, int]]:
    """Per rule: incidents in both (same key, overlapping time), only in the candidate, only in the baseline."""
    out: dict[str, dict[str, int]] = {}
    for rule_id in sorted({s.rule_id for s in candidate} | {s.rule_id for s in baseline}):
        cand = [s for s in candidate if s.rule_id == rule_id]
        base = [s for s in baseline if s.rule_id == rule_id]
        matched_base: set[int] = set()
        both = recoloured = 0
        for span in cand:
            j = next(
                (
                    j
                    for j, b in enumerate(base)
                    if j not in matched_base and b.key == span.key and _overlap(span, b, end)
                ),
                None,
            )
            if j is not None:
                matched_base.add(j)
                both += 1
                recoloured += int(base[j].max_colour is not span.max_colour)
        out[rule_id] = {
            "both": both,
            "only_candidate": len(cand) - both,
            "only_baseline": len(base) - len(matched_base),
            "colour_changed": recoloured,
        }
    return out


class ProgressBar:
    """A one-line progress bar on stderr for long replays (messages done out of an estimate)."""

    def __init__(self, total: int | None, stream: IO[str] | None = None, width: int = 30) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.perf_counter()
        self._last = 0.0

    def __call__(self, done: int) -> None:
        """Redraw (at most 4 times a second)."""
        now = time.perf_counter()
        if now - self._last < 0.25:
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        if self.total:
            share = min(done / self.total, 1.0)
            filled = int(share * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            text = f"\rreplay [{bar}] {share:4.0%} {done:,}/{self.total:,} msgs {rate:,.0f} msg/s"
        else:
            text = f"\rreplay {done:,} msgs {rate:,.0f} msg/s"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        self.stream.write("\n")
        self.stream.flush()
