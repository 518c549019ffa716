"""The per-instance state machine: tiers with `for:`, escalation, hysteresis, keep_firing_for, unknown, flapping.

`evaluate(rule, inst, env, boost)` is pure apart from mutating `inst`; it returns the transitions that
happened at `env.now`, which the engine turns into RuleSignals.
"""

from __future__ import annotations

from dataclasses import dataclass

from qinghe.contracts import SignalStatus
from rules.compile import CompiledRule
from rules.conditions import Tri
from rules.state import Env, Instance, Phase

EPS = 1e-6  # float slack so a deadline computed as since + duration counts as reached at that instant

STATUS_OF = {
    "opened": SignalStatus.FIRING,
    "escalated": SignalStatus.FIRING,
    "deescalated": SignalStatus.FIRING,
    "updated": SignalStatus.FIRING,
    "data_back": SignalStatus.FIRING,
    "flapping": SignalStatus.FIRING,
    "unknown": SignalStatus.UNKNOWN,
    "resolved": SignalStatus.RESOLVED,
}


@dataclass(frozen=True, slots=True)
class Transition:
    """Something the outside world must hear about: `name` is one of STATUS_OF's keys."""

    name: str
    ts: float
    reason: str = ""

    @property
    def status(self) -> SignalStatus:
        """The RuleSignal status this transition is published as."""
        return STATUS_OF[self.name]


def elapsed(now: float, since: float | None, duration: float) -> bool:
    """Has `duration` passed since `since`?"""
    return since is not None and now - since >= duration - EPS


def evaluate(rule: CompiledRule, inst: Instance, env: Env, boost: int = 0, updated: bool = False) -> list[Transition]:
    """Advance one instance to `env.now`; `boost` is the corroboration level, `updated` means new evidence."""
    now = env.now
    in_schedule = rule.schedule is None or rule.schedule.active(now)
    tiers = rule.tiers
    if not in_schedule:
        results: list[Tri] = [False] * len(tiers)
    elif len(tiers) == 1:
        results = [tiers[0].node.eval(inst, env)]  # most rules: no comprehension frame
    else:
        results = [t.node.eval(inst, env) for t in tiers]
    if inst.phase is Phase.INACTIVE and not inst.unknown and results.count(False) == len(results):
        # the common case: a quiet instance stays quiet (results hold only True, False and None)
        since = inst.true_since
        if since.count(None) != len(since):
            for i in range(len(since)):
                since[i] = None
        return []
    for i, result in enumerate(results):
        if result is True:
            if inst.true_since[i] is None:
                inst.true_since[i] = now
        elif result is False:
            inst.true_since[i] = None
    target = next(
        (i for i, t in enumerate(rule.tiers) if results[i] is True and elapsed(now, inst.true_since[i], t.for_s)),
        None,
    )
    step = _Step(results, target, boost, updated, in_schedule)
    if inst.phase is Phase.INACTIVE:
        return _inactive(rule, inst, now, step)
    return _firing(rule, inst, env, step)


def quiet(rule: CompiledRule, inst: Instance, env: Env) -> bool:
    """The common case decided without the state machine: a quiet instance of a rule whose tiers all test
    the newest value, after a reading that keeps every tier false. Returns True exactly when `evaluate`
    would return no transition and `next_wake` no deadline, having applied what they would (tier timers
    cleared, no wake-up); False means: run them."""
    tests = rule.quiet_tests
    if tests is None or inst.phase is not Phase.INACTIVE or inst.unknown:
        return False
    for test in tests:  # only False (not True, not unknown) keeps the instance quiet
        if test.eval(inst, env) is not False:
            return False
    since = inst.true_since
    if since.count(None) != len(since):
        for i in range(len(since)):
            since[i] = None
    inst.wake_at = None
    return True


@dataclass(frozen=True, slots=True)
class _Step:
    """What one evaluation found: each tier's result, the tier due to fire, corroboration, new evidence."""

    results: list[Tri]
    target: int | None
    boost: int
    updated: bool
    in_schedule: bool


def _inactive(rule: CompiledRule, inst: Instance, now: float, step: _Step) -> list[Transition]:
    results, target, boost = step.results, step.target, step.boost
    if target is not None:
        inst.phase = Phase.FIRING
        inst.tier = target
        inst.boost = boost
        inst.colour = rule.tiers[target].colour.raised(boost)
        inst.opened_at = inst.last_active = now
        inst.resolve_since = inst.step_since = None
        inst.unknown, inst.unknown_since = False, None
        return [Transition("opened", now)]
    unknown = not any(r is True for r in results) and any(r is None for r in results)
    if unknown == inst.unknown:
        return []
    inst.unknown, inst.unknown_since = unknown, (now if unknown else None)
    if rule.model.gap.notify != "always":
        return []
    return [Transition("unknown", now)] if unknown else [Transition("resolved", now, "data returned")]


def _firing(rule: CompiledRule, inst: Instance, env: Env, step: _Step) -> list[Transition]:
    now, results, target = env.now, step.results, step.target
    any_true = any(r is True for r in results)
    if any_true:
        inst.last_active = now
    if not step.in_schedule:
        return _resolve(rule, inst, now, "schedule ended")
    rc = _resolve_condition(rule, inst, env, results, any_true)
    expired = _expired(rule, inst, now, rc)
    if expired:
        return _resolve(rule, inst, now, expired)
    if target is not None and inst.raw_clear_since is not None:
        inst.raw_clear_since = None  # a held (flapping) instance fired again
    out = _colour_changes(rule, inst, now, step)
    if rc is True:
        if inst.resolve_since is None:
            inst.resolve_since = now
    elif rc is False:
        inst.resolve_since = None
    if (
        rc is True
        and elapsed(now, inst.resolve_since, rule.resolve_for)
        and (elapsed(now, inst.last_active, rule.model.keep_firing_for) or inst.last_active is None)
    ):
        return out + _clear(rule, inst, now)
    out += _unknown_changes(rule, inst, now, rc)
    if step.updated and not out:
        out.append(Transition("updated", now))
    return out


