"""PNG plot of a replay: the series a rule reads, its thresholds, and the incident spans by colour."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from qinghe.contracts import Colour, SensorReading
from rules.compile import CompiledRule
from rules.conditions import ValueTest
from rules.inputs import InputDecoder
from rules.recording import Record
from rules.replay import IncidentSpan

COLOURS = {Colour.BLUE: "#1f6fd1", Colour.YELLOW: "#e0b000", Colour.ORANGE: "#f07000", Colour.RED: "#d01010"}
MAX_PANELS = 6


@dataclass(slots=True)
class Panel:
    """One subplot: a sensor's field over time, with the thresholds of a rule and its incidents."""

    rule: CompiledRule
    sensor: str
    measure: str
    kind: str
    points: list[tuple[float, float]] = field(default_factory=list)
    spans: list[IncidentSpan] = field(default_factory=list)


def choose_panels(rules: Sequence[CompiledRule], spans: Sequence[IncidentSpan]) -> list[Panel]:
    """The sensors worth plotting: those of the longest incidents first, one field per rule."""
    panels: list[Panel] = []
    for span in sorted(spans, key=lambda s: s.start):
        rule = next((r for r in rules if r.id == span.rule_id), None)
        if rule is None or rule.value_expr is None:
            continue
        for sensor in sorted(span.sensors):
            if any(p.rule.id == rule.id and p.sensor == sensor for p in panels):
                continue
            panels.append(Panel(rule, sensor, rule.value_expr.field, rule.value_expr.kind))
            if len(panels) >= MAX_PANELS:
                break
        if len(panels) >= MAX_PANELS:
            break
    for panel in panels:
        panel.spans = [s for s in spans if s.rule_id == panel.rule.id and panel.sensor in s.sensors]
    return panels


def collect_points(panels: list[Panel], records: Iterable[Record], decoder: InputDecoder) -> None:
    """Second pass over the recording: the plotted sensors' values, validated and in canonical units."""
    wanted = {p.sensor for p in panels}
    root = decoder.topics.root
    for record in records:
        if not record.topic.startswith(f"{root}/sensor/"):
            continue
        sensor = record.topic[len(root) + 8 : -len("/reading")]
        if sensor not in wanted:
            continue
        reading = decoder.decode(record.topic, record.payload, record.t)
        if not isinstance(reading, SensorReading):
            continue
        for p in panels:
            value = reading.values.get(p.measure)
            if p.sensor == sensor and value is not None:
                p.points.append((reading.ts, value))


def thresholds(rule: CompiledRule) -> list[tuple[float, Colour | None, str]]:
    """(value, colour or None for resolve, label) of every threshold leaf on the rule's value."""
    out: list[tuple[float, Colour | None, str]] = []
    for tier in rule.tiers:
        if isinstance(tier.node, ValueTest):
            out.append((tier.node.threshold, tier.colour, tier.node.describe()))
    if isinstance(rule.resolve, ValueTest):
        out.append((rule.resolve.threshold, None, "resolve " + rule.resolve.describe()))
    return out


def render(path: Path, panels: list[Panel], title: str, tz: str = "Asia/Shanghai") -> None:
    """Write the PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zone = ZoneInfo(tz)
    count = max(len(panels), 1)
    fig, axes = plt.subplots(count, 1, figsize=(11, 2.6 * count), squeeze=False, sharex=False)
    for ax, panel in zip(axes[:, 0], panels, strict=False):
        times = [datetime.fromtimestamp(t, zone) for t, _v in panel.points]
        ax.plot(
            times,
            [v for _t, v in panel.points],
            color="#333333",
            linewidth=0.9,
            label=f"{panel.sensor} {panel.measure}",
        )
        for value, colour, label in thresholds(panel.rule):
            style = "--" if colour is None else "-"
            ax.axhline(value, color=COLOURS.get(colour, "#2a9d55") if colour else "#2a9d55", linestyle=style,
                       linewidth=0.8, label=label)  # fmt: skip
        end = panel.points[-1][0] if panel.points else None
        for span in panel.spans:
            stop = span.end if span.end is not None else end
            if stop is None:
                continue
            ax.axvspan(datetime.fromtimestamp(span.start, zone), datetime.fromtimestamp(stop, zone),
                       color=COLOURS[span.max_colour], alpha=0.18, hatch="//" if span.flapping else None)  # fmt: skip
        ax.set_title(f"{panel.rule.id} · {panel.sensor}", fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no incidents to plot", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
