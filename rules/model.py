"""The rule language as strict pydantic models: every key checked, every error mapped to file:line: key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from qinghe.config import StrictModel
from qinghe.contracts import Colour
from qinghe.yamlload import Loc
from rules.calendar import DEFAULT_TIMEZONE, ScheduleModel, check_timezone
from rules.lang import KEY_FIELDS, MESSAGE_FIELDS, check_template, parse_value_expr
from rules.model_conditions import (
    ID_PATTERN,
    OPS,
    AbsentCond,
    ActiveCond,
    AllCond,
    AnyCond,
    CameraStateCond,
    Condition,
    CountCond,
    Duration,
    EventCond,
    EventFilter,
    NotCond,
    ReadingSelector,
    ScheduleCond,
    StrList,
    Transition,
    ValueCond,
    as_list,
)

__all__ = [
    "ID_PATTERN", "OPS", "AbsentCond", "ActiveCond", "AllCond", "AnyCond", "CameraStateCond", "Condition", "CountCond",
    "Duration", "EventCond", "EventFilter", "NotCond", "ReadingSelector", "ScheduleCond", "StrList", "Transition",
    "ValueCond",
]  # fmt: skip

# ----- tiers, resolution, behaviour ---------------------------------------------------------------


class TierModel(StrictModel):
    """One colour level: the rule's `value` against a threshold, or a full `when` condition."""

    colour: Colour
    above: float | None = None
    below: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    when: Condition | None = None
    for_: Duration | None = Field(None, alias="for", description="sustained duration; default the rule's")

    @model_validator(mode="after")
    def _one_form(self) -> TierModel:
        ops = [op for op in OPS if getattr(self, op) is not None]
        if len(ops) > 1:
            raise ValueError(f"give one threshold, not several ({', '.join(ops)})")
        if self.when is not None and ops:
            raise ValueError(f"give either `when` or a threshold ({ops[0]}), not both")
        if self.when is None and len(ops) != 1:
            raise ValueError("a tier needs a threshold (above, below, at_least or at_most) or a `when` condition")
        return self

    def threshold(self) -> tuple[str, float] | None:
        """(op, value) for the shorthand form, else None."""
        return _shorthand(self)


class ResolveModel(StrictModel):
    """When a firing instance resolves: a threshold (hysteresis) or condition, held for `for`."""

    above: float | None = None
    below: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    when: Condition | None = None
    for_: Duration = Field(0.0, alias="for")

    @model_validator(mode="after")
    def _one_form(self) -> ResolveModel:
        ops = [op for op in OPS if getattr(self, op) is not None]
        if len(ops) > 1 or (ops and self.when is not None):
            raise ValueError("give at most one of a threshold or `when`")
        return self

    def threshold(self) -> tuple[str, float] | None:
        """(op, value) for the shorthand form, else None."""
        return _shorthand(self)


def _shorthand(model: TierModel | ResolveModel) -> tuple[str, float] | None:
    """The one threshold operator a tier or resolve block sets, with its value."""
    for op in OPS:
        value = getattr(model, op)
        if value is not None:
            return op, float(value)
    return None


def _gap_shorthand(value: Any) -> Any:
    return {"after": value} if isinstance(value, str | int | float) and not isinstance(value, bool) else value


class GapModel(StrictModel):
    """Silent sensors: after this long without data the instance is `unknown` (neither reset nor frozen)."""

    after: Duration | None = Field(None, gt=0, description="default: factor x the sensor's expected_interval_s")
    factor: float = Field(3.0, gt=1)
    notify: Literal["firing", "always", "never"] = Field("firing", description="which instances signal UNKNOWN")
    expire: Duration = Field(86400.0, gt=0, description="an instance unknown this long is resolved as expired")


class FlappingModel(StrictModel):
    """Too many fire/resolve cycles within `window`: hold the incident open and mark it flapping."""

    window: Duration = Field(gt=0)
    cycles: int = Field(3, ge=2, description="resolves within the window that make it flapping")
    settle: Duration | None = Field(None, gt=0, description="quiet time before a held incident resolves")


