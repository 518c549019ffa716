"""Frame-sequence tests of the built-in `object` analytic: start, dwell milestones, best snapshot, end, eviction."""

from __future__ import annotations

from detectors.core import Detections, EventDraft, FrameObservation, TrackedObject
from edge.config import EventConfig
from edge.config_camera import ZoneConfig
from edge.objects import ObjectAnalytic
from qinghe.contracts import EventType

POLY = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
BOX = (0.2, 0.2, 0.3, 0.4)


def obj(tid: int, zones: dict[str, float], *, score: float = 0.8, label: str = "car",
        stationary_since: float | None = None, missed: int = 0) -> TrackedObject:  # fmt: skip
    return TrackedObject(
        track_id=tid, label=label, box=BOX, score=score, first_seen=0.0, last_seen=0.0,
        zones=tuple(sorted(zones)), zone_since=dict(zones), stationary_since=stationary_since, missed_frames=missed,
    )  # fmt: skip


def step(analytic: ObjectAnalytic, ts: float, *tracks: TrackedObject) -> list[EventDraft]:
    return analytic.step(FrameObservation("cam", ts, None, Detections.empty(), tuple(tracks)))


def analytic(**zone: object) -> ObjectAnalytic:
    config = ZoneConfig.model_validate({"name": "lot", "polygon": POLY, **zone})
    return ObjectAnalytic("cam", [config], EventConfig(best_improvement=0.1, best_min_interval_s=5))


def test_enter_dwell_milestones_and_leave() -> None:
    a = analytic(dwell_milestones_s=[10, 30])
    assert [d.type for d in step(a, 100.0, obj(1, {"lot": 99.0}))] == [EventType.START]
    drafts: list[EventDraft] = []
    for ts in range(101, 140):
        drafts += step(a, float(ts), obj(1, {"lot": 99.0}))
    assert [(d.type, d.attributes.get("milestone_s")) for d in drafts] == [
        (EventType.UPDATE, 10),
        (EventType.UPDATE, 30),
    ]
    assert drafts[0].dwell_s == 10.0  # at ts 109, 10 s after it counted as in at 99
    (end,) = step(a, 140.0, obj(1, {}))
    assert (end.type, end.outcome, end.dwell_s) == (EventType.END, "left", 41.0)
    assert len({d.episode_id for d in drafts} | {end.episode_id}) == 1
    assert a.state_size() == 0


def test_start_draft_asks_for_the_best_snapshot() -> None:
    (start,) = step(analytic(), 5.0, obj(1, {"lot": 5.0}))
    assert start.snapshot_roles == ("best",)
    assert start.analytic == "object"
    assert start.zone == "lot"


def test_loitering_delays_the_start() -> None:
    a = analytic(loitering_s=5)
    assert step(a, 3.0, obj(1, {"lot": 0.0})) == []
    (start,) = step(a, 5.0, obj(1, {"lot": 0.0}))
    assert start.type is EventType.START
    assert start.dwell_s == 5.0


def test_labels_outside_the_zone_filter_are_ignored() -> None:
    a = analytic(objects=["person"])
    assert step(a, 1.0, obj(1, {"lot": 0.0}, label="car")) == []
    assert a.state_size() == 0


def test_stationary_trigger_starts_when_still_and_ends_when_moving() -> None:
    a = analytic(trigger="stationary")
    assert step(a, 10.0, obj(1, {"lot": 0.0})) == []
    (start,) = step(a, 20.0, obj(1, {"lot": 0.0}, stationary_since=12.0))
    assert start.dwell_s == 8.0  # still since 12 s, inside since 0 s: dwell counts the stillness
    (end,) = step(a, 30.0, obj(1, {"lot": 0.0}))
    assert end.outcome == "moved"


def test_better_snapshot_update_is_rate_limited_and_skips_occluded_frames() -> None:
    a = analytic()
    step(a, 0.0, obj(1, {"lot": 0.0}, score=0.6))
    assert step(a, 2.0, obj(1, {"lot": 0.0}, score=0.9)) == []  # better but within 5 s
    assert step(a, 6.0, obj(1, {"lot": 0.0}, score=0.9, missed=1)) == []  # occluded: predicted box
    (update,) = step(a, 7.0, obj(1, {"lot": 0.0}, score=0.9))
    assert update.phase == "best"
    assert update.snapshot_roles == ("best",)
    assert step(a, 20.0, obj(1, {"lot": 0.0}, score=0.95)) == []  # not 0.1 better than 0.9


def test_lost_track_ends_with_its_last_seen_dwell() -> None:
    a = analytic()
    step(a, 0.0, obj(1, {"lot": 0.0}))
    step(a, 4.0, obj(1, {"lot": 0.0}))
    (end,) = step(a, 9.0)
    assert (end.outcome, end.dwell_s) == ("lost", 4.0)


def test_lost_track_ends_with_the_box_where_it_was_last_seen() -> None:
    a = analytic()
    step(a, 0.0, obj(1, {"lot": 0.0}))
    moved = TrackedObject(
        track_id=1, label="car", box=(0.5, 0.6, 0.7, 0.9), score=0.8, first_seen=0.0, last_seen=4.0,
        zones=("lot",), zone_since={"lot": 0.0},
    )  # fmt: skip
    step(a, 4.0, moved)
    (end,) = step(a, 9.0)
    assert end.outcome == "lost"
    assert end.box == (0.5, 0.6, 0.7, 0.9)  # not a degenerate [0, 0, 0, 0] on the wire


def test_hundreds_of_visitors_leave_no_state() -> None:
    a = analytic(dwell_milestones_s=[1])
    for visitor in range(300):
        t0 = visitor * 10.0
        for dt in range(4):
            step(a, t0 + dt, obj(visitor, {"lot": t0}))
        assert a.state_size() == 1
    step(a, 1e6)
    assert a.state_size() == 0
