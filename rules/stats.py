"""Alert-fatigue statistics per rule: fires, resolves, flaps, unknowns and time to resolve (pure)."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from qinghe.contracts import RuleSignal, SignalStatus

MAX_DURATIONS = 1000  # per rule, for the median
MAX_OPEN = 100_000  # open keys tracked across all rules


@dataclass(slots=True)
class RuleStats:
    """Counters of one rule."""

    fired: int = 0
    resolved: int = 0
    escalated: int = 0
    deescalated: int = 0
    flapping: int = 0
    unknown: int = 0
    updates: int = 0
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_DURATIONS))

    def summary(self) -> dict[str, Any]:
        """Plain counters plus median and max time to resolve (seconds)."""
        durations = list(self.durations)
        return {
            "fired": self.fired,
            "resolved": self.resolved,
            "escalated": self.escalated,
            "deescalated": self.deescalated,
            "flapping": self.flapping,
            "unknown": self.unknown,
            "updates": self.updates,
            "median_time_to_resolve_s": round(statistics.median(durations), 3) if durations else None,
            "max_time_to_resolve_s": round(max(durations), 3) if durations else None,
        }


class FatigueStats:
    """Folds RuleSignals into per-rule counters; the same signals always give the same stats."""

    def __init__(self) -> None:
        self.rules: dict[str, RuleStats] = {}
        self.open: dict[tuple[str, str], float] = {}  # (rule, dedup key) -> opened at
        self.since: float | None = None

    def observe(self, signal: RuleSignal) -> None:
        """Count one signal."""
        if self.since is None:
            self.since = signal.ts
        stats = self.rules.setdefault(signal.rule_id, RuleStats())
        transition = str(signal.explain.get("transition", ""))
        key = (signal.rule_id, signal.dedup_key)
        if transition == "opened":
            stats.fired += 1
            if len(self.open) < MAX_OPEN:
                self.open[key] = signal.ts
        elif signal.status is SignalStatus.RESOLVED:
            stats.resolved += 1
            opened = self.open.pop(key, None)
            if opened is not None:
                stats.durations.append(signal.ts - opened)
        elif transition == "escalated":
            stats.escalated += 1
        elif transition == "deescalated":
            stats.deescalated += 1
        elif transition == "flapping":
            stats.flapping += 1
        elif signal.status is SignalStatus.UNKNOWN:
            stats.unknown += 1
        else:
            stats.updates += 1

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """All rules, noisiest first, with the number still open."""
        open_by_rule: dict[str, int] = {}
        for rule_id, _key in self.open:
            open_by_rule[rule_id] = open_by_rule.get(rule_id, 0) + 1
        rules = {
            rule_id: {**stats.summary(), "open": open_by_rule.get(rule_id, 0)}
            for rule_id, stats in sorted(self.rules.items(), key=lambda kv: (-kv[1].fired, kv[0]))
        }
        return {"since": self.since, "at": now, "rules": rules}


def format_table(summary: dict[str, Any]) -> str:
    """A fixed-width table of a summary, noisiest rule first."""
    header = f"{'rule':<28} {'fired':>6} {'resolved':>8} {'open':>5} {'flaps':>5} {'unknown':>7} {'median ttr':>11}"
    lines = [header, "-" * len(header)]
    for rule_id, row in summary.get("rules", {}).items():
        ttr = row.get("median_time_to_resolve_s")
        ttr_text = "-" if ttr is None else _human(float(ttr))
        lines.append(
            f"{rule_id:<28} {row['fired']:>6} {row['resolved']:>8} {row.get('open', 0):>5} "
            f"{row['flapping']:>5} {row['unknown']:>7} {ttr_text:>11}"
        )
    if len(lines) == 2:
        lines.append("(no signals yet)")
    return "\n".join(lines)


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
