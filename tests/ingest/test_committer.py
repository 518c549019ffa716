"""Group commit: nothing is acknowledged before it is durable; stale acks are skipped; failures retry."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ingest.buffer import DiskBuffer
from ingest.committer import Committer, wait_until
from ingest.dedup import DedupState, Snapshot
from ingest.validate import Accepted, Outcome, Redelivered, Rejection
from qinghe.bus import InboundMessage
from qinghe.contracts import SensorReading
from tests.ingest.helpers import NOW, make_validator, payload, topic


class FlakyBuffer(DiskBuffer):
    """A real buffer whose first `failures` commits fail like a full disk would."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures
        self.attempts = 0

    def append(self, lines: Sequence[str], dedup: Mapping[str, Snapshot]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise sqlite3.OperationalError("database or disk is full")
        super().append(lines, dedup)


class Recorder:
    """Records acks and dead letters, and what the buffer held at each ack."""

    def __init__(self, buffer: DiskBuffer) -> None:
        self.buffer = buffer
        self.acked: list[int] = []
        self.depth_at_ack: list[int] = []
        self.dead: list[tuple[int, str]] = []

    def ack(self, messages: Sequence[InboundMessage]) -> None:
        for message in messages:
            self.acked.append(message.mid)
            self.depth_at_ack.append(self.buffer.depth)

    def dead_letters(self, items: Sequence[tuple[InboundMessage, Rejection]]) -> None:
        self.dead.extend((m.mid, r.reason.value) for m, r in items)


def _work(seqs: Sequence[int], first_mid: int = 1) -> list[tuple[InboundMessage, Outcome]]:
    validator = make_validator()
    out = []
    for i, seq in enumerate(seqs):
        data = payload({"pm25": 10.0 + i}, seq=seq)
        message = InboundMessage(topic("aq-1"), data, 1, False, first_mid + i)
        out.append((message, validator.check(message.topic, data, NOW)))
    return out


def test_acks_follow_the_commit_and_readings_are_handed_on(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    rec = Recorder(buffer)
    seen: list[SensorReading] = []
    committer = Committer(buffer, rec.dead_letters, rec.ack, lambda: 1, on_reading=seen.append)
    work = _work([1, 2, 2, 3])  # the second 2 is a duplicate
    committer.commit([(m, 1, o) for m, o in work])
    assert rec.acked == [1, 2, 3, 4]
    assert min(rec.depth_at_ack) == 3  # every ack came after the three readings were on disk
    assert rec.dead == [(3, "duplicate")]
    assert [r.seq for r in seen] == [1, 2, 3]
    assert DedupState(buffer.load_dedup()).last("aq-1") == (3, NOW)


def test_messages_of_an_earlier_connection_are_not_acknowledged(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    rec = Recorder(buffer)
    committer = Committer(buffer, rec.dead_letters, rec.ack, lambda: 2)
    work = _work([1, 2, 3])
    committer.commit([(work[0][0], 1, work[0][1]), (work[1][0], 2, work[1][1]), (work[2][0], 1, work[2][1])])
    assert rec.acked == [2]
    assert committer.stats.stale_acks_skipped == 2
    assert buffer.depth == 3  # stored all the same; the broker's redelivery (DUP) gets the ack


def test_redeliveries_are_acknowledged_without_storing_anything(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    rec = Recorder(buffer)
    committer = Committer(buffer, rec.dead_letters, rec.ack, lambda: 1)
    message = InboundMessage(topic("aq-1"), b"{}", 1, False, 9, dup=True)
    committer.commit([(message, 1, Redelivered("aq-1", "seen"))])
    assert rec.acked == [9]
    assert buffer.depth == 0
    assert committer.stats.redelivered == 1


def test_a_failing_disk_is_retried_and_nothing_is_acked_until_it_works(tmp_path: Path) -> None:
    buffer = FlakyBuffer(tmp_path / "b.db", failures=3)
    rec = Recorder(buffer)
    committer = Committer(buffer, rec.dead_letters, rec.ack, lambda: 1, retry_s=0.05)
    committer.start()
    for message, outcome in _work([1, 2]):
        committer.submit(message, 1, outcome)
    assert wait_until(lambda: len(rec.acked) == 2, 5.0)
    committer.stop()
    assert buffer.attempts == 4
    assert rec.depth_at_ack == [2, 2]
    assert committer.stats.commit_failures == 3


def test_a_failing_hook_does_not_stop_the_committer(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    rec = Recorder(buffer)
    calls: list[int | None] = []

    def hook(reading: SensorReading) -> None:
        calls.append(reading.seq)
        raise RuntimeError("rules bug")

    committer = Committer(buffer, rec.dead_letters, rec.ack, lambda: 1, on_reading=hook)
    committer.start()
    for message, outcome in _work([1, 2, 3]):
        committer.submit(message, 1, outcome)
    committer.stop()
    assert calls == [1, 2, 3]
    assert rec.acked == [1, 2, 3]


def test_stop_commits_everything_already_queued(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    rec = Recorder(buffer)
    gate = threading.Event()

    def slow_ack(messages: Sequence[InboundMessage]) -> None:
        gate.wait(2)
        rec.ack(messages)

    committer = Committer(buffer, rec.dead_letters, slow_ack, lambda: 1, max_batch=2)
    committer.start()
    for message, outcome in _work(list(range(1, 8))):
        committer.submit(message, 1, outcome)
    gate.set()
    committer.stop()
    assert rec.acked == list(range(1, 8))
    assert buffer.depth == 7


def test_a_full_buffer_holds_acks_back_until_the_sink_makes_room(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    buffer.append([f"m v={i} {i}" for i in range(1000)], {})
    rec = Recorder(buffer)
    committer = Committer(buffer, rec.dead_letters, rec.ack, lambda: 1, max_rows=1000)
    committer.start()
    for message, outcome in _work([1, 2]):
        committer.submit(message, 1, outcome)
    time.sleep(0.5)
    assert rec.acked == []  # backpressure: the broker keeps the messages
    first = buffer.peek(1000)
    buffer.delete_through(first[-1][0])  # the sink wrote them
    assert wait_until(lambda: rec.acked == [1, 2], 5.0)
    committer.stop()
    assert buffer.depth == 2


def test_only_committed_readings_are_remembered_on_disk(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    rec = Recorder(buffer)
    committer = Committer(buffer, rec.dead_letters, rec.ack, lambda: 1)
    work = _work([1, 2, 3])  # the validator accepted all three; only the first reaches the disk
    committer.commit([(work[0][0], 1, work[0][1])])
    buffer.close()
    reopened = DiskBuffer(tmp_path / "b.db")  # after a crash
    validator = make_validator()
    validator.dedup = DedupState(reopened.load_dedup())
    first, second = work[0][0], work[1][0]
    assert isinstance(validator.check(first.topic, first.payload, NOW, dup=True), Redelivered)
    assert isinstance(validator.check(second.topic, second.payload, NOW, dup=True), Accepted)
    reopened.close()
