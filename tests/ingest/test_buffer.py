"""The disk buffer and dedup state: atomic commits, ordered peeks, restart survival, eviction."""

from __future__ import annotations

from pathlib import Path

from ingest.buffer import DiskBuffer
from ingest.dedup import DedupState


def test_points_come_back_in_order_and_are_deleted_only_when_told(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    buffer.append([f"m v={i} {i}" for i in range(10)], {"s1": (9, 100.0)})
    assert buffer.depth == 10
    rows = buffer.peek(4)
    assert [line for _, line in rows] == [f"m v={i} {i}" for i in range(4)]
    assert buffer.peek(4) == rows  # peeking does not consume
    assert buffer.delete_through(rows[-1][0]) == 4
    assert buffer.depth == 6
    assert buffer.peek(1)[0][1] == "m v=4 4"
    buffer.close()


def test_points_and_dedup_state_survive_a_restart(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db", sync="full")
    buffer.append(["a v=1 1", "a v=2 2"], {"s1": (2, 10.0), "s2": (None, 20.5)})
    buffer.append(["a v=3 3"], {"s1": (3, 11.0)})
    buffer.close()
    reopened = DiskBuffer(tmp_path / "b.db")
    assert reopened.depth == 3
    assert sorted(reopened.load_last_seen()) == [("s1", 3, 11.0), ("s2", None, 20.5)]
    reopened.close()


def test_dedup_state_of_sensors_that_left_the_registry_is_evicted(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    buffer.append([], {"kept": (1, 1.0), "gone-1": (1, 1.0), "gone-2": (None, 1.0)})
    assert buffer.forget_sensors(["kept", "new"]) == 2
    assert [sensor for sensor, _, _ in buffer.load_last_seen()] == ["kept"]
    state = DedupState([("kept", 1, 1.0), ("gone", 4, 2.0)])
    assert state.retain(["kept"]) == 1
    assert len(state) == 1
    assert state.last("gone") is None
    assert state.last("kept") == (1, 1.0)
    buffer.close()


def test_dedup_state_round_trips_through_its_iterator() -> None:
    state = DedupState()
    assert state.check("s1", 3, 10.0) is None
    assert state.check("s2", None, 12.0) is None
    assert sorted(DedupState(list(state))) == sorted(state)
    assert state.check("s1", 3, 10.0) is not None
