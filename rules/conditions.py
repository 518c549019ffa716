"""Compiled condition trees: three-valued evaluation (True, False, None = unknown), wake-ups and explain."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qinghe.contracts import ObjectEvent
from rules.calendar import Schedule
from rules.lang import ValueExpr, format_duration
from rules.series import aggregate
from rules.state import Env, Instance

Tri = bool | None
INF = float("inf")

OPERATORS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "above": (">", operator.gt),
    "below": ("<", operator.lt),
    "at_least": (">=", operator.ge),
    "at_most": ("<=", operator.le),
}


@dataclass(frozen=True, slots=True)
class Trace:
    """One leaf's evaluation, for explain: what was tested, the value seen, the threshold, the outcome."""

    condition: str
    value: float | str | None
    threshold: float | None
    result: Tri
    window_s: float = 0.0


def _min_time(*times: float | None) -> float | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


class Node:
    """A condition: evaluate, say when it may next change on its own, describe itself."""

    def eval(self, inst: Instance, env: Env) -> Tri:
        """True, False, or None when the data needed is missing (a silent sensor, an offline camera)."""
        raise NotImplementedError

    def wake(self, inst: Instance, env: Env) -> float | None:
        """The next time the result may change without new input (None: only input changes it)."""
        del inst, env
        return None

    def describe(self) -> str:
        """Readable form, e.g. `avg(pm25, 10m) > 75`."""
        raise NotImplementedError

    def trace(self, inst: Instance, env: Env, out: list[Trace]) -> None:
        """Append the evaluation of each leaf below this node."""
        out.append(Trace(self.describe(), None, None, self.eval(inst, env)))

    def series(self) -> list[ValueExpr]:
        """Value expressions read by this node and its children."""
        return []

    def time_driven(self) -> bool:
        """True if the result can change while no input arrives (windows of events, schedules, absence)."""
        return False


class ValueTest(Node):
    """A value expression compared with a threshold."""

    def __init__(self, expr: ValueExpr, op: str, threshold: float, full_window: bool = False) -> None:
        self.expr = expr
        self.full_window = full_window
        self.op_name = op
        self.symbol, self.compare = OPERATORS[op]
        self.threshold = threshold
        self.key = expr.series
        self.last_only = expr.func == "last"

    def value(self, inst: Instance, env: Env) -> tuple[float | None, bool]:
        """(value, known): value is None when there is nothing to compute it from."""
        key = self.key
        series = inst.series.get(key)
        if series is None:
            return None, True  # never had data here: the input does not exist for this instance
        now = env.now
        if now - inst.seen.get(key, now) >= inst.gap.get(key, INF) - 1e-6:
            return None, False  # silent sensor
        if self.last_only:
            return series.last(), True
        expr = self.expr
        if self.full_window and series.first_ts > env.now - expr.window_s + 1e-6:
            return None, False  # the series does not cover the window yet
        ts, vals = series.window(env.now, expr.window_s)
        result = aggregate(expr.func, ts, vals, expr.q)
        return result, result is not None

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Compare; unknown when the sensor is silent or the window has too few samples."""
        if self.last_only:  # the common case, without building (value, known)
            key = self.key
            series = inst.series.get(key)
            if series is None:
                return False
            now = env.now
            if now - inst.seen.get(key, now) >= inst.gap.get(key, INF) - 1e-6:
                return None
            last = series.last()
            return False if last is None else self.compare(last, self.threshold)
        value, known = self.value(inst, env)
        if value is None:
            return None if not known else False
        return self.compare(value, self.threshold)

    def wake(self, inst: Instance, env: Env) -> float | None:
        """When the series goes silent (and, with full_window, when it first covers the window).

        Reading windows are re-evaluated with every reading; samples leaving a window between readings
        do not wake the instance (that would race the next reading at the window edge).
        """
        seen = inst.seen.get(self.key)
        if seen is None:
            return None
        gap_at = seen + inst.gap.get(self.key, float("inf"))
        silent_at = gap_at if gap_at > env.now else None
        if self.full_window and self.expr.func != "last":
            covered_at = inst.series[self.key].first_ts + self.expr.window_s
            return _min_time(silent_at, covered_at if covered_at > env.now else None)
        return silent_at

    def describe(self) -> str:
        """e.g. `avg(pm25, 10m) > 75`."""
        return f"{self.expr} {self.symbol} {self.threshold:g}"

    def trace(self, inst: Instance, env: Env, out: list[Trace]) -> None:
        """Record the value seen."""
        value, known = self.value(inst, env)
        result: Tri = (None if not known else False) if value is None else self.compare(value, self.threshold)
        out.append(Trace(self.describe(), value, self.threshold, result, self.expr.window_s))

    def series(self) -> list[ValueExpr]:
        """The one expression tested."""
        return [self.expr]


@dataclass(frozen=True, slots=True)
class EventMatcher:
    """A compiled event filter (sets; empty = any)."""

    analytic: frozenset[str] = frozenset()
    label: frozenset[str] = frozenset()
    camera: frozenset[str] | None = None  # None = any; camera_kind is folded into this set at compile time
    zone: frozenset[str] = frozenset()
    type: frozenset[str] = frozenset()
    phase: frozenset[str] = frozenset()
    outcome: frozenset[str] = frozenset()
    min_score: float | None = None
    text: str = "any event"

    def matches(self, ev: ObjectEvent) -> bool:
        """Does the event pass every given key?"""
        return (
            (not self.analytic or ev.analytic in self.analytic)
            and (not self.label or ev.label in self.label)
            and (self.camera is None or ev.camera_id in self.camera)
            and (not self.zone or ev.zone in self.zone)
            and (not self.type or ev.type.value in self.type)
            and (not self.phase or (ev.phase or "") in self.phase)
            and (not self.outcome or (ev.outcome or "") in self.outcome)
            and (self.min_score is None or ev.score >= self.min_score)
        )


def _camera_unknown(inst: Instance, env: Env) -> bool:
    return inst.camera_id is not None and env.cameras.get(inst.camera_id) == "offline"


class EventTest(Node):
    """The instance's latest event matches (an ongoing episode unless `type` says otherwise)."""

    def __init__(self, matcher: EventMatcher) -> None:
        self.matcher = matcher

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Unknown while the instance's camera is offline."""
        if _camera_unknown(inst, env):
            return None
        event = inst.latest_event
        return event is not None and self.matcher.matches(event)

    def describe(self) -> str:
        """e.g. `event phase=warning`."""
        return f"event {self.matcher.text}"

    def trace(self, inst: Instance, env: Env, out: list[Trace]) -> None:
        """Record the latest event's phase/type."""
        event = inst.latest_event
        seen = None if event is None else f"{event.type.value}/{event.phase or '-'}"
        out.append(Trace(self.describe(), seen, None, self.eval(inst, env)))


