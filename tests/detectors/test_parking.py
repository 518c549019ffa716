"""Frame-sequence tests of illegal_parking: phases, grace, occlusion, track changes, schedules, plates, eviction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from detectors.analytics.common import ScheduleTracker
from detectors.analytics.config import ParkingConfig
from detectors.analytics.parking import IllegalParking
from detectors.core import EventDraft, TrackedObject
from detectors.plates import InlinePlates
from rules.calendar import DayCalendar, Schedule, ScheduleModel
from tests.detectors.support import FakeReader, kinds, observe, track

ZONE = [(0.2, 0.4), (0.8, 0.4), (0.8, 0.9), (0.2, 0.9)]
SPOT = (0.40, 0.50, 0.60, 0.70)  # bottom centre (0.5, 0.7) is inside the zone
FPS = 5.0
SHANGHAI = ZoneInfo("Asia/Shanghai")


def config(**overrides: float | bool) -> ParkingConfig:
    """Short timings so sequences stay small: still 3 s, warn at 10 s, grace 20 s, occlusion 6 s."""
    base: dict[str, float | bool] = {"stationary_s": 3.0, "warn_after_s": 10.0, "grace_s": 20.0, "occlusion_s": 6.0}
    return ParkingConfig.model_validate({"zone": "np", **base, **overrides})


def analytic(cfg: ParkingConfig | None = None, schedule: ScheduleTracker | None = None,
             plates: InlinePlates | None = None) -> IllegalParking:  # fmt: skip
    return IllegalParking("cam", cfg or config(), ZONE, vehicle_labels=["car", "truck"], schedule=schedule,
                          plates=plates)  # fmt: skip


def shifted(box: tuple[float, float, float, float], dx: float) -> tuple[float, float, float, float]:
    return (box[0] + dx, box[1], box[2] + dx, box[3])


def run(a: IllegalParking, t0: float, t1: float, tracks: Callable[[float], Iterable[TrackedObject]], *,
        frame: np.ndarray | None = None, fps: float = FPS) -> list[tuple[float, EventDraft]]:  # fmt: skip
    """Feed observations at fps from t0 (inclusive) to t1 (exclusive); returns (ts, draft)."""
    out = []
    for i in range(round((t1 - t0) * fps)):
        ts = t0 + i / fps
        out += [(ts, d) for d in a.step(observe(ts, list(tracks(ts)), frame=frame))]
    return out


def parked(track_id: int = 1, box: tuple[float, float, float, float] = SPOT) -> Callable[[float], list[TrackedObject]]:
    return lambda ts: [track(track_id, "car", box, zones=["np"])]


def test_complied_when_it_leaves_within_grace() -> None:
    a = analytic()
    events = run(a, 0.0, 25.0, parked())  # stops at 0, warned at 10, still inside grace at 25
    events += run(a, 25.0, 30.0, lambda ts: [track(1, "car", shifted(SPOT, 0.05 * (ts - 24.8) * 5), zones=["np"])])
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None),
                                           ("end", "warning", "complied")]  # fmt: skip
    start, warning, end = (d for _, d in events)
    assert events[0][0] == pytest.approx(3.0)  # confirmed after stationary_s
    assert start.dwell_s == pytest.approx(3.0)
    assert events[1][0] == pytest.approx(10.0)
    assert warning.snapshot_roles == ("before",)
    assert end.dwell_s == pytest.approx(24.8, abs=0.25)  # it stopped at 0 and started moving at 24.8
    assert events[2][0] == pytest.approx(25.4 + 3.0)  # seen off its spot at 25.4, the spot stayed empty 3 s
    assert start.episode_id == warning.episode_id == end.episode_id
    run(a, 30.0, 38.0, lambda ts: [])  # gone from view: the moving car's candidate state is evicted
    assert a.state_size() == 0


def test_violation_when_it_stays_then_left() -> None:
    a = analytic()
    events = run(a, 0.0, 40.0, parked())
    events += run(a, 40.0, 45.0, lambda ts: [track(1, "car", shifted(SPOT, 0.1 * (ts - 39.8) * 5), zones=["np"])])
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None),
                                           ("update", "violation", None), ("end", "violation", "left")]  # fmt: skip
    assert events[2][0] == pytest.approx(30.0)  # warn_after 10 + grace 20
    assert events[2][1].snapshot_roles == ("after",)
    assert events[3][1].dwell_s == pytest.approx(39.8, abs=0.25)


def test_leaving_before_the_warning_ends_the_episode_as_left() -> None:
    a = analytic()
    events = run(a, 0.0, 6.0, parked()) + run(a, 6.0, 20.0, lambda ts: [])
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("end", "dwelling", "left")]
    assert events[-1][0] == pytest.approx(5.8 + 6.0 + 0.2, abs=0.21)  # unseen for occlusion_s after 5.8
    assert events[-1][1].dwell_s == pytest.approx(5.8, abs=0.01)


def test_brief_stop_and_drive_through_give_nothing() -> None:
    a = analytic()
    events = run(a, 0.0, 2.0, parked())  # stops for 2 s < stationary_s
    events += run(a, 2.0, 6.0, lambda ts: [track(1, "car", shifted(SPOT, 0.08 * (ts - 1.8) * 5), zones=["np"])])
    events += run(a, 6.0, 12.0, lambda ts: [track(2, "car", shifted((0.0, 0.5, 0.2, 0.7), 0.15 * ts), zones=["np"])])
    assert events == []
    run(a, 12.0, 20.0, lambda ts: [])
    assert a.state_size() == 0


def test_short_occlusion_keeps_the_dwell_clock() -> None:
    """A bus passes in front for 4 s (< occlusion_s): the car's own track is missed, a bus track covers it."""
    a = analytic()
    bus = (0.30, 0.35, 0.75, 0.80)

    def scene(ts: float) -> list[TrackedObject]:
        if 5.0 <= ts < 9.0:
            return [track(1, "car", SPOT, zones=["np"], missed=1), track(7, "bus", shifted(bus, 0.05 * (ts - 7)))]
        return [track(1, "car", SPOT, zones=["np"])]

    events = run(a, 0.0, 12.0, scene)
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None)]
    assert events[1][0] == pytest.approx(10.0)  # the clock was not reset by the occlusion
    assert events[1][1].dwell_s == pytest.approx(10.0)


