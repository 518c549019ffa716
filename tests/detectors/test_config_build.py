"""Analytics config in the edge file (errors with file:line: key), and build_analytics from a real CameraConfig."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from detectors.analytics import AnalyticsError, build_analytics, build_from_config
from detectors.analytics.config import AnalyticsConfig, ParkingConfig
from detectors.analytics.dumping import Dumping
from detectors.analytics.parking import IllegalParking
from detectors.analytics.smoke import SmokeFire
from detectors.analytics.water import StandingWater
from edge.config import load_edge_config
from qinghe.yamlload import ConfigError
from tests.detectors.support import observe, track

REPO = Path(__file__).resolve().parents[2]
HOLIDAYS = REPO / "config" / "holidays" / "cn-2026.yaml"

EDGE_YAML = """\
edge_id: box-test
cameras:
  - id: cam-a
    detect: {{path: clip.mp4}}
    detector: motion
    before_s: 30
    zones:
      - name: np
        polygon: [[0.2, 0.4], [0.8, 0.4], [0.8, 0.9], [0.2, 0.9]]
      - name: road
        polygon: [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
    analytics:
      calendars: [{holidays}]
      schedules:
        enforced:
          windows: [{{days: workday, from: "07:00", to: "19:00"}}]
      illegal_parking:
        - zone: {parking_zone}
          schedule: {schedule}
          warn_after_s: 60
          grace_s: 300
      dumping:
        - {{zone: road, static_s: 20}}
      smoke_fire:
        - {{thermal: {{threshold_c: 90}}}}
      standing_water:
        - {{zone: road, check_interval_s: 120}}
      plates: {{backend: none}}
"""


def write_edge(tmp_path: Path, parking_zone: str = "np", schedule: str = "enforced") -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(EDGE_YAML.format(holidays=HOLIDAYS, parking_zone=parking_zone, schedule=schedule), "utf-8")
    return path


def test_edge_file_with_analytics_loads_and_builds(tmp_path: Path) -> None:
    config = load_edge_config(write_edge(tmp_path))
    analytics = build_analytics(config.cameras[0], tmp_path)
    assert [type(a) for a in analytics] == [IllegalParking, Dumping, SmokeFire, StandingWater]
    parking = analytics[0]
    assert isinstance(parking, IllegalParking)
    assert parking.plates is None  # backend none


@pytest.mark.parametrize(
    ("zone", "schedule", "line", "message"),
    [
        ("gate", "enforced", 18, "analytics.illegal_parking[0].zone: undefined zone 'gate' (zones: np, road)"),
        (
            "np",
            "nights",
            19,
            "analytics.illegal_parking[0].schedule: undefined schedule 'nights' (schedules: enforced)",
        ),
    ],
)
def test_bad_references_are_reported_with_file_line_and_key(tmp_path: Path, zone: str, schedule: str, line: int,
                                                            message: str) -> None:  # fmt: skip
    path = write_edge(tmp_path, zone, schedule)
    with pytest.raises(ConfigError) as caught:
        load_edge_config(path)
    text = str(caught.value)
    assert f"{path}:{line}: cameras[0].{message}" in text


def test_field_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(textwrap.dedent("""\
        edge_id: box-test
        cameras:
          - id: cam-a
            detect: {path: clip.mp4}
            detector: motion
            zones: [{name: np, polygon: [[0, 0], [1, 0], [1, 1]]}]
            analytics:
              illegal_parking:
                - zone: np
                  warn_after_s: 5
                  stationary_s: 10
                  colour: red
        """), "utf-8")  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_edge_config(path)
    text = str(caught.value)
    assert f"{path}:12: cameras[0].analytics.illegal_parking[0].colour: unknown key" in text  # extra=forbid


def test_model_rules() -> None:
    with pytest.raises(ValueError, match="stationary_s"):
        ParkingConfig(zone="np", stationary_s=30, warn_after_s=10)
    with pytest.raises(ValueError, match="unknown time zone"):
        AnalyticsConfig(timezone="Mars/Olympus")
    assert not AnalyticsConfig().enabled()
    assert AnalyticsConfig(illegal_parking=[ParkingConfig(zone="np")]).enabled()


def test_build_from_config_rejects_unknown_zone() -> None:
    cfg = AnalyticsConfig(illegal_parking=[ParkingConfig(zone="nowhere")])
    with pytest.raises(AnalyticsError, match="undefined zone 'nowhere'"):
        build_from_config("cam", cfg, {"np": [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]}, Path("."))


def test_holiday_calendar_gates_the_schedule(tmp_path: Path) -> None:
    """1 May 2026 (a Friday) is Labour Day: no enforcement; 9 May (a Saturday) is an adjusted working day."""
    config = load_edge_config(write_edge(tmp_path))
    tz = ZoneInfo("Asia/Shanghai")
    car = [track(1, "car", (0.4, 0.5, 0.6, 0.7), zones=["np"])]

    def drafts_on(day: int) -> list[str]:
        parking = build_analytics(config.cameras[0], tmp_path)[0]
        t0 = datetime(2026, 5, day, 10, 0, tzinfo=tz).timestamp()
        out: list[str] = []
        for i in range(60):
            out += [d.type.value for d in parking.step(observe(t0 + i * 0.5, car))]
        return out

    assert drafts_on(1) == []
    assert drafts_on(9) == ["start"]
