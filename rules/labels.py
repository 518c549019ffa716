"""Labelled incidents for backtests: which real incidents happened when, to score rules by precision/recall."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from qinghe.config import StrictModel, load_config
from qinghe.yamlload import Loc
from rules.model import Duration
from rules.testfile import parse_time


def _time(value: object) -> float:
    return parse_time(value)


Time = Annotated[float, BeforeValidator(_time)]


class LabelModel(StrictModel):
    """One real incident: when, and whatever identifies it (rule, type, key, zone, sensor, camera)."""

    from_: Time = Field(alias="from", description="RFC 3339 start")
    to: Time = Field(description="RFC 3339 end")
    rule: str | None = None
    type: str | None = None
    key: str | None = None
    zone: str | None = None
    sensor: str | None = None
    camera: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> LabelModel:
        if self.to < self.from_:
            raise ValueError("`to` is before `from`")
        if self.rule is None and self.type is None:
            raise ValueError("give `rule` or `type` so the label can be matched to rules")
        return self


class LabelsFile(StrictModel):
    """A labels file."""

    tolerance: Duration = Field(600.0, ge=0, description="time slack when matching incidents to labels")
    labels: list[LabelModel] = Field(default_factory=list)


def _no_checks(_model: LabelsFile) -> Iterable[tuple[Loc, str]]:
    return ()


def load_labels(path: str | Path) -> LabelsFile:
    """Load and validate a labels file (ConfigError with file:line: key: message)."""
    return load_config(path, LabelsFile, checks=[_no_checks])


@dataclass(frozen=True, slots=True)
class Predicted:
    """What the scorer needs of a replayed incident."""

    rule_id: str
    type: str
    key: str
    zone: str
    sensors: frozenset[str]
    camera: str | None
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Score:
    """Precision and recall of one rule against the labels in its scope."""

    rule_id: str
    predicted: int
    true_positive: int
    labels: int
    found: int

    @property
    def precision(self) -> float | None:
        """Share of incidents that match a label."""
        return self.true_positive / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        """Share of labels found by some incident."""
        return self.found / self.labels if self.labels else None


def _matches(label: LabelModel, incident: Predicted, tolerance: float) -> bool:
    if label.rule is not None and label.rule != incident.rule_id:
        return False
    if label.type is not None and label.type != incident.type:
        return False
    if label.key is not None and label.key != incident.key:
        return False
    if label.zone is not None and label.zone != incident.zone:
        return False
    if label.sensor is not None and label.sensor not in incident.sensors:
        return False
    if label.camera is not None and label.camera != incident.camera:
        return False
    return incident.start <= label.to + tolerance and incident.end >= label.from_ - tolerance


def score(labels: LabelsFile, incidents: Sequence[Predicted], rule_types: dict[str, str]) -> list[Score]:
    """Per rule: precision over its incidents, recall over the labels in its scope (its id or its type)."""
    out = []
    for rule_id, rtype in sorted(rule_types.items()):
        scope = [lb for lb in labels.labels if lb.rule == rule_id or (lb.rule is None and lb.type == rtype)]
        if not scope:
            continue
        mine = [i for i in incidents if i.rule_id == rule_id]
        tp = sum(1 for i in mine if any(_matches(lb, i, labels.tolerance) for lb in scope))
        found = sum(1 for lb in scope if any(_matches(lb, i, labels.tolerance) for i in mine))
        out.append(Score(rule_id, len(mine), tp, len(scope), found))
    return out