def test_passing_vehicle_in_front_is_not_mistaken_for_the_parked_one() -> None:
    """A car drives across the parked truck (which the detector misses meanwhile): no false departure."""
    a = analytic()

    def scene(ts: float) -> list[TrackedObject]:
        parked_truck = track(1, "truck", SPOT, zones=["np"], missed=1 if 6.0 <= ts < 8.0 else 0)
        passing = track(9, "car", shifted(SPOT, -0.3 + 0.2 * (ts - 6.0)), zones=["np"])
        return [parked_truck, passing] if 5.0 <= ts < 9.0 else [parked_truck]

    events = run(a, 0.0, 12.0, scene)
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None)]


def test_warning_waits_until_the_vehicle_is_in_view() -> None:
    a = analytic()
    hidden = lambda ts: [track(1, "car", SPOT, zones=["np"], missed=1 if 9.0 <= ts < 12.0 else 0)]  # noqa: E731
    events = run(a, 0.0, 14.0, hidden)
    assert [d.phase for _, d in events] == ["dwelling", "warning"]
    assert events[1][0] == pytest.approx(12.0)
    assert events[1][1].dwell_s == pytest.approx(12.0)


def test_new_track_id_on_the_same_spot_is_the_same_car() -> None:
    """The tracker loses the car and starts a new track on it: no second episode, no re-alert."""
    a = analytic()
    events = run(a, 0.0, 8.0, parked(1))
    events += run(a, 8.0, 9.0, lambda ts: [])  # gap: the old track is gone
    events += run(a, 9.0, 35.0, parked(2, shifted(SPOT, 0.004)))
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None),
                                           ("update", "violation", None)]  # fmt: skip
    assert {d.episode_id for _, d in events} == {events[0][1].episode_id}
    assert events[-1][1].track_id == 2


def test_unseen_for_occlusion_s_counts_as_left_at_the_last_sighting() -> None:
    a = analytic()
    events = run(a, 0.0, 12.0, parked()) + run(a, 12.0, 20.0, lambda ts: [])
    end = events[-1][1]
    assert (end.type.value, end.outcome) == ("end", "complied")
    assert end.attributes["left_at"] == pytest.approx(11.8)
    assert end.dwell_s == pytest.approx(11.8)