class CountTest(Node):
    """Matching events in a sliding window compared with a number."""

    def __init__(self, matcher: EventMatcher, window_s: float, op: str, threshold: float) -> None:
        self.matcher, self.window_s, self.op_name, self.threshold = matcher, window_s, op, threshold
        self.symbol, self.compare = OPERATORS[op]

    def count(self, inst: Instance, env: Env) -> int:
        """How many matching events are inside the window now."""
        start = env.now - self.window_s
        return sum(1 for ev in inst.events or () if start < ev.ts <= env.now and self.matcher.matches(ev))

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Compare the count."""
        return self.compare(self.count(inst, env), self.threshold)

    def wake(self, inst: Instance, env: Env) -> float | None:
        """When the oldest counted event leaves the window."""
        start = env.now - self.window_s
        events = inst.events or ()
        oldest = next((ev.ts for ev in events if start < ev.ts <= env.now and self.matcher.matches(ev)), None)
        return None if oldest is None else oldest + self.window_s

    def describe(self) -> str:
        """e.g. `count(analytic=dumping, 24h) >= 3`."""
        return f"count({self.matcher.text}, {format_duration(self.window_s)}) {self.symbol} {self.threshold:g}"

    def trace(self, inst: Instance, env: Env, out: list[Trace]) -> None:
        """Record the count."""
        n = self.count(inst, env)
        out.append(Trace(self.describe(), float(n), self.threshold, self.compare(n, self.threshold), self.window_s))

    def time_driven(self) -> bool:
        """Counts drop as events leave the window."""
        return True


class ActiveTest(Node):
    """Open episodes (started, not ended) that match, compared with a number."""

    def __init__(self, matcher: EventMatcher, op: str, threshold: float) -> None:
        self.matcher, self.op_name, self.threshold = matcher, op, threshold
        self.symbol, self.compare = OPERATORS[op]

    def count(self, inst: Instance) -> int:
        """Open matching episodes."""
        return sum(1 for ev in inst.episodes.values() if self.matcher.matches(ev))

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Compare; unknown while the camera is offline."""
        if _camera_unknown(inst, env):
            return None
        return self.compare(self.count(inst), self.threshold)

    def describe(self) -> str:
        """e.g. `active(analytic=standing_water) >= 1`."""
        return f"active({self.matcher.text}) {self.symbol} {self.threshold:g}"

    def trace(self, inst: Instance, env: Env, out: list[Trace]) -> None:
        """Record the count."""
        out.append(Trace(self.describe(), float(self.count(inst)), self.threshold, self.eval(inst, env)))


