"""Per-clip timeline PNG (matplotlib Agg): true events vs reported episodes and phases, and detections over time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detectors.models.evaluate import ClipResult

PHASE_COLOURS = {"dwelling": "#9ecae1", "warning": "#fdae6b", "violation": "#e6550d"}
WATCHED = ("person", "car", "truck", "bus", "garbage", "smoke", "fire", "water")


def plot_clip(result: ClipResult, path: Path) -> Path:
    """Draw one clip's timeline: truth bars (with due milestones), episode bars (with phases), detections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = result.labels
    end = labels.duration_s
    fig, (ax, ax_det) = plt.subplots(2, 1, figsize=(10, 4.2), sharex=True, gridspec_kw={"height_ratios": [2, 1.4]})
    rows: list[str] = []
    for i, m in enumerate(result.matches):
        y = len(rows)
        rows.append(f"truth {m.truth.analytic} {m.truth.outcome or ''}".strip())
        t_end = m.truth.end_s if m.truth.end_s is not None else end
        ax.barh(y, t_end - m.truth.start_s, left=m.truth.start_s, color="#31a354", height=0.5)
        for name, t in m.truth.milestones.items():
            ax.plot([t, t], [y - 0.3, y + 0.3], color="black", lw=1)
            ax.text(t, y + 0.32, name, fontsize=6, ha="center")
        del i
    for p in result.episodes:
        y = len(rows)
        matched = any(m.predicted is p for m in result.matches)
        rows.append(f"{'found' if matched else 'FALSE'} {p.analytic} {p.outcome or ''}".strip())
        t_end = p.end_t if p.end_t is not None else end
        ax.barh(y, t_end - p.start_t, left=p.start_t, color="#3182bd" if matched else "#de2d26", height=0.5)
        for phase, t in p.phases.items():
            ax.plot([t], [y], marker="v", color=PHASE_COLOURS.get(phase, "black"), markersize=7)
    missed = sum(1 for m in result.matches if m.predicted is None)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlim(0, end)
    ax.set_title(f"{labels.clip} ({labels.kind}/{labels.variant}): {len(result.matches) - missed} found, "
                 f"{missed} missed, {len(result.false)} false", fontsize=9)  # fmt: skip
    for label in WATCHED:
        xs = [t for t, counts in result.detections if counts.get(label)]
        if xs:
            ax_det.plot(xs, [WATCHED.index(label)] * len(xs), "|", markersize=6)
    ax_det.set_yticks(range(len(WATCHED)), WATCHED, fontsize=7)
    ax_det.set_xlabel("clip time (s)")
    ax_det.set_title("detections on analysed frames", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
