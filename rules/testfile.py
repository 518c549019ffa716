"""Rule unit-test files (`qinghe rules test`): input series and events on a timeline, expected signals.

A test file names rule files and a registry, then lists tests; each test feeds readings, camera events
and camera status changes at offsets from `start`, and states the signals expected (and optionally
which incidents are open at given times). Failures print a diff of expected (-) against actual (+).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from qinghe.config import LocationConfig, SensorConfig, StrictModel, load_config
from qinghe.contracts import Colour, SensorKind, SignalStatus
from qinghe.yamlload import Loc
from rules.model import Duration

DEFAULT_START = "2026-03-02T08:00:00+08:00"  # a Monday, a working day
_TOKEN = re.compile(r"^(?:(_)|(-?\d+(?:\.\d+)?)(?:([+-]\d+(?:\.\d+)?))?)(?:x(\d+))?$")


def parse_time(value: object) -> float:
    """An RFC 3339 timestamp -> epoch seconds (ValueError otherwise)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a time needs a timezone offset, e.g. 2026-03-02T08:00:00+08:00")
        return value.timestamp()
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an RFC 3339 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ValueError("a time needs a timezone offset, e.g. 2026-03-02T08:00:00+08:00")
    return parsed.timestamp()


def expand_series(text: str) -> list[float | None]:
    """`"40 80x3 10+5x3 _x2"` -> 40 80 80 80 10 15 20 None None (None = no sample at that step)."""
    out: list[float | None] = []
    for token in str(text).split():
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError(f"bad series token {token!r}: use 40, 80x6 (six samples), 10+5x4 (10 15 20 25), _ or _x3")
        gap, start, step, count = match.groups()
        n = int(count) if count is not None else 1
        if n < 1:
            raise ValueError(f"bad series token {token!r}: the count after x must be at least 1")
        if gap:
            out.extend([None] * n)
            continue
        first, delta = float(start), float(step) if step else 0.0
        out.extend(first + delta * i for i in range(n))
    if not out:
        raise ValueError("a series needs at least one value")
    return out


def _time_text(value: Any) -> Any:
    """YAML reads an unquoted 2026-03-02T08:00:00+08:00 as a datetime; keep it as checked text."""
    if value is None:
        return None
    parse_time(value)
    return value.isoformat() if isinstance(value, datetime) else value


TimeText = Annotated[str, BeforeValidator(_time_text)]


def _series_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


SeriesText = Annotated[str, BeforeValidator(_series_text)]


class ReadingSeries(StrictModel):
    """Samples of one sensor: every `interval` from `at`, one value per field per step."""

    sensor: str
    at: Duration = 0.0
    interval: Duration | None = Field(None, gt=0)
    values: dict[str, SeriesText] = Field(min_length=1, description="field -> series, e.g. pm25: 40 80x6 _x3")

    @field_validator("values")
    @classmethod
    def _check_values(cls, values: dict[str, str]) -> dict[str, str]:
        for text in values.values():
            expand_series(text)
        return values


class SnapshotSpec(StrictModel):
    """A snapshot reference carried by a test event."""

    role: str = "best"
    topic: str | None = None


class EventSpec(StrictModel):
    """A camera event at an offset."""

    at: Duration
    camera: str
    analytic: str
    type: Literal["start", "update", "end"] = "start"
    label: str = "object"
    zone: str | None = None
    phase: str | None = None
    outcome: str | None = None
    episode: str | None = None
    plate: str | None = None
    score: float = Field(0.9, ge=0, le=1)
    dwell_s: float = Field(0.0, ge=0)
    track_id: int = 1
    event_id: str | None = None
    snapshots: list[SnapshotSpec] = Field(default_factory=list)


class CameraStatusSpec(StrictModel):
    """A camera status change at an offset."""

    at: Duration
    camera: str
    state: Literal["online", "degraded", "offline"]


class Expected(StrictModel):
    """A signal expected at an offset; only the keys given are compared (besides at, rule and status)."""

    at: Duration
    rule: str
    status: SignalStatus
    colour: Colour | None = None
    key: str | None = None
    flapping: bool | None = None
    transition: str | None = None
    message_contains: str | None = None
    actions: list[str] | None = Field(None, description="action kinds, in order")
    explain: dict[str, str | int | float | bool | None] | None = None


class OpenIncident(StrictModel):
    """An incident expected open (firing or unknown) at a time."""

    rule: str
    key: str | None = None
    colour: Colour | None = None


class StateAt(StrictModel):
    """Exactly these incidents are open at `at`."""

    at: Duration
    open: list[OpenIncident] = Field(default_factory=list)


class RuleTest(StrictModel):
    """One test case."""

    name: str = Field(min_length=1)
    start: TimeText | None = Field(None, description="RFC 3339 time of offset 0; default the file's")
    interval: Duration | None = Field(None, gt=0, description="default step of reading series; default the file's")
    readings: list[ReadingSeries] = Field(default_factory=list)
    events: list[EventSpec] = Field(default_factory=list)
    camera_status: list[CameraStatusSpec] = Field(default_factory=list)
    until: Duration | None = Field(None, description="run time until this offset; default last input + 10m")
    expect: list[Expected] = Field(default_factory=list)
    expect_exactly: bool = Field(True, description="signals not listed in `expect` fail the test")
    open_at: list[StateAt] = Field(default_factory=list)


class CameraSpec(StrictModel):
    """A camera for tests run without a central config."""

    id: str
    kind: str = "generic"
    zones: list[str] = Field(default_factory=list)
    location: LocationConfig | None = None
    speaker_id: str | None = None


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class RuleTestFile(StrictModel):
    """A rule unit-test file."""

    rule_files: Annotated[list[str], BeforeValidator(_one_or_many)] = Field(
        min_length=1, description="rule files under test, relative to this file"
    )
    config: str | None = Field(None, description="central config whose registry the rules are checked against")
    sensors: list[SensorConfig] = Field(default_factory=list, description="extra sensors (tests without a config)")
    cameras: list[CameraSpec] = Field(default_factory=list, description="extra cameras (tests without a config)")
    start: TimeText = DEFAULT_START
    interval: Duration = Field(60.0, gt=0)
    tests: list[RuleTest] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleTestFile:
        names = [t.name for t in self.tests]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"two tests are named {duplicate!r}")
        return self


def test_file_checks(model: RuleTestFile) -> list[tuple[Loc, str]]:
    """Cross-checks inside a test file: reading fields belong to some sensor kind."""
    known = {name for kind in SensorKind for name in _fields(kind)}
    problems: list[tuple[Loc, str]] = []
    for i, test in enumerate(model.tests):
        for j, series in enumerate(test.readings):
            for name in series.values:
                if name not in known:
                    problems.append((("tests", i, "readings", j, "values", name), f"unknown field {name!r}"))
    return problems


def _fields(kind: SensorKind) -> list[str]:
    from qinghe.sensors import KINDS

    return list(KINDS[kind].fields)


def load_test_file(path: str | Path) -> RuleTestFile:
    """Load and validate a rule test file (ConfigError with file:line: key: message)."""
    return load_config(path, RuleTestFile, checks=[test_file_checks])