class AbsentTest(Node):
    """Deadman: no input for at least `duration_s`."""

    def __init__(self, duration_s: float) -> None:
        self.duration_s = duration_s

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Never unknown: silence is exactly what it measures."""
        return env.now - inst.last_input >= self.duration_s

    def wake(self, inst: Instance, env: Env) -> float | None:
        """When the silence reaches the duration."""
        at = inst.last_input + self.duration_s
        return at if at > env.now else None

    def describe(self) -> str:
        """e.g. `absent 15m`."""
        return f"absent {format_duration(self.duration_s)}"

    def trace(self, inst: Instance, env: Env, out: list[Trace]) -> None:
        """Record the silence so far."""
        silent = env.now - inst.last_input
        out.append(Trace(self.describe(), silent, self.duration_s, self.eval(inst, env), self.duration_s))

    def time_driven(self) -> bool:
        """Silence grows with time."""
        return True


class ScheduleTest(Node):
    """A schedule is active."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Local-time check."""
        return self.schedule.active(env.now)

    def wake(self, inst: Instance, env: Env) -> float | None:
        """The next window boundary."""
        return self.schedule.next_change(env.now)

    def describe(self) -> str:
        """e.g. `schedule night`."""
        return f"schedule {self.schedule.name}"

    def time_driven(self) -> bool:
        """Schedules follow the clock."""
        return True


class CameraStateTest(Node):
    """The instance's camera reports one of the given states."""

    def __init__(self, states: frozenset[str]) -> None:
        self.states = states

    def eval(self, inst: Instance, env: Env) -> Tri:
        """False when the camera has never reported a state."""
        return inst.camera_id is not None and env.cameras.get(inst.camera_id) in self.states

    def describe(self) -> str:
        """e.g. `camera_state in offline`."""
        return f"camera_state in {','.join(sorted(self.states))}"


class AllOf(Node):
    """Kleene AND: False if any is False, else unknown if any is unknown."""

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Short-circuits on False."""
        unknown = False
        for child in self.children:
            result = child.eval(inst, env)
            if result is False:
                return False
            if result is None:
                unknown = True
        return None if unknown else True

    def wake(self, inst: Instance, env: Env) -> float | None:
        """Earliest child wake-up."""
        return _min_time(*(c.wake(inst, env) for c in self.children))

    def describe(self) -> str:
        """`(a and b)`."""
        return "(" + " and ".join(c.describe() for c in self.children) + ")"

    def trace(self, inst: Instance, env: Env, out: list[Trace]) -> None:
        """Every child."""
        for child in self.children:
            child.trace(inst, env, out)

    def series(self) -> list[ValueExpr]:
        """Union of the children's."""
        return [e for c in self.children for e in c.series()]

    def time_driven(self) -> bool:
        """If any child is."""
        return any(c.time_driven() for c in self.children)


class AnyOf(AllOf):
    """Kleene OR: True if any is True, else unknown if any is unknown."""

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Short-circuits on True."""
        unknown = False
        for child in self.children:
            result = child.eval(inst, env)
            if result is True:
                return True
            if result is None:
                unknown = True
        return None if unknown else False

    def describe(self) -> str:
        """`(a or b)`."""
        return "(" + " or ".join(c.describe() for c in self.children) + ")"


class NotOf(AllOf):
    """Kleene NOT: unknown stays unknown."""

    def eval(self, inst: Instance, env: Env) -> Tri:
        """Negate."""
        result = self.children[0].eval(inst, env)
        return None if result is None else not result

    def describe(self) -> str:
        """`not a`."""
        return f"not {self.children[0].describe()}"


class Always(Node):
    """A constant (used for the implicit resolve condition and schedule gates)."""

    def __init__(self, value: bool, text: str) -> None:
        self.value, self.text = value, text

    def eval(self, inst: Instance, env: Env) -> Tri:
        """The constant."""
        return self.value

    def describe(self) -> str:
        """Its label."""
        return self.text
