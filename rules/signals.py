"""Turning a transition of an instance into a RuleSignal: key, message, explain, sources, evidence, actions."""

from __future__ import annotations

import hashlib
from typing import Any

from qinghe.contracts import (
    ActionSpec,
    Evidence,
    GeoPoint,
    JsonScalar,
    ObjectEvent,
    RuleSignal,
    SourceRef,
)
from rules.compile import CompiledRule
from rules.conditions import AnyOf, Node, NotOf, Trace
from rules.lang import COLOUR_CN, format_duration, render
from rules.machine import Transition
from rules.model import GraceAction, NotifyAction, VoiceAction, WebhookAction
from rules.registry import Registry
from rules.state import Env, Instance

MAX_EXPLAIN_TEXT = 400


def signal_id(rule_id: str, dedup_key: str, status: str, colour: str, *, flapping: bool, name: str, ts: float) -> str:
    """Deterministic id: the same transition replayed gives the same id, so consumers can dedupe."""
    text = f"{rule_id}|{dedup_key}|{status}|{colour}|{int(flapping)}|{name}|{ts:.3f}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def deciding_node(rule: CompiledRule, inst: Instance, transition: Transition) -> Node:
    """Which condition explains this transition: the firing tier's, or the resolve condition."""
    if transition.name == "resolved":
        if rule.resolve is not None:
            return rule.resolve
        return NotOf([AnyOf([t.node for t in rule.tiers])]) if len(rule.tiers) > 1 else NotOf([rule.tiers[0].node])
    tier = inst.tier if inst.tier is not None else len(rule.tiers) - 1
    return rule.tiers[tier].node


def template_values(
    rule: CompiledRule, inst: Instance, transition: Transition, env: Env, *, registry: Registry, traces: list[Trace]
) -> dict[str, Any]:
    """Everything a message, voice text or dedup key may use."""
    event = inst.latest_event
    colour = inst.colour or rule.tiers[-1].colour
    first = next((t for t in traces if t.value is not None), traces[0] if traces else None)
    sensor = inst.labels.get("sensor") or (next(iter(inst.readings)) if inst.readings else None)
    info = registry.sensors.get(sensor) if sensor else None
    plate = inst.labels.get("plate")
    corr = [s.id for s in inst.sources.values() if s.summary.startswith("correlated")]
    return {
        "rule": rule.id, "type": rule.model.type, "description": rule.model.description or rule.id,
        "colour": colour.value, "colour_cn": COLOUR_CN[colour], "status": transition.status.value,
        "transition": transition.name, "zone": _zone(inst), "sensor": sensor,
        "sensor_name": (info.name or info.id) if info else sensor, "kind": inst.labels.get("kind"),
        "camera": inst.camera_id, "camera_id": inst.camera_id, "episode": inst.labels.get("episode"),
        "label": inst.labels.get("label") or (event.label if event else None),
        "analytic": inst.labels.get("analytic") or (event.analytic if event else None), "plate": plate,
        "value": first.value if first else None, "threshold": first.threshold if first else None,
        "condition": first.condition if first else "", "count": first.value if first else None,
        "dwell_s": event.dwell_s if event else None,
        "duration": format_duration(env.now - inst.opened_at) if inst.opened_at is not None else "0s",
        "correlated": ",".join(corr) or None,
    }  # fmt: skip


def _zone(inst: Instance) -> str:
    if "zone" in inst.labels:
        return inst.labels["zone"]
    if inst.latest_event is not None:
        return inst.latest_event.zone
    return next((r.zone for r in inst.readings.values()), "")


def build_signal(
    rule: CompiledRule, inst: Instance, transition: Transition, env: Env, registry: Registry
) -> RuleSignal:
    """The RuleSignal for one transition."""
    traces: list[Trace] = []
    node = deciding_node(rule, inst, transition)
    node.trace(inst, env, traces)
    values = template_values(rule, inst, transition, env, registry=registry, traces=traces)
    dedup = render(rule.dedup_template, values)
    status = transition.status
    colour = inst.colour or rule.tiers[-1].colour
    return RuleSignal(
        signal_id=signal_id(
            rule.id, dedup, status.value, colour.value, flapping=inst.flapping, name=transition.name, ts=transition.ts
        ),
        rule_id=rule.id,
        dedup_key=dedup,
        incident_type=rule.model.type,
        status=status,
        colour=colour,
        ts=transition.ts,
        message=render(rule.model.message, values),
        zone=values["zone"],
        location=_location(inst, registry),
        sources=_sources(inst),
        explain=_explain(rule, inst, transition, traces, env, condition=node.describe()),
        actions=_actions(rule, inst, transition, values, registry),
        evidence=tuple(inst.evidence.values()),
        flapping=inst.flapping,
        camera_id=inst.camera_id,
    )


def _location(inst: Instance, registry: Registry) -> GeoPoint | None:
    if inst.location_key is not None:
        found = registry.location_of(*inst.location_key)
        if found is not None:
            return found
    return next((r.location for r in inst.readings.values() if r.location is not None), None)


