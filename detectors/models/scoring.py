"""Scoring of detections and analytic events against clip labels (pure): frame-level and event-level figures."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from detectors.analytics.common import iou
from detectors.core import Detections
from detectors.models.labels import EventLabel, FrameLabel


@dataclass(slots=True)
class ClassCounts:
    """True positives, false positives and misses of one class."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP), None with no predictions."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN), None with no labels."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def score_frame(detections: Detections, truth: FrameLabel, counts: dict[str, ClassCounts], min_iou: float = 0.5,
                min_visible: float = 0.5) -> None:  # fmt: skip
    """Greedy per-class matching by IoU (highest score first); labels hidden more than half are optional."""
    labels = detections.labels()
    classes = set(labels) | {o.label for o in truth.objects}
    for cls in classes:
        preds = sorted(
            ((float(s), tuple(b)) for lab, s, b in zip(labels, detections.scores.tolist(), detections.xyxy.tolist(),
                                                       strict=True) if lab == cls),
            reverse=True,
        )  # fmt: skip
        gts = [o for o in truth.objects if o.label == cls]
        used: set[int] = set()
        c = counts.setdefault(cls, ClassCounts())
        for _score, box in preds:
            best, best_iou = -1, min_iou
            for i, gt in enumerate(gts):
                overlap = iou(box, gt.box)
                if i not in used and overlap >= best_iou:
                    best, best_iou = i, overlap
            if best >= 0:
                used.add(best)
                c.tp += 1
            else:  # no label, or a duplicate box of an already matched one
                c.fp += 1
        c.fn += sum(1 for i, g in enumerate(gts) if i not in used and g.visible >= min_visible)


@dataclass(slots=True)
class PredictedEpisode:
    """One episode as the analytics reported it (from drafts or received ObjectEvents)."""

    analytic: str
    zone: str
    episode_id: str
    start_t: float
    label: str = ""
    phases: dict[str, float] = field(default_factory=dict)  # phase -> first time it was reported
    end_t: float | None = None
    outcome: str | None = None
    dwell_s: float | None = None
    plate: str | None = None


def episodes_from(events: Iterable[tuple[float, str, str, str, str, str | None, str | None, float, str | None]]
                  ) -> list[PredictedEpisode]:  # fmt: skip
    """Group (t, type, analytic, zone, episode_id, phase, outcome, dwell_s, plate) into episodes."""
    out: dict[str, PredictedEpisode] = {}
    for t, kind, analytic, zone, episode_id, phase, outcome, dwell, plate in events:
        ep = out.get(episode_id)
        if ep is None:
            ep = out[episode_id] = PredictedEpisode(analytic, zone, episode_id, t)
        if phase is not None:
            ep.phases.setdefault(phase, t)
        if plate:
            ep.plate = plate
        if kind == "end":
            ep.end_t, ep.outcome, ep.dwell_s = t, outcome, dwell
    return sorted(out.values(), key=lambda e: e.start_t)


@dataclass(slots=True)
class EventMatch:
    """A labelled event and the episode that matched it (None: missed)."""

    clip: str
    truth: EventLabel
    predicted: PredictedEpisode | None

    @property
    def delay_s(self) -> float | None:
        """From the true onset to the episode's first event."""
        return None if self.predicted is None else self.predicted.start_t - self.truth.start_s

    @property
    def dwell_error_s(self) -> float | None:
        """|reported dwell at end - true stationary time| (parking)."""
        p = self.predicted
        if p is None or p.dwell_s is None or self.truth.dwell_s is None or p.outcome == "expired":
            return None
        # The analytics clock dwell from the stop; the label too. Compare like with like.
        return abs(p.dwell_s - self.truth.dwell_s)

    @property
    def warning_error_s(self) -> float | None:
        """Reported warning time - when it was due (parking)."""
        p = self.predicted
        due = self.truth.milestones.get("warning")
        if p is None or due is None or "warning" not in p.phases:
            return None
        return p.phases["warning"] - due


def match_events(clip: str, truths: Sequence[EventLabel], predicted: Sequence[PredictedEpisode],
                 clip_end: float, slack_s: float = 2.0) -> tuple[list[EventMatch], list[PredictedEpisode]]:  # fmt: skip
    """Pair labelled events with episodes of the same analytic (and zone when labelled) overlapping in time.

    Returns the matches (missed ones with predicted None) and the unmatched (false) episodes.
    """
    free = list(predicted)
    matches = []
    for truth in sorted(truths, key=lambda e: e.start_s):
        end = (truth.end_s if truth.end_s is not None else clip_end) + slack_s
        candidates = [p for p in free if p.analytic == truth.analytic and (not truth.zone or p.zone == truth.zone)
                      and truth.start_s - slack_s <= p.start_t <= end]  # fmt: skip
        best = min(candidates, key=lambda p: abs(p.start_t - truth.start_s), default=None)
        if best is not None:
            free.remove(best)
        matches.append(EventMatch(clip, truth, best))
    return matches, free


@dataclass(slots=True)
class AnalyticFigures:
    """Event-level figures of one analytic over many clips."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    delays: list[float] = field(default_factory=list)
    dwell_errors: list[float] = field(default_factory=list)
    warning_errors: list[float] = field(default_factory=list)
    outcomes_right: int = 0
    outcomes_total: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        """Rounded figures for printing and JSON."""

        def med(values: list[float]) -> float | None:
            return round(statistics.median(values), 2) if values else None

        return {
            "events": self.tp + self.fn, "detected": self.tp, "false": self.fp,
            "precision": round(self.tp / (self.tp + self.fp), 3) if self.tp + self.fp else None,
            "recall": round(self.tp / (self.tp + self.fn), 3) if self.tp + self.fn else None,
            "delay_median_s": med(self.delays), "delay_max_s": round(max(self.delays), 2) if self.delays else None,
            "dwell_error_median_s": med(self.dwell_errors),
            "dwell_error_max_s": round(max(self.dwell_errors), 2) if self.dwell_errors else None,
            "warning_error_median_s": med(self.warning_errors),
            "outcome_accuracy": round(self.outcomes_right / self.outcomes_total, 3) if self.outcomes_total else None,
        }  # fmt: skip


def summarise(matches: Iterable[EventMatch], false_episodes: Iterable[PredictedEpisode]) -> dict[str, AnalyticFigures]:
    """Aggregate matches and false episodes per analytic."""
    out: dict[str, AnalyticFigures] = defaultdict(AnalyticFigures)
    for m in matches:
        fig = out[m.truth.analytic]
        if m.predicted is None:
            fig.fn += 1
            continue
        fig.tp += 1
        for values, value in ((fig.delays, m.delay_s), (fig.dwell_errors, m.dwell_error_s),
                              (fig.warning_errors, m.warning_error_s)):  # fmt: skip
            if value is not None:
                values.append(value)
        if m.truth.outcome is not None and m.predicted.outcome is not None:
            fig.outcomes_total += 1
            fig.outcomes_right += int(m.truth.outcome == m.predicted.outcome)
    for p in false_episodes:
        out[p.analytic].fp += 1
    return dict(out)
