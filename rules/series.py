"""Sliding windows of samples and the aggregates rules compute over them (pure, bounded)."""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any

MAX_SAMPLES = 20_000  # per series: a hard bound whatever the window and the sensor's rate


class Series:
    """Time-ordered (ts, value) samples kept for `keep_s` seconds (at least the newest one is kept)."""

    __slots__ = ("first_ts", "keep_s", "ts", "vals")

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.ts: deque[float] = deque()
        self.vals: deque[float] = deque()
        self.first_ts = float("inf")  # oldest sample ever added: how much history the series covers

    def add(self, ts: float, value: float, now: float) -> None:
        """Insert a sample (in time order, late ones too) and drop what fell out of the retention."""
        if ts < self.first_ts:  # noqa: PLR1730 - per sample: no builtin call
            self.first_ts = ts
        if not self.ts or ts >= self.ts[-1]:
            self.ts.append(ts)
            self.vals.append(value)
        elif ts >= now - self.keep_s:
            i = bisect.bisect_right(self.ts, ts)
            self.ts.insert(i, ts)
            self.vals.insert(i, value)
        self.evict(now)

    def evict(self, now: float) -> None:
        """Drop samples older than the retention, keeping the newest; cap the length."""
        horizon = now - self.keep_s
        ts, vals = self.ts, self.vals
        while len(ts) > 1 and (ts[0] <= horizon or len(ts) > MAX_SAMPLES):
            ts.popleft()
            vals.popleft()

    def last(self) -> float | None:
        """The newest value."""
        return self.vals[-1] if self.vals else None

    def window(self, now: float, window_s: float) -> tuple[list[float], list[float]]:
        """(timestamps, values) with now - window_s < ts <= now, oldest first."""
        start = now - window_s
        ts, vals = self.ts, self.vals
        i = len(ts)
        while i > 0 and ts[i - 1] > start:
            i -= 1
        end = len(ts)
        while end > i and ts[end - 1] > now:
            end -= 1
        return [ts[j] for j in range(i, end)], [vals[j] for j in range(i, end)]

    def to_json(self) -> list[Any]:
        """Checkpoint form."""
        return [self.keep_s, list(self.ts), list(self.vals), self.first_ts if self.ts else None]

    @classmethod
    def from_json(cls, data: list[Any]) -> Series:
        """Inverse of to_json."""
        series = cls(float(data[0]))
        series.ts.extend(float(t) for t in data[1])
        series.vals.extend(float(v) for v in data[2])
        if len(data) > 3 and data[3] is not None:
            series.first_ts = float(data[3])
        elif series.ts:
            series.first_ts = series.ts[0]
        return series


class LastSeries:
    """A series only `last` reads: the newest sample, in four slots instead of two deques."""

    __slots__ = ("first_ts", "keep_s", "t", "v")

    def __init__(self) -> None:
        self.keep_s = 0.0
        self.t: float | None = None
        self.v: float | None = None
        self.first_ts = float("inf")

    def add(self, ts: float, value: float, now: float) -> None:
        """Keep the sample if it is the newest."""
        del now
        if ts < self.first_ts:  # noqa: PLR1730 - per sample: no builtin call
            self.first_ts = ts
        if self.t is None or ts >= self.t:
            self.t, self.v = ts, value

    def evict(self, now: float) -> None:
        """Nothing to drop."""
        del now

    def last(self) -> float | None:
        """The newest value."""
        return self.v

    def window(self, now: float, window_s: float) -> tuple[list[float], list[float]]:
        """The newest sample if it is inside the window."""
        if self.t is not None and self.v is not None and now - window_s < self.t <= now:
            return [self.t], [self.v]
        return [], []

    def to_json(self) -> list[Any]:
        """Checkpoint form."""
        return ["last", self.t, self.v, self.first_ts if self.t is not None else None]


AnySeries = Series | LastSeries


def make_series(keep_s: float) -> AnySeries:
    """The lightest series that serves a retention: `last` alone needs no window."""
    return LastSeries() if keep_s <= 0 else Series(keep_s)


def series_from_json(data: list[Any]) -> AnySeries:
    """Inverse of either `to_json`."""
    if data and data[0] == "last":
        series = LastSeries()
        series.t, series.v = data[1], data[2]
        if data[3] is not None:
            series.first_ts = float(data[3])
        return series
    return Series.from_json(data)


def resized(series: AnySeries, keep_s: float) -> AnySeries:
    """The series with a new retention (a reload may add a window over what was `last` only)."""
    if isinstance(series, LastSeries) and keep_s > 0:
        grown = Series(keep_s)
        if series.t is not None and series.v is not None:
            grown.add(series.t, series.v, series.t)
            grown.first_ts = series.first_ts
        return grown
    series.keep_s = keep_s if isinstance(series, Series) else 0.0
    return series


def aggregate(func: str, ts: list[float], vals: list[float], q: float = 0.0) -> float | None:
    """avg/min/max/sum/count/stddev/percentile/rate/delta of a window; None when it is undefined."""
    if func == "count":
        return float(len(vals))
    if not vals:
        return None
    if func == "avg":
        return math.fsum(vals) / len(vals)
    if func == "max":
        return max(vals)
    if func == "min":
        return min(vals)
    if func == "sum":
        return math.fsum(vals)
    if func == "percentile":
        return percentile(vals, q)
    if func == "stddev":
        mean = math.fsum(vals) / len(vals)
        return math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / len(vals))
    if len(vals) < 2:
        return None
    if func == "delta":
        return vals[-1] - vals[0]
    if func == "rate":  # change per hour between the first and last sample of the window
        span = ts[-1] - ts[0]
        return (vals[-1] - vals[0]) / span * 3600.0 if span > 0 else None
    raise ValueError(f"unknown aggregate {func!r}")


def percentile(vals: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in 0..100."""
    ordered = sorted(vals)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