class CorrelateModel(StrictModel):
    """Raise the colour when another source near this instance spiked recently (video + sensor fusion)."""

    name: str = ""
    readings: ReadingSelector | None = None
    events: EventFilter | None = None
    when: Condition | None = Field(None, description="what counts as a spike of a correlated sensor")
    within_m: float = Field(gt=0, le=100_000, description="distance from this instance, metres")
    within: Duration = Field(gt=0, description="how recent the spike or event must be")
    raise_: int = Field(1, alias="raise", ge=1, le=3, description="colour levels to add")

    @model_validator(mode="after")
    def _one_source(self) -> CorrelateModel:
        if (self.readings is None) == (self.events is None):
            raise ValueError("give exactly one of `readings` or `events`")
        if self.readings is not None and self.when is None:
            raise ValueError("correlating readings needs `when` (what counts as a spike)")
        return self


# ----- actions ---------------------------------------------------------------------------------------


def _on_opened() -> list[Transition]:
    return ["opened"]


class _ActionBase(StrictModel):
    send_on: Annotated[list[Transition], BeforeValidator(as_list)] = Field(
        default_factory=_on_opened, description="transitions that carry this action (default: opened)"
    )


class VoiceAction(_ActionBase):
    """Speak a warning on a road-warden speaker (default: the speaker at the event's camera)."""

    kind: Literal["voice"]
    speaker: str = Field("", description="speaker id; empty = the camera's speaker_id from the registry")
    text: str = Field(min_length=1, description="Chinese text template, e.g. {plate|该车辆}请立即驶离")
    repeat: int = Field(2, ge=1, le=10)
    expires: Duration = Field(120.0, gt=0)

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str) -> str:
        check_template(text, MESSAGE_FIELDS)
        return text


class GraceAction(_ActionBase):
    """Closed-loop enforcement: alerting waits `grace`; resolved in time = complied, else violation."""

    kind: Literal["grace"]
    grace: Duration = Field(gt=0)
    settle: Duration = Field(
        0.0,
        ge=0,
        description="after grace, how long alerting waits for the edge's verdict: the edge confirms a departure "
        "only after the vehicle has been unseen for its occlusion_s (30 s by default); set it to about that",
    )
    violation_colour: Colour = Colour.ORANGE


class NotifyAction(_ActionBase):
    """Publish a notification on a topic suffix (alerting routes it)."""

    kind: Literal["notify"]
    topic: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class WebhookAction(_ActionBase):
    """Call a named webhook configured in alerting."""

    kind: Literal["webhook"]
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")


Action = Annotated[VoiceAction | GraceAction | NotifyAction | WebhookAction, Field(discriminator="kind")]


# ----- the rule --------------------------------------------------------------------------------------

PerField = Literal["sensor", "zone", "kind", "camera", "episode", "label", "analytic", "rule"]


class RuleModel(StrictModel):
    """One rule: what it reads, per what it keeps state, the tiers that map to colours, and its output."""

    id: str = Field(pattern=ID_PATTERN, max_length=80, description="unique; used in topics")
    type: str = Field(pattern=ID_PATTERN, max_length=60, description="incident type, e.g. air_pollution")
    description: str = ""
    enabled: bool = True
    readings: ReadingSelector | None = None
    events: EventFilter | None = None
    per: Annotated[list[PerField], BeforeValidator(as_list)] | None = None
    value: str | None = Field(None, description="expression the tier thresholds test, e.g. avg(pm25, 5m)")
    full_window: bool = Field(False, description="`value` is unknown until its series covers the window")
    for_: Duration = Field(0.0, alias="for", description="default sustained duration of every tier")
    tiers: list[TierModel] = Field(min_length=1, max_length=4)
    resolve: ResolveModel | None = None
    keep_firing_for: Duration = 0.0
    step_down: bool = Field(True, description="lower the colour when only a lower tier still holds")
    gap: Annotated[GapModel, BeforeValidator(_gap_shorthand)] = Field(default_factory=GapModel)
    flapping: FlappingModel | None = None
    schedule: str | None = Field(None, description="a schedule of this file; outside it the rule is quiet")
    correlate: list[CorrelateModel] = Field(default_factory=list)
    dedup_key: str | None = Field(None, description="template over key fields; default rule + instance key")
    message: str = "{description} {condition}: {value} ({colour_cn})"
    actions: list[Action] = Field(default_factory=list)
    max_instances: int = Field(50_000, ge=1)

    @field_validator("value")
    @classmethod
    def _check_value(cls, text: str | None) -> str | None:
        if text is not None:
            parse_value_expr(text)
        return text

    @field_validator("message")
    @classmethod
    def _check_message(cls, text: str) -> str:
        check_template(text, MESSAGE_FIELDS)
        return text

    def key_fields(self) -> list[str]:
        """The instance key fields (`per`), with the default filled in."""
        if self.per is not None:
            return list(self.per)
        if self.events is None:
            return ["sensor"]
        return ["episode"] if self.readings is None else ["zone"]


