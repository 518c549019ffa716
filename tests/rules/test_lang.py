"""Durations, value expressions, templates and window aggregates: table tests."""

from __future__ import annotations

import math
import re

import pytest

from rules.lang import check_template, format_duration, parse_duration, parse_value_expr, render, template_fields
from rules.series import Series, aggregate, percentile


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("250ms", 0.25), (90, 90),
     ("1.5h", 5400), (0, 0)],
)  # fmt: skip
def test_durations_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5", "5 minutes", "m5", "-5m", "", True, -1, float("nan"), "1h-5m"])
def test_bad_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"), [(5400, "1h30m"), (60, "1m"), (0.5, "500ms"), (0, "0s"), (86461, "1d1m1s")]
)
def test_durations_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "func", "kind", "field", "window", "q"),
    [
        ("pm25", "last", "air", "pm25", 0, 0),
        ("air.pm25", "last", "air", "pm25", 0, 0),
        ("avg(pm25, 10m)", "avg", "air", "pm25", 600, 0),
        ("max(rate,30m)", "max", "rain", "rate", 1800, 0),
        ("p95(laeq, 1h)", "percentile", "noise", "laeq", 3600, 95),
        ("percentile(laeq, 99.5, 1h)", "percentile", "noise", "laeq", 3600, 99.5),
        ("rate(level, 30m)", "rate", "water_level", "level", 1800, 0),
        ("count(smoke, 5m)", "count", "smoke", "smoke", 300, 0),
    ],
)
def test_value_expressions_parse(text: str, func: str, kind: str, field: str, window: float, q: float) -> None:  # noqa: PLR0917
    expr = parse_value_expr(text)
    assert (expr.func, expr.kind, expr.field, expr.window_s, expr.q) == (func, kind, field, window, q)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smog.pm25", "unknown sensor kind"),
        ("pm2.5", "is not a field name"),
        ("pm26", "unknown field 'pm26'"),
        ("air.laeq", "air sensors have no field 'laeq'"),
        ("mean(pm25, 5m)", "unknown function 'mean'"),
        ("avg(pm25)", "avg takes (field, window)"),
        ("avg(pm25, 0s)", "longer than 0"),
        ("avg(pm25, soon)", "not a duration"),
        ("percentile(laeq, 1h)", "percentile takes (field, q, window)"),
        ("percentile(laeq, 101, 1h)", "between 0 and 100"),
        ("p101(laeq, 1h)", "unknown function 'p101'"),
    ],
)
def test_bad_value_expressions_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_value_expr(text)


def test_templates_fill_defaults_formats_and_literal_braces() -> None:
    text = "{plate|该车辆} {value:.1f} {{literal}} {zone} {missing}"
    assert template_fields(text) == ["plate", "value", "zone", "missing"]
    assert render(text, {"value": 81.26, "zone": "z1"}) == "该车辆 81.3 {literal} z1 -"
    assert render("{value:.0f}", {"value": "not a number"}) == "not a number"


def test_template_passthrough_leaves_placeholders_for_a_later_renderer() -> None:
    keep = frozenset({"plate"})
    assert render("{plate}，请驶离 {zone}", {"plate": "浙A1", "zone": "z1"}, keep) == "{plate}，请驶离 z1"
    assert render("{plate|该车辆}，请驶离", {"plate": None}, keep) == "该车辆，请驶离"
    assert render("{plate}，请驶离", {}, keep) == "{plate}，请驶离"


@pytest.mark.parametrize(("template", "message"), [("{nope}", "unknown placeholder {nope}"), ("{zone", "unbalanced")])
def test_bad_templates_are_rejected(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_template(template, frozenset({"zone"}))


@pytest.mark.parametrize(
    ("func", "values", "expected"),
    [
        ("avg", [1, 2, 3, 6], 3.0), ("min", [4, 2, 9], 2.0), ("max", [4, 2, 9], 9.0), ("sum", [1, 2, 3], 6.0),
        ("count", [], 0.0), ("count", [5, 5], 2.0), ("stddev", [2, 4, 4, 4, 5, 5, 7, 9], 2.0),
        ("delta", [10, 12, 7], -3.0), ("avg", [], None), ("delta", [1], None), ("rate", [1], None),
    ],
)  # fmt: skip
def test_aggregates(func: str, values: list[float], expected: float | None) -> None:
    ts = [float(i * 60) for i in range(len(values))]
    assert aggregate(func, ts, [float(v) for v in values]) == expected


def test_rate_is_per_hour() -> None:
    # +0.5 m over 30 minutes is 1 m/h
    assert aggregate("rate", [0.0, 1800.0], [2.0, 2.5]) == pytest.approx(1.0)


@pytest.mark.parametrize(("q", "expected"), [(0, 1.0), (50, 2.5), (100, 4.0), (25, 1.75)])
def test_percentile_interpolates_like_numpy(q: float, expected: float) -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_series_keeps_order_drops_old_and_keeps_the_newest() -> None:
    s = Series(keep_s=300)
    for t, v in [(0, 1.0), (120, 2.0), (60, 1.5), (400, 3.0)]:  # 60 arrives late
        s.add(float(t), v, now=float(t) if t != 60 else 130.0)
    assert list(s.ts) == [120.0, 400.0]  # 0 and 60 fell out of the 300 s retention at 400
    assert s.window(400.0, 300) == ([120.0, 400.0], [2.0, 3.0])
    s.evict(10_000.0)
    assert list(s.vals) == [3.0]  # the newest sample is always kept (for `last` and silence checks)
    assert s.first_ts == 0.0
    assert Series.from_json(s.to_json()).to_json() == s.to_json()


def test_series_window_excludes_future_samples() -> None:
    s = Series(keep_s=600)
    for t in (0.0, 60.0, 120.0):
        s.add(t, t, now=120.0)
    assert s.window(60.0, 600)[1] == [0.0, 60.0]
    assert not math.isinf(s.first_ts)