def _sources(inst: Instance) -> tuple[SourceRef, ...]:
    readings = [
        SourceRef(
            kind="reading", id=r.sensor_id, ts=r.ts, sensor_id=r.sensor_id,
            summary=" ".join(f"{k}={v:g}" for k, v in r.values.items()),
        )
        for r in inst.readings.values()
    ]  # fmt: skip
    return (*readings, *inst.sources.values())


def _explain(
    rule: CompiledRule, inst: Instance, transition: Transition, traces: list[Trace], env: Env, *, condition: str
) -> dict[str, JsonScalar]:
    explain: dict[str, JsonScalar] = {
        "rule": rule.id,
        "source": rule.source,
        "transition": transition.name,
        "tier": rule.tiers[inst.tier].colour.value if inst.tier is not None else None,
        "data_state": "unknown" if inst.unknown or transition.name == "unknown" else "ok",
    }
    if traces:
        first = next((t for t in traces if t.value is not None), traces[0])
        explain["condition"] = condition if transition.name == "resolved" else first.condition
        explain["value"] = first.value if not isinstance(first.value, float) else round(first.value, 6)
        explain["threshold"] = first.threshold
        explain["window_s"] = first.window_s or None
        explain["leaves"] = "; ".join(_leaf_text(t) for t in traces)[:MAX_EXPLAIN_TEXT]
    if inst.tier is not None:
        explain["for_s"] = rule.tiers[inst.tier].for_s
        explain["since"] = inst.true_since[inst.tier] if inst.true_since[inst.tier] is not None else inst.opened_at
    if inst.boost:
        explain["raised_by"] = inst.boost
        explain["correlated"] = ",".join(s.id for s in inst.sources.values() if s.summary.startswith("correlated"))
    if transition.reason:
        explain["reason"] = transition.reason
    if inst.flapping:
        explain["flapping_cycles"] = len(inst.cycles or ())
    event = inst.latest_event
    if event is not None:
        explain["event"] = f"{event.analytic} {event.type.value}"
        explain["phase"] = event.phase
        if event.outcome:
            explain["outcome"] = event.outcome
        if inst.labels.get("plate"):
            explain["plate"] = inst.labels["plate"]
    silent = _silent(inst, env)
    if silent:
        explain["silent"] = silent[:MAX_EXPLAIN_TEXT]
    return explain


def _leaf_text(trace: Trace) -> str:
    value = f"{trace.value:.4g}" if isinstance(trace.value, float) else str(trace.value)
    verdict = {True: "true", False: "false", None: "unknown"}[trace.result]
    return f"{trace.condition} [{value}: {verdict}]"


def _silent(inst: Instance, env: Env) -> str:
    parts = []
    for key, seen in inst.seen.items():
        gap = inst.gap.get(key, float("inf"))
        if env.now - seen >= gap - 1e-6:
            parts.append(f"{key} silent {format_duration(env.now - seen)} (gap {format_duration(gap)})")
    return "; ".join(parts)


SPEECH_FIELDS = frozenset({"plate", "zone", "camera_id"})


def render_voice(template: str, values: dict[str, Any]) -> str:
    """Fill a voice template, leaving {plate}, {zone} and {camera_id} for alerting to normalise for speech.

    A missing value with a `|default` gets the default here; without one the placeholder is left for
    alerting, which says "前方车辆" for a missing plate.
    """
    return render(template, values, passthrough=SPEECH_FIELDS)


def _actions(
    rule: CompiledRule, inst: Instance, transition: Transition, values: dict[str, Any], registry: Registry
) -> tuple[ActionSpec, ...]:
    out: list[ActionSpec] = []
    for action in rule.model.actions:
        if transition.name not in action.send_on:
            continue
        if isinstance(action, VoiceAction):
            camera = registry.cameras.get(inst.camera_id or "")
            speaker = action.speaker or (camera.speaker_id if camera and camera.speaker_id else "")
            params: dict[str, JsonScalar] = {"repeat": action.repeat, "expires_s": action.expires}
            if inst.camera_id:
                params["camera_id"] = inst.camera_id
            if values.get("plate"):
                params["plate"] = values["plate"]
            out.append(ActionSpec("voice", speaker, render_voice(action.text, values), params))
        elif isinstance(action, GraceAction):
            grace_params: dict[str, JsonScalar] = {
                "grace_s": action.grace,
                "settle_s": action.settle,
                "violation_colour": action.violation_colour.value,
            }
            out.append(ActionSpec("grace", "", "", grace_params))
        elif isinstance(action, NotifyAction):
            out.append(ActionSpec("notify", action.topic, render(rule.model.message, values)))
        elif isinstance(action, WebhookAction):
            out.append(ActionSpec("webhook", action.name, render(rule.model.message, values)))
    return tuple(out)


def add_event_evidence(inst: Instance, event: ObjectEvent) -> bool:
    """Copy an event's snapshots into the instance's evidence; True if any is new."""
    items = [Evidence(ref=s.topic, role=s.role, ts=s.ts if s.ts is not None else event.ts, event_id=event.event_id)
             for s in event.snapshots]  # fmt: skip
    if event.snapshot and not any(i.ref == event.snapshot for i in items):
        items.append(Evidence(ref=event.snapshot, role="best", ts=event.ts, event_id=event.event_id))
    return inst.add_evidence(items)