def rule_problems(rule: RuleModel, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Rule-level consistency problems, each with the exact key it is about."""
    yield from _input_problems(rule, loc)
    yield from _tier_problems(rule, loc)
    yield from _key_problems(rule, loc)


def _input_problems(rule: RuleModel, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if rule.readings is None and rule.events is None:
        yield loc, "a rule needs `readings`, `events` or both (what it watches)"
        return
    fields = set(rule.key_fields())
    if rule.readings is None and fields & {"sensor", "kind"}:
        yield (*loc, "per"), "per: sensor/kind needs `readings`"
    event_keys = fields & {"camera", "episode", "label", "analytic"}
    if rule.events is None and event_keys:
        yield (*loc, "per"), f"per: {', '.join(sorted(event_keys))} needs `events`"
    if "rule" in fields and len(fields) > 1:
        yield (*loc, "per"), "per: rule (one instance for the whole rule) cannot be combined with other fields"


def _tier_problems(rule: RuleModel, loc: Loc) -> Iterator[tuple[Loc, str]]:
    colours = [tier.colour for tier in rule.tiers]
    for i, colour in enumerate(colours):
        if colour in colours[:i]:
            yield (*loc, "tiers", i, "colour"), f"two tiers are {colour.value}"
        elif i and colours[i - 1].rank < colour.rank:
            yield (*loc, "tiers", i, "colour"), "list tiers from the highest colour down (red, orange, yellow, blue)"
    if rule.value is None:
        for i, tier in enumerate(rule.tiers):
            if tier.threshold() is not None:
                yield (*loc, "tiers", i), "a threshold tier needs the rule's `value` (e.g. value: pm25)"
        if rule.resolve is not None and rule.resolve.threshold() is not None:
            yield (*loc, "resolve"), "a resolve threshold needs the rule's `value` (e.g. value: pm25)"


def _key_problems(rule: RuleModel, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if rule.dedup_key is None:
        return
    try:
        check_template(rule.dedup_key, KEY_FIELDS)
    except ValueError as exc:
        yield (*loc, "dedup_key"), str(exc)
        return
    allowed = set(rule.key_fields()) | {"rule", "type"} | ({"camera"} if "episode" in rule.key_fields() else set())
    for name in re.findall(r"\{([A-Za-z_]\w*)", rule.dedup_key):
        if name not in allowed:
            yield (
                (*loc, "dedup_key"),
                (
                    f"{{{name}}} is not part of the instance key (per: {', '.join(rule.key_fields())}); "
                    f"use only {', '.join(sorted(allowed))}"
                ),
            )


class RuleFileModel(StrictModel):
    """A rule file: optional calendars and schedules, and the rules."""

    version: Literal[1] = 1
    timezone: str = DEFAULT_TIMEZONE
    calendars: Annotated[list[str], BeforeValidator(as_list)] = Field(
        default_factory=list, description="holiday calendar files, relative to this file"
    )
    schedules: dict[str, ScheduleModel] = Field(default_factory=dict)
    rules: list[RuleModel] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, name: str) -> str:
        return check_timezone(name)

    @field_validator("schedules")
    @classmethod
    def _check_names(cls, schedules: dict[str, ScheduleModel]) -> dict[str, ScheduleModel]:
        for name in schedules:
            if not re.match(ID_PATTERN, name):
                raise ValueError(f"schedule name {name!r} must match {ID_PATTERN}")
        return schedules