def test_a_box_shifted_half_off_the_spot_is_no_proof_the_car_is_still_parked() -> None:
    # hidden for a while, the car is next seen pulling out under its own track, then only a box
    # sliding over the spot (another vehicle, or itself driving off) for seconds: the last sighting
    # in its spot is what counts
    a = analytic()
    events = run(a, 0.0, 12.0, parked())
    events += run(a, 12.0, 14.0, lambda ts: [])  # hidden behind a bus
    events += run(a, 14.0, 18.0, lambda ts: [track(1, "car", shifted(SPOT, 0.06), zones=["np"])])  # overlap ~0.7
    events += run(a, 18.0, 30.0, lambda ts: [])
    end = events[-1][1]
    assert (end.type.value, end.outcome) == ("end", "complied")
    assert end.attributes["left_at"] == pytest.approx(11.8)


def workday_schedule() -> ScheduleTracker:
    model = ScheduleModel.model_validate({"windows": [{"days": ["workday"], "from": "07:00", "to": "19:00"}]})
    return ScheduleTracker(Schedule.compile("day", model, "Asia/Shanghai", DayCalendar()))


def at(hhmm: str, day: int = 2) -> float:
    """Epoch seconds of 2026-03-{day} hh:mm in Shanghai (2 March 2026 is a Monday)."""
    h, m = hhmm.split(":")
    return datetime(2026, 3, day, int(h), int(m), tzinfo=SHANGHAI).timestamp()


def test_car_parked_before_the_schedule_is_clocked_from_its_start() -> None:
    a = analytic(schedule=workday_schedule())
    events = run(a, at("06:58"), at("07:00") + 11.0, parked())
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None)]
    assert events[0][0] == pytest.approx(at("07:00"))
    assert events[0][1].dwell_s == pytest.approx(0.0)
    assert events[0][1].attributes["parked_since"] == pytest.approx(at("06:58"))
    assert events[1][0] == pytest.approx(at("07:00") + 10.0)


def test_schedule_end_expires_the_episode_and_a_warned_car_never_realerts() -> None:
    a = analytic(schedule=workday_schedule())
    events = run(a, at("18:59"), at("19:00") + 2.0, parked())
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None),
                                           ("update", "violation", None), ("end", "violation", "expired")]  # fmt: skip
    assert events[-1][1].attributes["reason"] == "schedule_ended"
    # Still there all night (seen every 5 s) and next morning: suppressed, no new episode.
    quiet = run(a, at("19:00") + 2.0, at("06:59", day=3) + 2.0, parked(), fps=0.2)
    quiet += run(a, at("06:59", day=3) + 2.0, at("07:01", day=3), parked())
    assert quiet == []
    assert a.state_size() == 1


def test_unwarned_car_is_rearmed_for_the_next_window() -> None:
    a = analytic(schedule=workday_schedule())
    events = run(a, at("18:59") + 52.0, at("19:00") + 1.0, parked())  # start at 18:59:55, ends at 19:00
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("end", "dwelling", "expired")]
    again = run(a, at("19:00") + 3.0, at("06:59", day=3) + 58.0, parked(), fps=0.2)  # seen every 5 s all night
    again += run(a, at("06:59", day=3) + 58.0, at("07:00", day=3) + 1.0, parked())
    assert kinds(d for _, d in again) == [("start", "dwelling", None)]
    assert again[0][1].episode_id != events[0][1].episode_id


def test_plate_is_read_off_the_hot_path_and_attached_to_the_warning() -> None:
    reader = FakeReader([("京A·12345", 0.97)])
    a = analytic(plates=InlinePlates(reader))
    frame = np.full((100, 200, 3), 120, np.uint8)
    events = run(a, 0.0, 40.0, parked(), frame=frame)
    warning = next(d for _, d in events if d.phase == "warning")
    assert warning.plate == "京A12345"
    assert warning.plate_confidence == pytest.approx(0.97)
    assert warning.attributes["plate_kind"] == "ordinary"
    assert 1 <= reader.calls <= 2  # two agreeing confident reads settle it: no more OCR for this car


