"""The database sink: error classes, back-off, bisection of rejected batches, the real write path."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ingest.buffer import DiskBuffer
from ingest.sink import Backoff, InfluxWriter, SinkWorker, StepResult, classify_http
from qinghe.config import InfluxConfig
from qinghe.errors import PermanentError, RetryableError
from qinghe.localservers import LocalVictoriaMetrics, free_port
from tests.ingest.helpers import export_series


class FakeWriter:
    """Our own port: records batches; fails while `down`, rejects batches holding a `poison` line."""

    def __init__(self, poison: set[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.down = False
        self.poison = poison or set()

    def write(self, lines: Sequence[str]) -> None:
        if self.down:
            raise RetryableError("down", retry_after_s=None)
        if self.poison & set(lines):
            raise PermanentError("HTTP 400 bad line")
        self.batches.append(list(lines))

    def close(self) -> None:
        pass

    @property
    def written(self) -> list[str]:
        return [line for batch in self.batches for line in batch]


def _buffer(tmp_path: Path, count: int) -> DiskBuffer:
    buffer = DiskBuffer(tmp_path / "b.db")
    buffer.append([f"m v={i} {i}" for i in range(count)], {})
    return buffer


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, RetryableError),
        (503, RetryableError),
        (429, RetryableError),
        (408, RetryableError),
        (401, RetryableError),
        (403, RetryableError),
        (404, RetryableError),
        (400, PermanentError),
        (413, PermanentError),
        (422, PermanentError),
    ],
)
def test_http_errors_are_classified(status: int, kind: type[Exception]) -> None:
    error = classify_http(status, "detail", retry_after_s=7.0)
    assert isinstance(error, kind)
    assert str(status) in str(error)
    if isinstance(error, RetryableError):
        assert error.retry_after_s == 7.0


def test_backoff_doubles_to_the_cap_honours_retry_after_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(1))
    delays = [backoff.next() for _ in range(6)]
    assert all(0.4 <= d <= 0.6 for d in delays[:1])
    assert all(3.2 <= d <= 4.8 for d in delays[3:])
    assert backoff.next(hint_s=60.0) == 60.0
    backoff.reset()
    assert backoff.next() <= 0.6


def test_rows_stay_buffered_while_the_database_is_down(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path, 5)
    writer = FakeWriter()
    writer.down = True
    sink = SinkWorker(buffer, writer, lambda _l, _r: None, batch_size=3)
    assert sink.step() is StepResult.RETRY
    assert sink.step() is StepResult.RETRY
    assert buffer.depth == 5
    assert sink.stats.failures == 2
    writer.down = False
    assert sink.step() is StepResult.WROTE
    assert sink.step() is StepResult.WROTE
    assert sink.step() is StepResult.IDLE
    assert writer.written == [f"m v={i} {i}" for i in range(5)]
    assert buffer.depth == 0


def test_a_rejected_batch_is_bisected_and_only_the_bad_line_is_dead_lettered(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path, 16)
    writer = FakeWriter(poison={"m v=11 11"})
    rejected: list[tuple[str, str]] = []
    sink = SinkWorker(buffer, writer, lambda line, reason: rejected.append((line, reason)), batch_size=16)
    results = []
    for _ in range(40):
        result = sink.step()
        if result is StepResult.IDLE:
            break
        results.append(result)
    assert rejected == [("m v=11 11", "HTTP 400 bad line")]
    assert StepResult.SPLIT in results
    assert writer.written == [f"m v={i} {i}" for i in range(16) if i != 11]
    assert buffer.depth == 0
    assert sink.stats.dead_lettered == 1


def test_the_sink_thread_drains_the_buffer_and_stop_flushes_the_rest(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path, 50)
    writer = FakeWriter()
    sink = SinkWorker(buffer, writer, lambda _l, _r: None, batch_size=20, flush_interval_s=0.05)
    sink.start()
    buffer.append([f"m v={i} {i}" for i in range(50, 60)], {})
    sink.notify()
    sink.stop(flush_timeout_s=5)
    assert writer.written == [f"m v={i} {i}" for i in range(60)]
    assert buffer.depth == 0


@pytest.mark.integration
def test_influx_writer_writes_to_a_real_v2_endpoint(victoria: LocalVictoriaMetrics) -> None:
    writer = InfluxWriter(InfluxConfig(url=victoria.url))
    ms = int(time.time() * 1000)  # VictoriaMetrics refuses points too far from now
    writer.write([rf"air,kind=air,sensor=s1,zone=z\ 1 pm25=35.2 {ms}", f"air,sensor=s2 pm25=7.5 {ms + 1000}"])
    writer.close()
    series = {s["metric"]["sensor"]: s for s in export_series(victoria, '{__name__="air_pm25"}', 2)}
    assert series["s1"]["values"] == [35.2]
    assert series["s1"]["timestamps"] == [ms]
    assert series["s1"]["metric"]["zone"] == "z 1"
    assert series["s2"]["values"] == [7.5]


@pytest.mark.integration
def test_influx_writer_maps_an_unreachable_database_to_retryable() -> None:
    writer = InfluxWriter(InfluxConfig(url=f"http://127.0.0.1:{free_port()}", timeout_ms=500))
    with pytest.raises(RetryableError, match="unreachable"):
        writer.write(["air,sensor=s1 pm25=1 1800000000000"])
    writer.close()
