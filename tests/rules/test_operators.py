"""Timeline tests for every operator: inputs at given times in, signals (minute, rule, status, colour) out."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.engine import CameraUpdate
from tests.rules.helpers import MIN, T0, brief, event, reading, rules_from, run, series

PM25_TIERS = """
rules:
  - id: r
    type: t
    readings: {kind: air}
    value: pm25
    for: 3m
    tiers:
      - {colour: red, above: 250}
      - {colour: orange, above: 150}
      - {colour: yellow, above: 75}
    resolve: {below: 60}
"""


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # never above 75 for 3 minutes
        ([80, 80, 50, 80, 80, 50], []),
        # yellow after 3 minutes above (minutes 1..4)
        ([40, 80, 80, 80, 80], [(4, "firing", "yellow")]),
        # straight to orange: 150+ for 3 minutes also satisfies yellow; the highest wins
        ([40, 160, 160, 160, 160], [(4, "firing", "orange")]),
        # yellow, then 260 for 3 minutes: red (orange's own 3 minutes are reached at the same instant)
        ([80, 80, 80, 80, 260, 260, 260, 260], [(3, "firing", "yellow"), (7, "firing", "red")]),
        # hysteresis: 70 is below 75 but above 60: stays open; 59 resolves
        ([80, 80, 80, 80, 70, 70, 70, 59], [(3, "firing", "yellow"), (7, "resolved", "yellow")]),
        # at exactly 60 it does not resolve (below means <)
        ([80, 80, 80, 80, 60, 60, 59.9], [(3, "firing", "yellow"), (6, "resolved", "yellow")]),
    ],
)
def test_thresholds_for_and_hysteresis(
    tmp_path: Path, values: list[float], expected: list[tuple[int, str, str]]
) -> None:
    signals = run(rules_from(PM25_TIERS, tmp_path), series("a1", "pm25", values))
    assert [(m, st, c) for m, _r, st, c in brief(signals)] == expected


def test_colour_steps_down_when_only_a_lower_tier_holds(tmp_path: Path) -> None:
    text = PM25_TIERS.replace("resolve: {below: 60}", "resolve: {below: 60, for: 2m}")
    values = [160, 160, 160, 160, 100, 100, 100, 100, 50, 50, 50]
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", values))
    # orange at 3; 100 from 4: orange false since 4, step down after resolve.for (2m) -> 6; resolved at 8+2=10
    assert [(m, st, c) for m, _r, st, c in brief(signals)] == [
        (3, "firing", "orange"), (6, "firing", "yellow"), (10, "resolved", "yellow"),
    ]  # fmt: skip
    assert signals[1].explain["transition"] == "deescalated"


def test_step_down_false_keeps_the_highest_colour(tmp_path: Path) -> None:
    text = PM25_TIERS.replace("resolve: {below: 60}", "resolve: {below: 60}\n    step_down: false")
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", [160, 160, 160, 160, 100, 100, 100, 100, 50]))
    assert [(m, st, c) for m, _r, st, c in brief(signals)] == [(3, "firing", "orange"), (8, "resolved", "orange")]


def test_keep_firing_for_holds_after_the_condition_clears(tmp_path: Path) -> None:
    text = """
    rules:
      - id: r
        type: t
        readings: {kind: air}
        value: pm25
        tiers: [{colour: yellow, above: 75}]
        keep_firing_for: 3m
    """
    values = [80, 50, 80, 50, 50, 50, 50, 50]
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", values))
    # fires at 0; above again at 2 (still open); last active at 2 -> resolves at 5
    assert [(m, st) for m, _r, st, _c in brief(signals)] == [(0, "firing"), (5, "resolved")]


@pytest.mark.parametrize(
    ("expr", "op", "threshold", "values", "fire_at"),
    [
        ("avg(pm25, 5m)", "above", 100, [50, 50, 150, 150, 150, 150], 4),
        ("max(pm25, 5m)", "above", 100, [50, 120, 50, 50], 1),
        ("min(pm25, 3m)", "above", 100, [120, 120, 120, 120], 0),
        ("count(pm25, 5m)", "at_least", 3, [10, 10, 10], 2),
        ("p50(pm25, 10m)", "above", 100, [10, 10, 200, 10, 200, 200], 5),
        ("sum(pm25, 3m)", "at_least", 300, [100, 100, 100], 2),
        ("stddev(pm25, 10m)", "above", 40, [100, 100, 100, 0], 3),
        ("delta(pm25, 10m)", "above", 50, [20, 30, 50, 80], 3),
        ("rate(pm25, 10m)", "above", 500, [0, 10, 20, 30], 1),
        ("pm25", "below", 10, [50, 20, 5], 2),
        ("pm25", "at_most", 10, [50, 10], 1),
    ],
)
def test_window_aggregates(  # noqa: PLR0917 - one argument per table column
    tmp_path: Path, expr: str, op: str, threshold: float, values: list[float], fire_at: int
) -> None:
    text = f"""
    rules:
      - id: r
        type: t
        readings: {{kind: air}}
        value: "{expr}"
        tiers: [{{colour: yellow, {op}: {threshold}}}]
    """
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", values))
    assert brief(signals)[:1] == [(fire_at, "r", "firing", "yellow")]


# Worked values (windows are (now - w, now]): avg at minute 3 is (50+50+150+150)/4 = 100, not above; at 4,
# 550/5 = 110. p50 at 4 is the median of 10 10 200 10 200 = 10; at 5 of six values (10,10,10,200,200,200) 105.
# stddev at 3 of 100 100 100 0 is 43.3. rate at 1 is (10 - 0) / 60 s * 3600 = 600 per hour.


def test_rate_of_change_per_hour(tmp_path: Path) -> None:
    text = """
    rules:
      - id: rising
        type: flood
        readings: {kind: water_level}
        value: rate(level, 10m)
        tiers: [{colour: orange, above: 1.0}]
    """
    # +0.1 m per minute = 6 m/h from the second sample on; flat = 0
    rising = run(rules_from(text, tmp_path), series("w1", "level", [2.0, 2.1, 2.2]))
    assert brief(rising) == [(1, "rising", "firing", "orange")]
    flat = run(rules_from(text, tmp_path), series("w1", "level", [2.0, 2.01, 2.02, 2.03]))
    assert brief(flat) == []  # 0.6 m/h


def test_full_window_waits_for_a_whole_window_of_data(tmp_path: Path) -> None:
    text = """
    rules:
      - id: r
        type: t
        readings: {kind: air}
        value: avg(pm25, 10m)
        full_window: true
        tiers: [{colour: yellow, above: 75}]
    """
    signals = run(rules_from(text, tmp_path), series("a1", "pm25", [100] * 15))
    assert brief(signals) == [(10, "r", "firing", "yellow")]


EVENT_COUNT = """
rules:
  - id: hotspot
    type: dumping
    events: {analytic: dumping}
    per: zone
    tiers:
      - {colour: orange, when: {count: {analytic: dumping}, window: 24h, at_least: 5}}
      - {colour: yellow, when: {count: {analytic: dumping}, window: 24h, at_least: 3}}