def test_missing_plate_never_blocks_the_events() -> None:
    reader = FakeReader([("???", 0.2)])
    a = analytic(plates=InlinePlates(reader))
    events = run(a, 0.0, 32.0, parked(), frame=np.full((100, 200, 3), 90, np.uint8))
    assert [d.phase for _, d in events] == ["dwelling", "warning", "violation"]
    assert all(d.plate is None for _, d in events)
    assert reader.calls == config().plate_reads


def test_state_is_bounded_and_evicted() -> None:
    a = analytic(config(max_vehicles=4))
    crowd = lambda ts: [track(i, "car", (0.2 + 0.1 * i, 0.6, 0.28 + 0.1 * i, 0.8), zones=["np"]) for i in range(8)]  # noqa: E731
    run(a, 0.0, 1.0, crowd)
    assert a.state_size() == 4
    assert a.dropped > 0
    run(a, 1.0, 10.0, lambda ts: [])
    assert a.state_size() == 0


def test_vehicle_outside_the_zone_is_ignored() -> None:
    a = analytic()
    outside = (0.85, 0.1, 0.98, 0.3)
    assert run(a, 0.0, 20.0, lambda ts: [track(1, "car", outside)]) == []
    assert run(a, 20.0, 40.0, lambda ts: [track(2, "person", SPOT, zones=["np"])]) == []


def test_a_gap_in_observations_ends_the_episode_at_the_last_sighting() -> None:
    """The agent was down for an hour: the car seen before is not assumed to have stayed all along."""
    a = analytic()
    events = run(a, 0.0, 12.0, parked()) + run(a, 3612.0, 3620.0, parked())
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None),
                                           ("end", "warning", "complied"), ("start", "dwelling", None)]  # fmt: skip
    assert events[2][1].attributes["left_at"] == pytest.approx(11.8)
    assert events[3][1].episode_id != events[0][1].episode_id


def test_class_flicker_keeps_the_episode() -> None:
    """The detector calls the parked car a truck from 12 s on: the tracker starts a truck track while it
    keeps predicting the car track; the truck track takes over the spot: one episode, no re-alert."""
    a = analytic()

    def scene(ts: float) -> list[TrackedObject]:
        if ts < 12.0:
            return [track(1, "car", SPOT, zones=["np"])]
        return [track(1, "car", SPOT, zones=["np"], missed=1), track(5, "truck", shifted(SPOT, 0.003), zones=["np"])]

    events = run(a, 0.0, 35.0, scene)
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None),
                                           ("update", "violation", None)]  # fmt: skip
    assert events[-1][1].track_id == 5
    assert events[-1][0] == pytest.approx(30.0)


def test_vehicle_driving_slowly_across_the_spot_never_takes_it_over() -> None:
    a = analytic()

    def scene(ts: float) -> list[TrackedObject]:
        own = track(1, "car", SPOT, zones=["np"], missed=1 if ts >= 5.0 else 0)
        crawler = track(8, "car", shifted(SPOT, -0.2 + 0.04 * (ts - 5.0)), zones=["np"])
        return [own, crawler] if 5.0 <= ts < 15.0 else [own]

    events = run(a, 0.0, 14.0, scene)  # the parked car is hidden 9 s > occlusion_s: it counts as gone...
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("end", "dwelling", "left")]
    assert events[-1][1].attributes["left_at"] == pytest.approx(
        4.8
    )  # ...at its last sighting, not when the crawler left


def test_tracker_id_switch_with_a_passing_vehicle_is_not_a_departure() -> None:
    """The parked truck's track latches onto a truck driving past and moves off with it; the parked truck
    comes back under a new track id on its spot within depart_confirm_s: no end, one episode."""
    a = analytic()

    def scene(ts: float) -> list[TrackedObject]:
        if ts < 6.0:
            return [track(1, "truck", SPOT, zones=["np"])]
        passing = track(1, "truck", shifted(SPOT, 0.08 * (ts - 5.8) * 5), zones=["np"])  # the switched track
        return [passing] if ts < 7.0 else [passing, track(9, "truck", SPOT, zones=["np"])]

    events = run(a, 0.0, 32.0, scene)
    assert kinds(d for _, d in events) == [("start", "dwelling", None), ("update", "warning", None),
                                           ("update", "violation", None)]  # fmt: skip
    assert events[-1][1].track_id == 9
