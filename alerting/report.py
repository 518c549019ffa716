"""Reports over stored incidents (pure): open by colour, 1510 compliance per colour and team, parking
outcomes, noisiest rules; and a PNG chart of a day (matplotlib, Agg backend)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from alerting.model import IncidentRecord
from alerting.sla import CLOCK_ORDER, ClockOutcome, outcome
from qinghe.contracts import Colour, IncidentState

COLOURS = (Colour.RED, Colour.ORANGE, Colour.YELLOW, Colour.BLUE)
ACTIVE = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.ON_SITE)


@dataclass(slots=True)
class Compliance:
    """Met / missed / pending / not-applicable counts of each clock."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, clock: str, result: ClockOutcome) -> None:
        """Count one clock outcome."""
        self.counts[clock][result.value] += 1

    def rate(self, clock: str) -> float | None:
        """Met / (met + missed), or None when no clock of this kind was decided."""
        c = self.counts.get(clock, Counter())
        decided = c["met"] + c["missed"]
        return c["met"] / decided if decided else None

    def as_dict(self) -> dict[str, dict[str, float | int | None]]:
        """JSON-friendly form."""
        return {
            clock.value: {**{k: self.counts[clock.value][k] for k in ("met", "missed", "pending", "n/a")},
                          "rate": self.rate(clock.value)}
            for clock in CLOCK_ORDER
        }  # fmt: skip


def open_by_colour(records: Iterable[IncidentRecord]) -> dict[str, int]:
    """Incidents still open, acknowledged or on site, per colour (red first)."""
    counts = Counter(r.incident.colour.value for r in records if r.incident.state in ACTIVE)
    return {c.value: counts.get(c.value, 0) for c in COLOURS}


def compliance(records: Iterable[IncidentRecord]) -> tuple[dict[str, Compliance], dict[str, Compliance]]:
    """1510 compliance per colour and per team (the colour an incident ended with)."""
    by_colour: dict[str, Compliance] = defaultdict(Compliance)
    by_team: dict[str, Compliance] = defaultdict(Compliance)
    for record in records:
        inc = record.incident
        for clock in inc.sla:
            result = outcome(clock, inc.state)
            by_colour[inc.colour.value].add(clock.name.value, result)
            by_team[record.team].add(clock.name.value, result)
    return dict(by_colour), dict(by_team)


def parking(records: Iterable[IncidentRecord]) -> dict[str, float | int | None]:
    """Parking episodes that complied after the warning versus those that became violations."""
    outcomes = Counter(r.incident.outcome for r in records if r.grace is not None)
    complied, violation = outcomes.get("complied", 0), outcomes.get("violation", 0)
    total = complied + violation
    return {
        "complied": complied,
        "violation": violation,
        "in_grace": sum(n for o, n in outcomes.items() if o not in ("complied", "violation")),
        "complied_ratio": complied / total if total else None,
    }


def noisiest(
    stats: Mapping[str, Mapping[str, int]], records: Iterable[IncidentRecord], top: int = 10
) -> list[dict[str, object]]:
    """Rules ranked by signals: opened, grouped, suppressed, flapping, and incidents cleared before anyone acked."""
    unacked = Counter(
        r.incident.rule_id
        for r in records
        if r.incident.outcome == "auto_resolved" and all(c.met_at is None for c in r.incident.sla[:1])
    )
    rows: list[dict[str, object]] = []
    for rule_id, counts in stats.items():
        row: dict[str, object] = {"rule_id": rule_id}
        for name in ("signals", "opened", "grouped", "suppressed", "flapping", "auto_resolved", "complied"):
            row[name] = counts.get(name, 0)
        row["cleared_unacked"] = unacked.get(rule_id, 0)
        rows.append(row)
    rows.sort(key=lambda r: (-int(str(r["signals"])), str(r["rule_id"])))
    return rows[:top]


def hourly(records: Iterable[IncidentRecord], tz: ZoneInfo) -> dict[str, list[int]]:
    """Incidents opened per local hour of day, per colour."""
    out = {c.value: [0] * 24 for c in COLOURS}
    for record in records:
        hour = datetime.fromtimestamp(record.incident.opened_at, tz).hour
        out[record.incident.colour.value][hour] += 1
    return out


def chart(records: list[IncidentRecord], by_colour: Mapping[str, Compliance], tz: ZoneInfo, path: Path) -> Path:
    """A PNG: incidents per hour by colour (stacked) and 1510 compliance per colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = {"red": "#d62728", "orange": "#ff7f0e", "yellow": "#e5c100", "blue": "#1f77b4"}
    per_hour = hourly(records, tz)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), constrained_layout=True)
    base = [0] * 24
    for colour in reversed(COLOURS):
        values = per_hour[colour.value]
        top.bar(range(24), values, bottom=base, color=palette[colour.value], label=colour.value)
        base = [a + b for a, b in zip(base, values, strict=True)]
    top.set(title="Incidents opened per hour", xlabel="hour of day", ylabel="incidents", xticks=range(0, 24, 2))
    top.legend()
    width = 0.25
    for i, clock in enumerate(CLOCK_ORDER):
        rates = [(by_colour[c.value].rate(clock.value) or 0.0) * 100 if c.value in by_colour else 0 for c in COLOURS]
        bottom.bar([x + i * width for x in range(len(COLOURS))], rates, width, label=clock.value)
    bottom.set(title="1510 clocks met on time (%)", ylim=(0, 105), ylabel="%")
    bottom.set_xticks([x + width for x in range(len(COLOURS))], [c.value for c in COLOURS])
    bottom.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