"""


def test_counts_of_events_in_a_sliding_window(tmp_path: Path) -> None:
    hours = [0, 2, 4, 10, 11, 30]
    timeline = [(T0 + h * 3600, event("c1", T0 + h * 3600, "dumping")) for h in hours]
    # updates and ends do not count (only starts, unless the filter says otherwise); other analytics neither
    timeline += [(T0 + 5 * 3600, event("c1", T0 + 5 * 3600, "dumping", "end"))]
    timeline += [(T0 + 6 * 3600, event("c1", T0 + 6 * 3600, "smoke_fire"))]
    signals = run(rules_from(EVENT_COUNT, tmp_path), timeline, until=T0 + 40 * 3600)
    got = [(round((s.ts - T0) / 3600, 2), s.status.value, s.colour.value) for s in signals]
    # 3rd at 4h yellow; 5th at 11h orange; at 24h the 0h event leaves (4 in window): orange -> yellow;
    # at 26h the 2h event leaves (3 left): stays yellow; at 28h the 4h one leaves (2 left): resolved;
    # at 30h a new one (10h, 11h, 30h): yellow again; at 34h the 10h one leaves: resolved
    assert got == [
        (4, "firing", "yellow"),
        (11, "firing", "orange"),
        (24, "firing", "yellow"),
        (28, "resolved", "yellow"),
        (30, "firing", "yellow"),
        (34, "resolved", "yellow"),
    ]


def test_active_episodes(tmp_path: Path) -> None:
    text = """
    rules:
      - id: ponding
        type: water
        events: {analytic: standing_water}
        per: zone
        tiers: [{colour: yellow, when: {active: {analytic: standing_water}, at_least: 2}}]
    """
    timeline = [
        (T0, event("c2", T0, "standing_water", episode="a")),
        (T0 + MIN, event("c3", T0 + MIN, "standing_water", episode="b")),
        (T0 + 2 * MIN, event("c3", T0 + 2 * MIN, "standing_water", "update", episode="b")),
        (T0 + 3 * MIN, event("c2", T0 + 3 * MIN, "standing_water", "end", episode="a")),
    ]
    signals = run(rules_from(text, tmp_path), timeline)
    assert brief(signals) == [(1, "ponding", "firing", "yellow"), (3, "ponding", "resolved", "yellow")]


def test_deadman_fires_on_silence_and_resolves_on_data(tmp_path: Path) -> None:
    text = """
    rules:
      - id: silent
        type: offline
        readings: {sensor: [a1, a2]}
        per: sensor
        tiers: [{colour: blue, when: {absent: 10m}}]
    """
    timeline = series("a1", "pm25", [30, 30, None, None, None, None, None, None, None, None, None, None, None, 30])
    signals = run(rules_from(text, tmp_path), timeline, until=T0 + 14 * MIN)
    # a1: last at 1 -> fires at 11, back at 13. a2 never reported: watched from the first input (T0) -> 10
    assert sorted(brief(signals)) == [(10, "silent", "firing", "blue"), (11, "silent", "firing", "blue"),
                                      (13, "silent", "resolved", "blue")]  # fmt: skip
    assert {s.dedup_key for s in signals} == {"silent:a1", "silent:a2"}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{all: [{value: pm25, above: 75}, {value: pm10, above: 150}]}", [2]),
        ("{any: [{value: pm25, above: 75}, {value: pm10, above: 150}]}", [0]),
        ("{all: [{value: pm25, above: 75}, {not: {value: pm10, above: 150}}]}", [0]),
    ],
)
def test_all_any_not(tmp_path: Path, when: str, expected: list[int]) -> None:
    text = f"""
    rules:
      - id: r
        type: t
        readings: {{kind: air}}
        tiers: [{{colour: yellow, when: {when}}}]
    """
    timeline = [
        (T0, reading("a1", T0, pm25=80, pm10=100)),
        (T0 + MIN, reading("a1", T0 + MIN, pm25=70, pm10=200)),
        (T0 + 2 * MIN, reading("a1", T0 + 2 * MIN, pm25=80, pm10=200)),
    ]
    signals = run(rules_from(text, tmp_path), timeline)
    assert [m for m, _r, st, _c in brief(signals) if st == "firing"] == expected


def test_schedule_condition_and_rule_schedule(tmp_path: Path) -> None:
    text = """
    schedules:
      lunch: {windows: [{days: workday, from: "12:00", to: "14:00"}]}
    rules:
      - id: r
        type: t
        readings: {kind: noise}
        value: laeq
        schedule: lunch
        tiers: [{colour: yellow, above: 60}]
    """
    start = T0 + 2.5 * 3600  # 11:30 on a Monday
    signals = run(rules_from(text, tmp_path), series("n1", "laeq", [70] * 200, start=start))
    got = [(round((s.ts - start) / MIN), s.status.value, s.explain.get("reason")) for s in signals]
    assert got == [(30, "firing", None), (150, "resolved", "schedule ended")]


def test_camera_state_with_debounce(tmp_path: Path) -> None:
    text = """
    rules:
      - id: cam
        type: camera_offline
        events: {}
        per: camera
        tiers: [{colour: blue, when: {camera_state: offline}, for: 2m}]
    """
    timeline = [
        (T0, CameraUpdate("c1", "offline")),
        (T0 + MIN, CameraUpdate("c1", "online")),
        (T0 + 5 * MIN, CameraUpdate("c1", "offline")),
        (T0 + 9 * MIN, CameraUpdate("c1", "online")),
    ]
    signals = run(rules_from(text, tmp_path), timeline, until=T0 + 20 * MIN)
    assert brief(signals) == [(7, "cam", "firing", "blue"), (9, "cam", "resolved", "blue")]


CORRELATE = """
rules:
  - id: fire
    type: fire
    events: {analytic: smoke_fire}
    per: episode
    tiers:
      - {colour: orange, when: {event: {camera_kind: ar_tower}}}
      - {colour: yellow, when: {event: {camera_kind: thermal}}}
    correlate:
      - readings: {kind: [smoke, air]}
        when: {any: [{value: smoke, above: 2}, {value: "delta(pm25, 10m)", above: 50}]}
        within_m: 300
        within: 10m
        raise: 1
