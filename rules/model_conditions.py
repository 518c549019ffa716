"""The rule language's inputs and conditions: selectors, event filters and condition trees (strict models)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from qinghe.config import StrictModel
from qinghe.contracts import EventType, SensorKind
from rules.lang import parse_duration, parse_value_expr

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
Duration = Annotated[float, BeforeValidator(parse_duration)]


def as_list(value: Any) -> Any:
    """A single scalar as a one-item list (YAML `kind: air` means `kind: [air]`)."""
    return [value] if isinstance(value, str | int | float) and not isinstance(value, bool) else value


StrList = Annotated[list[str], BeforeValidator(as_list)]
OPS = ("above", "below", "at_least", "at_most")
Transition = Literal["opened", "escalated", "deescalated", "updated", "unknown", "data_back", "flapping", "resolved"]


# ----- selectors -------------------------------------------------------------------------------------


class ReadingSelector(StrictModel):
    """Which sensor readings a rule reads; every list is an OR, the keys are ANDed; empty = any."""

    kind: StrList = Field(default_factory=list, description="sensor kinds, e.g. air")
    sensor: StrList = Field(default_factory=list, description="sensor ids from the registry")
    zone: StrList = Field(default_factory=list, description="zones from the registry")
    tag: StrList = Field(default_factory=list, description="registry tags")

    @field_validator("kind")
    @classmethod
    def _check_kind(cls, kinds: list[str]) -> list[str]:
        known = {k.value for k in SensorKind}
        for kind in kinds:
            if kind not in known:
                raise ValueError(f"unknown sensor kind {kind!r} (known: {', '.join(sorted(known))})")
        return kinds


class EventFilter(StrictModel):
    """Which camera events match; every list is an OR, the keys are ANDed; empty = any."""

    analytic: StrList = Field(default_factory=list, description="illegal_parking, dumping, smoke_fire, ...")
    label: StrList = Field(default_factory=list, description="object label, e.g. car, smoke")
    camera: StrList = Field(default_factory=list, description="camera ids from the registry")
    camera_kind: StrList = Field(default_factory=list, description="generic, road_warden, ar_tower, thermal")
    zone: StrList = Field(default_factory=list)
    type: StrList = Field(default_factory=list, description="start, update, end")
    phase: StrList = Field(default_factory=list, description="e.g. dwelling, warning, violation")
    outcome: StrList = Field(default_factory=list, description="on end events: complied, left, ...")
    min_score: float | None = Field(None, ge=0, le=1)

    @field_validator("type")
    @classmethod
    def _check_type(cls, types: list[str]) -> list[str]:
        for value in types:
            if value not in {t.value for t in EventType}:
                raise ValueError(f"unknown event type {value!r} (start, update or end)")
        return types


# ----- conditions ------------------------------------------------------------------------------------


class _Compare(StrictModel):
    """Exactly one comparison: above (>), below (<), at_least (>=), at_most (<=)."""

    above: float | None = None
    below: float | None = None
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _one_op(self) -> _Compare:
        given = [op for op in OPS if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of above, below, at_least, at_most (got {len(given)})")
        return self

    def op(self) -> tuple[str, float]:
        """(operator name, threshold)."""
        for name in OPS:
            value = getattr(self, name)
            if value is not None:
                return name, float(value)
        raise AssertionError("validated: one op is set")


class ValueCond(_Compare):
    """A sensor value against a threshold, e.g. {value: "avg(pm25, 10m)", above: 75}."""

    value: str
    full_window: bool = Field(False, description="an aggregate is unknown until its series covers the window")

    @field_validator("value")
    @classmethod
    def _check_expr(cls, text: str) -> str:
        parse_value_expr(text)
        return text


class EventCond(StrictModel):
    """The instance's latest camera event matches; `type` defaults to start/update (an ongoing episode)."""

    event: EventFilter


class CountCond(_Compare):
    """Matching events (type start unless given) within a sliding window, e.g. 3 dumping events in 24h."""

    count: EventFilter
    window: Duration = Field(gt=0)


class ActiveCond(_Compare):
    """Episodes currently open (started, not ended) that match, e.g. standing water seen in the zone."""

    active: EventFilter


class AbsentCond(StrictModel):
    """Deadman: nothing arrived for this instance for at least the duration."""

    absent: Duration = Field(gt=0)


class ScheduleCond(StrictModel):
    """A named schedule of this file is active now."""

    schedule: str


class CameraStateCond(StrictModel):
    """The instance's camera reports one of these states on camera/{id}/status."""

    camera_state: StrList

    @field_validator("camera_state")
    @classmethod
    def _check_state(cls, states: list[str]) -> list[str]:
        for state in states:
            if state not in ("online", "degraded", "offline"):
                raise ValueError(f"unknown camera state {state!r} (online, degraded, offline)")
        return states


class AllCond(StrictModel):
    """Every condition holds."""

    all: list[Condition] = Field(min_length=1)


class AnyCond(StrictModel):
    """At least one condition holds."""

    any: list[Condition] = Field(min_length=1)


class NotCond(StrictModel):
    """The condition does not hold (unknown stays unknown)."""

    not_: Condition = Field(alias="not")


_COND_KEYS = ("value", "event", "count", "active", "absent", "schedule", "camera_state", "all", "any", "not")


def _cond_tag(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in _COND_KEYS:
            if key in data:
                return f"cond[{key}]"
        return None
    if isinstance(data, StrictModel):
        return _TAG_OF.get(type(data).__name__)
    return None


_TAG_OF = {
    "ValueCond": "cond[value]", "EventCond": "cond[event]", "CountCond": "cond[count]",
    "ActiveCond": "cond[active]", "AbsentCond": "cond[absent]", "ScheduleCond": "cond[schedule]",
    "CameraStateCond": "cond[camera_state]", "AllCond": "cond[all]", "AnyCond": "cond[any]", "NotCond": "cond[not]",
}  # fmt: skip


Condition = Annotated[
    Annotated[ValueCond, Tag("cond[value]")]
    | Annotated[EventCond, Tag("cond[event]")]
    | Annotated[CountCond, Tag("cond[count]")]
    | Annotated[ActiveCond, Tag("cond[active]")]
    | Annotated[AbsentCond, Tag("cond[absent]")]
    | Annotated[ScheduleCond, Tag("cond[schedule]")]
    | Annotated[CameraStateCond, Tag("cond[camera_state]")]
    | Annotated[AllCond, Tag("cond[all]")]
    | Annotated[AnyCond, Tag("cond[any]")]
    | Annotated[NotCond, Tag("cond[not]")],
    Discriminator(
        _cond_tag,
        custom_error_type="condition",
        custom_error_message="a condition needs one of the keys: " + ", ".join(_COND_KEYS),
    ),
]

for _model in (AllCond, AnyCond, NotCond):
    _model.model_rebuild()