def _resolve_condition(rule: CompiledRule, inst: Instance, env: Env, results: list[Tri], any_true: bool) -> Tri:
    """The hysteresis condition; never True while any tier still holds."""
    if any_true:
        return False
    if rule.resolve is not None:
        return rule.resolve.eval(inst, env)
    return None if any(r is None for r in results) else True


def _expired(rule: CompiledRule, inst: Instance, now: float, rc: Tri) -> str:
    expire = rule.model.gap.expire
    if rc is None and inst.unknown and elapsed(now, inst.unknown_since, expire):
        return f"expired: no data for {expire:g} s"
    if elapsed(now, inst.last_input, expire) and not rule.deadman:
        return f"expired: no input for {expire:g} s"
    return ""


def _colour_changes(rule: CompiledRule, inst: Instance, now: float, step: _Step) -> list[Transition]:
    results, target, boost = step.results, step.target, step.boost
    assert inst.tier is not None
    assert inst.colour is not None
    if target is not None and target < inst.tier:
        inst.tier, inst.step_since = target, None
    elif target is not None and target > inst.tier and rule.model.step_down and results[inst.tier] is False:
        if inst.step_since is None:
            inst.step_since = now
        if elapsed(now, inst.step_since, rule.resolve_for):
            inst.tier, inst.step_since = target, None
    else:
        inst.step_since = None
    if boost > inst.boost and (target is not None or any(r is True for r in results)):
        inst.boost = boost  # corroboration sticks until the incident resolves
    colour = rule.tiers[inst.tier].colour.raised(inst.boost)
    if colour == inst.colour:
        return []
    name = "escalated" if colour.rank > inst.colour.rank else "deescalated"
    inst.colour = colour
    return [Transition(name, now)]


def _unknown_changes(rule: CompiledRule, inst: Instance, now: float, rc: Tri) -> list[Transition]:
    unknown = rc is None
    if unknown == inst.unknown:
        return []
    inst.unknown, inst.unknown_since = unknown, (now if unknown else None)
    if rule.model.gap.notify == "never":
        return []
    return [Transition("unknown" if unknown else "data_back", now)]


def _clear(rule: CompiledRule, inst: Instance, now: float) -> list[Transition]:
    """The condition cleared: resolve, unless the instance flaps (then hold it open and say so)."""
    flapping = rule.model.flapping
    if flapping is None:
        return _resolve(rule, inst, now, "condition cleared")
    if inst.flapping:
        if inst.raw_clear_since is None:
            inst.raw_clear_since = now
            inst.record_cycle(now, flapping.window)
        settle = flapping.settle if flapping.settle is not None else flapping.window / 2
        if elapsed(now, inst.raw_clear_since, settle):
            return _resolve(rule, inst, now, f"flapping settled after {settle:g} s quiet")
        return []
    cycles = inst.record_cycle(now, flapping.window)
    if cycles >= flapping.cycles:
        inst.flapping = True
        inst.raw_clear_since = now
        inst.resolve_since = None
        return [Transition("flapping", now, f"{cycles} cycles within {flapping.window:g} s")]
    return _resolve(rule, inst, now, "condition cleared")


def _resolve(rule: CompiledRule, inst: Instance, now: float, reason: str) -> list[Transition]:
    del rule
    inst.phase = Phase.INACTIVE
    out = [Transition("resolved", now, reason)]
    inst.reset_episode()  # tier and colour stay so the RESOLVED signal carries them
    inst.unknown = False
    inst.unknown_since = None
    return out


def next_wake(rule: CompiledRule, inst: Instance, env: Env) -> float | None:
    """The next instant this instance must be evaluated even if no input arrives (None: only on input)."""
    now = env.now
    firing = inst.phase is Phase.FIRING
    if not (firing or rule.wakes_idle) and inst.true_since.count(None) == len(inst.true_since):
        return None  # neither firing nor pending, and nothing changes on its own
    times: list[float] = [s + t.for_s for s, t in zip(inst.true_since, rule.tiers, strict=True) if s is not None]
    for tier in rule.tiers:
        if (t := tier.node.wake(inst, env)) is not None:
            times.append(t)
    if rule.schedule is not None and (t := rule.schedule.next_change(now)) is not None:
        times.append(t)
    if firing:
        times.extend(_firing_deadlines(rule, inst, env))
    later = [t for t in times if t > now + EPS]
    return min(later) if later else None


def _firing_deadlines(rule: CompiledRule, inst: Instance, env: Env) -> list[float]:
    times: list[float] = []
    if inst.resolve_since is not None:
        times.append(inst.resolve_since + rule.resolve_for)
    if inst.last_active is not None and rule.model.keep_firing_for:
        times.append(inst.last_active + rule.model.keep_firing_for)
    if inst.step_since is not None:
        times.append(inst.step_since + rule.resolve_for)
    flapping = rule.model.flapping
    if inst.raw_clear_since is not None and flapping is not None:
        times.append(inst.raw_clear_since + (flapping.settle if flapping.settle is not None else flapping.window / 2))
    if inst.unknown_since is not None:
        times.append(inst.unknown_since + rule.model.gap.expire)
    if not rule.deadman:
        times.append(inst.last_input + rule.model.gap.expire)
    if rule.resolve is not None and (t := rule.resolve.wake(inst, env)) is not None:
        times.append(t)
    return times