"""


@pytest.mark.parametrize(
    ("camera", "spike_sensor", "spike_at", "event_at", "expected"),
    [
        ("c2", "s1", 2, 5, [(5, "red")]),  # spike 3 minutes before: opens raised
        ("c2", "s1", 8, 5, [(5, "orange"), (8, "red")]),  # spike after the event: raised when it comes
        ("c2", "s1", 2, 20, [(20, "orange")]),  # spike 18 minutes before: too old
        ("c2", "a1", 2, 5, [(5, "orange")]),  # a1 is kilometres away
        ("c3", "s1", 2, 5, [(5, "orange")]),  # thermal alone would be yellow; the spike raises it
        ("c3", "a1", 2, 5, [(5, "yellow")]),  # thermal alone (the only spike is far away)
        ("c3", "s1", 25, 5, [(5, "yellow"), (25, "orange")]),  # a spike while the episode is still open
    ],
)
def test_correlation_raises_the_colour(  # noqa: PLR0917 - one argument per table column
    tmp_path: Path, camera: str, spike_sensor: str, spike_at: int, event_at: int, expected: list[tuple[int, str]]
) -> None:
    field = "smoke" if spike_sensor == "s1" else "pm25"
    values = [0.1 if field == "smoke" else 10.0] * 30
    values[spike_at] = 5.0 if field == "smoke" else 100.0
    timeline = series(spike_sensor, field, values)
    timeline.append((T0 + event_at * MIN, event(camera, T0 + event_at * MIN, "smoke_fire", episode="e1")))
    signals = run(rules_from(CORRELATE, tmp_path), timeline)
    got = [(m, c) for m, _r, _st, c in brief(signals)]
    assert got == expected
    raised = expected[-1][1] == "red" or (camera == "c3" and expected[-1][1] == "orange")
    assert signals[-1].explain.get("raised_by") == (1 if raised else None)
    if raised:
        assert spike_sensor in str(signals[-1].explain["correlated"])


def test_readings_rule_raised_by_a_nearby_camera_event(tmp_path: Path) -> None:
    text = """
    rules:
      - id: probe
        type: fire
        readings: {kind: smoke}
        value: smoke
        tiers: [{colour: yellow, above: 2}]
        correlate:
          - events: {analytic: smoke_fire}
            within_m: 100
            within: 5m
            raise: 2
    """
    timeline = series("s1", "smoke", [3.0] * 10)
    timeline.append((T0 + 4 * MIN, event("c2", T0 + 4 * MIN, "smoke_fire")))
    signals = run(rules_from(text, tmp_path), timeline)
    assert [(m, c) for m, _r, _st, c in brief(signals)] == [(0, "yellow"), (4, "red")]


def test_zone_instances_pool_their_sensors(tmp_path: Path) -> None:
    text = """
    rules:
      - id: zone
        type: t
        readings: {kind: air, zone: z1}
        per: zone
        value: max(pm25, 2m)
        tiers: [{colour: yellow, above: 75}]
    """
    timeline = series("a1", "pm25", [10, 10, 10]) + series("a2", "pm25", [10, 90, 10]) + series("a3", "pm25", [99] * 3)
    signals = run(rules_from(text, tmp_path), timeline)
    assert [(m, s.dedup_key) for (m, *_), s in zip(brief(signals), signals, strict=True)] == [(1, "zone:z1")]


def test_tags_select_sensors(tmp_path: Path) -> None:
    text = """
    rules:
      - id: school
        type: t
        readings: {tag: school}
        value: pm25
        tiers: [{colour: yellow, above: 75}]
    """
    timeline = series("a1", "pm25", [80]) + series("a2", "pm25", [80])
    signals = run(rules_from(text, tmp_path), timeline)
    assert [s.dedup_key for s in signals] == ["school:a1"]
