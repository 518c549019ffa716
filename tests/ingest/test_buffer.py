"""The disk buffer and the dedup windows: atomic commits, ordered peeks, restarts, late arrivals, eviction."""

from __future__ import annotations

from pathlib import Path

from ingest.buffer import DiskBuffer
from ingest.dedup import SEQ_WINDOW, TS_WINDOW, DedupState


def _snapshots(state: DedupState) -> dict[str, tuple[int | None, float, bytes, bytes]]:
    return {sensor: (seq, ts, seen, recent) for sensor, seq, ts, seen, recent in state}


def test_points_come_back_in_order_and_are_deleted_only_when_told(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    buffer.append([f"m v={i} {i}" for i in range(10)], {})
    assert buffer.depth == 10
    rows = buffer.peek(4)
    assert [line for _, line in rows] == [f"m v={i} {i}" for i in range(4)]
    assert buffer.peek(4) == rows  # peeking does not consume
    assert buffer.delete_through(rows[-1][0]) == 4
    assert buffer.depth == 6
    assert buffer.peek(1)[0][1] == "m v=4 4"
    buffer.checkpoint()
    buffer.close()


def test_points_and_dedup_windows_survive_a_restart(tmp_path: Path) -> None:
    state = DedupState()
    for seq in (5, 3, 9):
        assert state.check("s1", seq, 10.0 + seq) is None
    assert state.check("s2", None, 20.5) is None
    buffer = DiskBuffer(tmp_path / "b.db", sync="full")
    buffer.append(["a v=1 1", "a v=2 2"], _snapshots(state))
    buffer.append(["a v=3 3"], {})
    buffer.close()
    reopened = DiskBuffer(tmp_path / "b.db")
    assert reopened.depth == 3
    restored = DedupState(reopened.load_dedup())
    assert restored.last("s1") == (9, 19.0)
    assert restored.check("s1", 3, 13.0) is not None  # remembered inside the window
    assert restored.check("s1", 4, 14.0) is None  # never received: a late arrival
    assert restored.check("s2", None, 20.5) is not None
    reopened.close()


def test_a_late_reading_is_kept_and_a_replay_of_it_is_a_duplicate() -> None:
    state = DedupState()
    assert state.check("s", 102, 3.0) is None
    assert state.check("s", 100, 1.0) is None  # overtaken by 102 on its way: still new
    assert state.check("s", 101, 2.0) is None
    assert state.check("s", 100, 1.0) == "seq 100 of sensor s was already received (highest seq 102)"
    assert state.check("s", 102 - SEQ_WINDOW, 0.5) is not None  # older than the window: cannot tell, dropped


def test_a_counter_reset_with_newer_timestamps_is_accepted() -> None:
    state = DedupState()
    for seq in range(5):
        assert state.check("s", seq, 100.0 + seq) is None
    assert state.check("s", 0, 200.0) is None  # device restarted: seq 0 again, but a newer reading
    assert state.check("s", 1, 201.0) is None
    assert state.check("s", 1, 201.0) is not None


def test_readings_without_seq_keep_a_bounded_window_of_timestamps() -> None:
    state = DedupState()
    for i in range(TS_WINDOW + 10):
        assert state.check("s", None, 1000.0 + i) is None
    assert state.check("s", None, 1000.0 + TS_WINDOW) is not None  # inside the window: a duplicate
    assert state.check("s", None, 1000.5 + TS_WINDOW) is None  # inside, never seen: a late arrival
    assert state.check("s", None, 1000.0) is not None  # older than the window: dropped
    snapshot = state.snapshot("s")
    assert snapshot is not None
    assert len(snapshot[3]) == TS_WINDOW * 8


def test_dedup_state_of_sensors_that_left_the_registry_is_evicted(tmp_path: Path) -> None:
    state = DedupState()
    for sensor in ("kept", "gone-1", "gone-2"):
        state.check(sensor, 1, 1.0)
    buffer = DiskBuffer(tmp_path / "b.db")
    buffer.append([], _snapshots(state))
    assert buffer.forget_sensors(["kept", "new"]) == 2
    assert [row[0] for row in buffer.load_dedup()] == ["kept"]
    assert state.retain(["kept"]) == 2
    assert len(state) == 1
    assert state.last("gone-1") is None
    assert state.last("kept") == (1, 1.0)
    buffer.close()
