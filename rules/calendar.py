"""Holiday calendars (public holidays and adjusted working days, as data) and schedules over local time."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator, model_validator

from qinghe.config import StrictModel, load_config
from qinghe.yamlload import Loc

DEFAULT_TIMEZONE = "Asia/Shanghai"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_TYPES = frozenset({*WEEKDAYS, "all", "weekday", "weekend", "workday", "offday", "holiday"})
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def check_timezone(name: str) -> str:
    """The name if it is a known IANA time zone, else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from None
    return name


# ----- calendar files -------------------------------------------------------------------------------


class HolidayModel(StrictModel):
    """A public holiday: one day or an inclusive range of days off."""

    name: str = Field(min_length=1)
    from_: date = Field(alias="from")
    to: date | None = None

    @model_validator(mode="after")
    def _check_range(self) -> HolidayModel:
        if self.to is not None and self.to < self.from_:
            raise ValueError(f"`to` ({self.to}) is before `from` ({self.from_})")
        return self

    def days(self) -> list[date]:
        """Every date of the holiday."""
        last = self.to or self.from_
        return [self.from_ + timedelta(days=i) for i in range((last - self.from_).days + 1)]


class WorkingDayModel(StrictModel):
    """An adjusted working day (调休上班): a weekend day on which people work."""

    date: date
    name: str = ""


class CalendarModel(StrictModel):
    """A holiday calendar file, e.g. config/holidays/cn-2026.yaml."""

    calendar: str = Field(min_length=1, description="calendar name, e.g. cn-2026")
    year: int = Field(ge=2000, le=2100)
    timezone: str = DEFAULT_TIMEZONE
    source: str = ""
    holidays: list[HolidayModel] = Field(default_factory=list)
    working_days: list[WorkingDayModel] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, name: str) -> str:
        return check_timezone(name)


def calendar_checks(model: CalendarModel) -> Iterable[tuple[Loc, str]]:
    """Dates inside the year, no overlaps, working days that really move work onto a weekend."""
    seen: dict[date, str] = {}
    for i, holiday in enumerate(model.holidays):
        for day in holiday.days():
            if day.year != model.year:
                yield ("holidays", i, "from"), f"{day} is outside the calendar year {model.year}"
                break
            if day in seen:
                yield ("holidays", i, "from"), f"{day} is already part of {seen[day]}"
                break
            seen[day] = holiday.name
    for i, working in enumerate(model.working_days):
        if working.date.year != model.year:
            yield ("working_days", i, "date"), f"{working.date} is outside the calendar year {model.year}"
        elif working.date in seen:
            yield ("working_days", i, "date"), f"{working.date} is a holiday ({seen[working.date]})"
        elif working.date.weekday() < 5:
            yield (
                ("working_days", i, "date"),
                f"{working.date} is a {WEEKDAYS[working.date.weekday()]}: already a working day",
            )


def load_calendar(path: str | Path) -> CalendarModel:
    """Load and check a calendar file; ConfigError with file:line: key: message on any problem."""
    return load_config(path, CalendarModel, checks=[calendar_checks])


@dataclass(frozen=True, slots=True)
class DayCalendar:
    """Which local dates are holidays or adjusted working days (union of calendar files)."""

    holidays: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()
    years: frozenset[int] = frozenset()

    @classmethod
    def merge(cls, calendars: Sequence[CalendarModel]) -> DayCalendar:
        """One calendar from several files (e.g. one per year)."""
        holidays = {d for c in calendars for h in c.holidays for d in h.days()}
        working = {w.date for c in calendars for w in c.working_days}
        return cls(frozenset(holidays), frozenset(working), frozenset(c.year for c in calendars))

    def is_workday(self, day: date) -> bool:
        """A working day: Mon-Fri unless a holiday, or an adjusted working day on a weekend."""
        if day in self.working_days:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def matches(self, day: date, day_type: str) -> bool:
        """Does `day` belong to `day_type` (mon..sun, all, weekday, weekend, workday, offday, holiday)?"""
        if day_type == "all":
            return True
        if day_type in WEEKDAYS:
            return WEEKDAYS[day.weekday()] == day_type
        if day_type == "weekday":
            return day.weekday() < 5
        if day_type == "weekend":
            return day.weekday() >= 5
        if day_type == "holiday":
            return day in self.holidays
        workday = self.is_workday(day)
        return workday if day_type == "workday" else not workday


