"""Snapshots (drawing, ring, capped store), sequence numbers across restarts, and the event deduper."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from detectors.core import EventDraft
from edge.dedup import EventDeduper
from edge.events import FrameContext, SeqStore, _pick_frame
from edge.snapshots import FrameRing, SnapshotStore, decode_jpeg, render
from qinghe.contracts import EventType
from tests.edge.clips import frame_with


def test_render_draws_the_box_and_zone_and_crops() -> None:
    frame = frame_with([])
    data = render(frame, (0.25, 0.25, 0.5, 0.75), "car 0.91", zone=[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9)])
    image = decode_jpeg(data)
    assert image.shape == frame.shape
    # The box edge is red (BGR ~ 0, 0, 255) where the grey frame had 114s.
    edge_pixel = image[270, round(0.25 * 639)]
    assert int(edge_pixel[2]) - int(edge_pixel[0]) > 60  # grey has equal channels; JPEG blurs the 2 px line
    crop = decode_jpeg(render(frame, (0.25, 0.25, 0.5, 0.75), crop=True))
    assert crop.shape[0] < frame.shape[0]
    assert crop.shape[1] < frame.shape[1]
    small = decode_jpeg(render(np.zeros((1080, 1920, 3), np.uint8), None, max_width=640))
    assert small.shape == (360, 640, 3)


def test_ring_keeps_one_frame_per_interval_within_the_horizon() -> None:
    ring = FrameRing(interval_s=1.0, horizon_s=5.0)
    for i in range(100):  # 10 s at 10 fps; frame brightness encodes its time
        ring.offer(np.full((36, 64, 3), i, np.uint8), i / 10)
    assert ring.state_size() == 6  # t = 4..9 s
    found = ring.before(6.5)
    assert found is not None
    ts, frame = found
    assert ts == 6.0
    assert abs(int(frame.mean()) - 60) <= 2
    oldest = ring.before(0.0)
    assert oldest is not None
    assert oldest[0] == 4.0


def test_before_snapshot_comes_from_the_ring() -> None:
    ring = FrameRing(interval_s=1.0, horizon_s=30.0)
    for t in range(20):
        ring.offer(np.full((36, 64, 3), t * 10, np.uint8), float(t))
    draft = EventDraft(
        EventType.START, "object", "car", "lot", 1, 0.9, (0, 0, 1, 1), 0.0, "e1", snapshot_roles=("best", "before")
    )
    now_frame = np.full((36, 64, 3), 250, np.uint8)
    context = FrameContext(now_frame, ring, {}, before_s=10.0)
    before = _pick_frame("before", draft, 19.0, context)
    assert before is not None
    assert before[0] == 9.0
    best = _pick_frame("best", draft, 19.0, context)
    assert best is not None
    assert best[1] is now_frame
    explicit = dataclasses.replace(draft, attributes={"before_ts": 3.5})
    found = _pick_frame("before", explicit, 19.0, context)
    assert found is not None
    assert found[0] == 3.0


def test_snapshot_store_deletes_oldest_over_the_cap(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps", max_bytes=10_000)
    for i in range(10):
        store.save(f"cam/{i}.jpg", bytes(3000))
    kept = sorted(p.name for p in (tmp_path / "snaps" / "cam").iterdir())
    assert kept == ["7.jpg", "8.jpg", "9.jpg"]
    assert store.total_bytes == 9000
    reopened = SnapshotStore(tmp_path / "snaps", max_bytes=5000)
    reopened.save("cam/10.jpg", bytes(1000))
    assert sorted(p.name for p in (tmp_path / "snaps" / "cam").iterdir()) == ["10.jpg", "9.jpg"]


def test_seq_is_per_camera_and_survives_reopening(tmp_path: Path) -> None:
    seq = SeqStore(tmp_path / "edge.db")
    assert [seq.next("a"), seq.next("a"), seq.next("b"), seq.next("a")] == [1, 2, 1, 3]
    seq.close()
    again = SeqStore(tmp_path / "edge.db")
    assert again.next("a") == 4
    assert again.next("b") == 2
    again.close()


def test_deduper_first_time_false_then_true() -> None:
    d = EventDeduper()
    assert [d.seen(k, 0.0) for k in ("a", "b", "a", "a", "c")] == [False, False, True, True, False]
    assert d.duplicates == 2
    assert d.state_size() == 3


def test_deduper_ttl_and_capacity_bound_the_state() -> None:
    d = EventDeduper(capacity=100, ttl_s=10.0)
    for i in range(1000):
        d.seen(str(i), i * 0.01)
    assert d.state_size() == 100
    assert not d.seen("0", 10.0)  # long forgotten (capacity)
    assert d.seen("999", 10.0)
    d.seen("late", 30.0)
    assert d.state_size() == 1  # everything else expired (TTL)


def test_deduper_persists_across_restarts(tmp_path: Path) -> None:
    d = EventDeduper(tmp_path / "dedup.db", capacity=10, ttl_s=100.0)
    for i in range(15):
        d.seen(f"e{i}", float(i))
    d.close()
    again = EventDeduper(tmp_path / "dedup.db", capacity=10, ttl_s=100.0)
    assert again.state_size() == 10
    assert again.seen("e14", 20.0)
    assert again.seen("e5", 20.0)
    assert not again.seen("e4", 20.0)  # evicted by capacity before the restart
    again.close()


def test_deduper_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="capacity"):
        EventDeduper(capacity=0)
