"""Holiday calendars and schedules: day types from the 2026 calendar, windows across midnight, boundaries."""

from __future__ import annotations

import textwrap
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from qinghe.yamlload import ConfigError
from rules.calendar import DayCalendar, Schedule, ScheduleModel, load_calendar

CN_2026 = Path(__file__).resolve().parents[2] / "config" / "holidays" / "cn-2026.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


@pytest.fixture(scope="module")
def cn2026() -> DayCalendar:
    return DayCalendar.merge([load_calendar(CN_2026)])


@pytest.mark.parametrize(
    ("day", "workday", "holiday"),
    [
        ("2026-01-01", False, True),   # 元旦
        ("2026-01-04", True, False),   # Sunday, adjusted working day
        ("2026-02-14", True, False),   # Saturday before Spring Festival, working
        ("2026-02-17", False, True),   # Spring Festival
        ("2026-02-23", False, True),   # last day of Spring Festival (a Monday)
        ("2026-02-24", True, False),
        ("2026-02-28", True, False),   # Saturday, adjusted working day
        ("2026-03-07", False, False),  # an ordinary Saturday
        ("2026-05-05", False, True),   # Labour Day holiday (a Tuesday)
        ("2026-05-09", True, False),   # Saturday, adjusted working day
        ("2026-09-20", True, False),   # Sunday, adjusted working day before National Day
        ("2026-10-07", False, True),
        ("2026-10-10", True, False),   # Saturday, adjusted working day
        ("2027-01-04", True, False),   # outside the calendar: plain weekdays
    ],
)  # fmt: skip
def test_cn_2026_day_types(cn2026: DayCalendar, day: str, workday: bool, holiday: bool) -> None:
    d = date.fromisoformat(day)
    assert cn2026.is_workday(d) is workday
    assert cn2026.matches(d, "holiday") is holiday
    assert cn2026.matches(d, "offday") is (not workday)


def test_cn_2026_has_33_holiday_days_and_6_adjusted_working_days(cn2026: DayCalendar) -> None:
    assert len(cn2026.holidays) == 33
    assert len(cn2026.working_days) == 6


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("{date: 2026-01-04, name: x}", None),
        ("{date: 2026-01-05, name: x}", "2026-01-05 is a mon: already a working day"),
        ("{date: 2026-01-02, name: x}", "2026-01-02 is a holiday"),
        ("{date: 2027-01-02, name: x}", "outside the calendar year 2026"),
    ],
)
def test_calendar_files_are_checked(tmp_path: Path, edit: str, message: str | None) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(textwrap.dedent(f"""\
        calendar: test
        year: 2026
        holidays:
          - {{name: 元旦, from: 2026-01-01, to: 2026-01-03}}
        working_days:
          - {edit}
        """), encoding="utf-8")  # fmt: skip
    if message is None:
        load_calendar(path)
        return
    with pytest.raises(ConfigError, match=message) as info:
        load_calendar(path)
    assert info.value.issues[0].line == 6


NO_HOLIDAYS = DayCalendar()


def _schedule(windows: list[dict[str, object]], calendar: DayCalendar = NO_HOLIDAYS) -> Schedule:
    return Schedule.compile("s", ScheduleModel.model_validate({"windows": windows}), "Asia/Shanghai", calendar)


@pytest.mark.parametrize(
    ("when", "active"),
    [
        ("2026-03-02 21:59", False), ("2026-03-02 22:00", True), ("2026-03-03 05:59", True),
        ("2026-03-03 06:00", False), ("2026-03-02 12:00", False),
    ],
)  # fmt: skip
def test_night_window_crosses_midnight(when: str, active: bool) -> None:
    night = _schedule([{"from": "22:00", "to": "06:00"}])
    assert night.active(at(when)) is active


def test_workday_windows_follow_the_calendar(cn2026: DayCalendar) -> None:
    office = _schedule([{"days": "workday", "from": "08:30", "to": "17:30"}], cn2026)
    assert office.active(at("2026-01-04 09:00"))  # a Sunday worked in lieu
    assert not office.active(at("2026-01-02 09:00"))  # a Friday holiday
    assert not office.active(at("2026-03-07 09:00"))  # a Saturday
    late = _schedule([{"days": ["fri"], "from": "23:00", "to": "01:00"}])
    assert late.active(at("2026-03-07 00:30"))  # Saturday 00:30 belongs to Friday's window
    assert not late.active(at("2026-03-08 00:30"))


def test_next_change_finds_the_boundary() -> None:
    night = _schedule([{"from": "22:00", "to": "06:00"}])
    assert night.next_change(at("2026-03-02 12:00")) == at("2026-03-02 22:00")
    assert night.next_change(at("2026-03-02 23:00")) == at("2026-03-03 06:00")
    always = _schedule([{"from": "00:00", "to": "24:00"}])
    assert always.next_change(at("2026-03-02 12:00")) is None


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"from": "22:00", "to": "22:00"}, "the window is empty"),
        ({"from": "25:00", "to": "06:00"}, "is not a HH:MM time"),
        ({"days": "someday"}, "unknown day 'someday'"),
    ],
)
def test_bad_windows_are_rejected(window: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScheduleModel.model_validate({"windows": [window]})