# ----- schedules ------------------------------------------------------------------------------------


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class WindowModel(StrictModel):
    """A time-of-day window on some kinds of day; `to` before `from` crosses midnight."""

    days: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=lambda: ["all"])
    from_: str = Field("00:00", alias="from", description="HH:MM local time")
    to: str = Field("24:00", description="HH:MM local time; 24:00 is the end of the day")

    @field_validator("days")
    @classmethod
    def _check_days(cls, days: list[str]) -> list[str]:
        for day in days:
            if day not in DAY_TYPES:
                raise ValueError(f"unknown day {day!r} (use {', '.join(sorted(DAY_TYPES))})")
        return days

    @field_validator("from_", "to")
    @classmethod
    def _check_time(cls, text: str) -> str:
        if not isinstance(text, str) or not _HHMM.match(text):
            raise ValueError(f"{text!r} is not a HH:MM time (00:00 to 24:00)")
        return text

    @model_validator(mode="after")
    def _check_span(self) -> WindowModel:
        if self.from_ == self.to:
            raise ValueError("`from` equals `to`: the window is empty (use 00:00 to 24:00 for a whole day)")
        return self


class ScheduleModel(StrictModel):
    """A named schedule: active during any of its windows, in its time zone."""

    windows: list[WindowModel] = Field(min_length=1)
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, name: str | None) -> str | None:
        return None if name is None else check_timezone(name)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A compiled schedule: `active(t)` and `next_change(t)` over epoch seconds (pure)."""

    name: str
    tz: ZoneInfo
    windows: tuple[tuple[tuple[str, ...], int, int], ...]  # (day types, from minute, to minute)
    calendar: DayCalendar = field(default_factory=DayCalendar)

    @classmethod
    def compile(cls, name: str, model: ScheduleModel, default_tz: str, calendar: DayCalendar) -> Schedule:
        """Build from the config model."""
        windows = tuple((tuple(w.days), _minutes(w.from_), _minutes(w.to)) for w in model.windows)
        return cls(name, ZoneInfo(model.timezone or default_tz), windows, calendar)

    def active(self, t: float) -> bool:
        """Is the schedule active at epoch second `t`?"""
        return _active(self, int(t // 60))

    def next_change(self, t: float) -> float | None:
        """The first epoch second after `t` at which `active` flips (None if never within 9 days)."""
        now = self.active(t)
        for boundary in self._boundaries(t):
            if self.active(boundary) != now:
                return boundary
        return None

    def _boundaries(self, t: float) -> list[float]:
        local = datetime.fromtimestamp(t, self.tz)
        out: set[float] = set()
        for offset in range(-1, 9):
            day = local.date() + timedelta(days=offset)
            for minute in {m for _days, start, end in self.windows for m in (start, end)} | {0}:
                stamp = datetime.combine(day, time(0), self.tz) + timedelta(minutes=minute)
                if stamp.timestamp() > t:
                    out.add(stamp.timestamp())
        return sorted(out)


@lru_cache(maxsize=65536)
def _active(schedule: Schedule, minute_epoch: int) -> bool:
    local = datetime.fromtimestamp(minute_epoch * 60, schedule.tz)
    today, minute = local.date(), local.hour * 60 + local.minute
    yesterday = today - timedelta(days=1)
    for days, start, end in schedule.windows:
        if start < end:
            if start <= minute < end and any(schedule.calendar.matches(today, d) for d in days):
                return True
            continue
        # crosses midnight: belongs to the day it starts on
        if minute >= start and any(schedule.calendar.matches(today, d) for d in days):
            return True
        if minute < end and any(schedule.calendar.matches(yesterday, d) for d in days):
            return True
    return False
