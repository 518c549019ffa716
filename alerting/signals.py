"""Rule signals into incidents: dedup, suppression (camera offline, silences, maintenance, inhibition),
grouping, updates, auto-resolve, unknown data, and the actions a rule asks for (voice, grace, notify, webhook).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from alerting import parking, routing, sla
from alerting.emit import Changes
from alerting.model import GraceStatus, IncidentRecord, Member, Suppressed
from alerting.voice.text import render_warning
from qinghe.contracts import ActionSpec, AlertKind, Incident, IncidentState, RuleSignal, SignalStatus
from qinghe.errors import PayloadError

if TYPE_CHECKING:
    from alerting.core import AlertingCore

DEFAULT_EXPIRES_S = 120.0


class SignalDesk:
    """Applies rule signals to the core's incidents."""

    def __init__(self, core: AlertingCore) -> None:
        self.core = core

    def handle(self, changes: Changes, signal: RuleSignal, now: float) -> None:
        """One signal: ignored if its id was seen, else routed by status.

        Raises PayloadError, before changing anything, if the signal cannot become topics.
        """
        check_topic_level("incident_type", signal.incident_type)
        state = self.core.state
        if signal.signal_id in state.seen:
            return
        state.seen[signal.signal_id] = now
        changes.seen.append((signal.signal_id, now))
        day = self.core.day(now)
        changes.count(day, signal.rule_id, "signals")
        if signal.flapping:
            changes.count(day, signal.rule_id, "flapping")
        if signal.status is SignalStatus.FIRING:
            self.fire(changes, signal, now)
        elif signal.status is SignalStatus.RESOLVED:
            self.resolved(changes, signal, now)
        else:
            self.unknown(changes, signal, now)

    # ----- firing ------------------------------------------------------------------------------------
    def fire(self, changes: Changes, signal: RuleSignal, now: float) -> None:
        """Update the incident of this key, or suppress, group or open."""
        record = self._record_of(signal.dedup_key)
        if record is not None:
            self.update(changes, record, signal, now)
            return
        reason, inhibitor = self.suppression(signal, now)
        if reason is not None:
            self.suppress(changes, signal, reason, inhibitor, now)
            return
        if self.core.state.suppressed.pop(signal.dedup_key, None) is not None:
            changes.suppressed_removed.append(signal.dedup_key)
        target = self.core.group_target(signal, now)
        if target is not None:
            self.join(changes, target, signal, now)
        else:
            self.open(changes, signal, now)

    def open(self, changes: Changes, signal: RuleSignal, now: float) -> IncidentRecord:
        """Open a new incident, then run the rule's actions."""
        record = self.new_record(signal, now)
        problems = self._targets(record, signal)
        tier = self.core.config.responders.tiers[record.incident.tier]
        note = f"{signal.message} (team {record.team}, tier {record.incident.tier} {tier.name})"
        by = f"rule:{signal.rule_id}"
        self.core.emitter.emit(changes, record, AlertKind.OPENED, action="opened", by=by, now=now, note=note)
        changes.count(self.core.day(now), signal.rule_id, "opened")
        for problem in problems:
            self._note(changes, record, "action_problem", problem, now)
        grace = next((a for a in signal.actions if a.kind == "grace"), None)
        if grace is not None:
            parking.start_grace(self.core, changes, record, grace, now)
        for action in signal.actions:
            if action.kind == "voice":
                self.voice(changes, record, signal, action, now)
        return record

    def new_record(self, signal: RuleSignal, now: float) -> IncidentRecord:
        """A fresh incident record for a signal (id, team, tier, clocks)."""
        core = self.core
        seq = core.state.next_seq
        core.state.next_seq += 1
        incident_id = f"inc-{core.day(now).replace('-', '')}-{seq:06d}"
        team = core.config.responders.team_for(signal.incident_type, signal.zone)
        incident = Incident(
            id=incident_id,
            type=signal.incident_type,
            colour=signal.colour,
            state=IncidentState.OPEN,
            opened_at=now,
            updated_at=now,
            zone=signal.zone,
            rule_id=signal.rule_id,
            dedup_key=signal.dedup_key,
            message=signal.message,
            location=signal.location,
            sources=signal.sources[: core.config.max_sources],
            sla=sla.start_clocks(core.limits(signal.incident_type, signal.colour), now),
            evidence=signal.evidence[: core.config.max_evidence],
            explain=dict(signal.explain),
            tier=core.config.responders.start_tier(signal.colour),
            assignee=team,
            flapping=signal.flapping,
        )
        member = Member(signal.dedup_key, signal.rule_id, signal.status, signal.colour, now, routing.camera_of(signal))
        record = IncidentRecord(
            incident=incident,
            members={signal.dedup_key: member},
            team=team,
            cause=routing.cause_of(signal),
            last_signal_at=now,
            camera_id=routing.camera_of(signal),
            dropped_sources=max(0, len(signal.sources) - core.config.max_sources),
        )
        core.state.records[incident_id] = record
        core.index(record)
        return record

    def join(self, changes: Changes, record: IncidentRecord, signal: RuleSignal, now: float) -> None:
        """Group a new key into an active incident with the same group key."""
        record.members[signal.dedup_key] = Member(
            signal.dedup_key, signal.rule_id, signal.status, signal.colour, now, routing.camera_of(signal)
        )
        self.core.keys[signal.dedup_key] = record.id
        record.last_signal_at = now
        record.signals += 1
        self._merge(record, signal)
        self._targets(record, signal)
        grouping = self.core.config.routing.grouping
        note = (
            f"{signal.rule_id} ({signal.dedup_key}) joined: same {'+'.join(grouping.by)} within {grouping.window_s:g} s"
        )
        self._note(changes, record, "grouped", note, now)
        changes.count(self.core.day(now), signal.rule_id, "grouped")
        self.core.recolour(changes, record, now, by=f"rule:{signal.rule_id}")

    def update(self, changes: Changes, record: IncidentRecord, signal: RuleSignal, now: float) -> None:
        """A firing signal for an existing incident: merge, flapping, data back, violation, colour."""
        if record.incident.state is IncidentState.CLOSED:
            return  # closed incidents never change; the key is released when the rule resolves or on archive
        member = record.members[signal.dedup_key]
        member.last_signal_at = record.last_signal_at = now
        record.signals += 1
        changes.touch(record)
        was_unknown = member.status is SignalStatus.UNKNOWN
        member.status, member.colour = SignalStatus.FIRING, signal.colour
        self._targets(record, signal)
        added_sources, added_evidence = self._merge(record, signal)
        if added_sources or added_evidence:
            note = f"+{added_sources} source(s), +{added_evidence} evidence from {signal.rule_id}"
            self._note(changes, record, "sources_added", note, now)
        if signal.flapping != record.incident.flapping:
            record.incident = replace(record.incident, flapping=signal.flapping)
            action = "flapping" if signal.flapping else "flapping_ended"
            self._note(changes, record, action, f"{signal.rule_id} reports {action.replace('_', ' ')}", now)
        if was_unknown and not any(m.status is SignalStatus.UNKNOWN for m in record.members.values()):
            record.incident = replace(record.incident, data_state="ok")
            self._note(changes, record, "data_ok", f"{signal.rule_id} has data again", now)
        grace = record.grace
        if (
            grace is not None
            and grace.status is GraceStatus.RUNNING
            and parking.is_violation_update(signal, grace.violation_colour)
        ):
            parking.violation(self.core, changes, record, now, "the edge reported the violation phase")
        self.core.recolour(changes, record, now, by=f"rule:{signal.rule_id}")

    # ----- resolved and unknown ----------------------------------------------------------------------
    def resolved(self, changes: Changes, signal: RuleSignal, now: float) -> None:
        """The rule says its condition cleared: the member resolves; the incident when all members have."""
        if self.core.state.suppressed.pop(signal.dedup_key, None) is not None:
            changes.suppressed_removed.append(signal.dedup_key)
        incident_id = self.core.keys.pop(signal.dedup_key, None)
        record = self.core.state.records.get(incident_id or "")
        if record is None:
            return
        member = record.members[signal.dedup_key]
        member.status, member.last_signal_at = SignalStatus.RESOLVED, now
        changes.touch(record)
        if record.incident.state is IncidentState.CLOSED:
            return
        by = f"rule:{signal.rule_id}"
        still = record.firing_members()
        if still:
            note = f"{signal.rule_id} ({signal.dedup_key}) cleared; {len(still)} source rule(s) still firing"
            self._note(changes, record, "source_resolved", note, now)
            self.core.recolour(changes, record, now, by=by)
            return
        day = self.core.day(now)
        if record.grace is not None and record.grace.status is GraceStatus.RUNNING and record.active:
            parking.complied(self.core, changes, record, now, by)
            changes.count(day, signal.rule_id, "complied")
        elif record.active:
            outcome = record.incident.outcome or "auto_resolved"
            record.incident = replace(record.incident, state=IncidentState.RESOLVED, outcome=outcome)
            record.resolved_at = now
            note = f"condition cleared: {signal.message}"
            self.core.emitter.emit(changes, record, AlertKind.RESOLVED, action="resolved", by=by, now=now, note=note)
            changes.count(day, signal.rule_id, "auto_resolved")
        else:
            self._note(changes, record, "condition_cleared", f"{signal.rule_id}: {signal.message}", now)

    def unknown(self, changes: Changes, signal: RuleSignal, now: float) -> None:
        """The rule's inputs went silent: mark the incident's data unknown (it is not resolved)."""
        record = self._record_of(signal.dedup_key)
        if record is None or record.incident.state is IncidentState.CLOSED:
            return
        member = record.members[signal.dedup_key]
        member.status, member.last_signal_at = SignalStatus.UNKNOWN, now
        changes.touch(record)
        if record.incident.data_state != "unknown":
            record.incident = replace(record.incident, data_state="unknown")
            self._note(changes, record, "data_unknown", f"{signal.rule_id}: {signal.message}", now)

    # ----- suppression -------------------------------------------------------------------------------
    def suppression(self, signal: RuleSignal, now: float) -> tuple[str | None, IncidentRecord | None]:
        """Why this firing signal is held back (and the inhibiting incident, if that is why).

        Offline camera, silence and maintenance win over everything; a signal that can join an
        incident of its group joins it rather than being inhibited by it.
        """
        core = self.core
        camera = routing.camera_of(signal)
        if core.config.routing.camera_offline_inhibits and core.camera_offline(camera):
            return f"camera {camera} is offline", None
        fields = routing.signal_fields(signal)
        silence = routing.active_silence(core.state.silences.values(), fields, now)
        if silence is not None:
            return f"silence {silence.id}: {silence.reason}", None
        window = routing.open_maintenance(core.config.maintenance, fields, now, core.config.tz)
        if window is not None:
            return f"maintenance {window.id}: {window.reason}", None
        if core.group_target(signal, now) is not None:
            return None, None  # joining an incident of the same group beats inhibition
        rules = core.config.routing.inhibit
        zone = signal.zone if all("zone" in r.equal for r in rules) else None
        source = routing.inhibitor(rules, signal, core.candidates(zone))
        if source is not None:
            return f"inhibited by {source.id} ({source.incident.colour.value}, same cause)", source
        return None, None

    def suppress(
        self, changes: Changes, signal: RuleSignal, reason: str, source: IncidentRecord | None, now: float
    ) -> None:
        """Hold a signal back; an inhibiting incident gets its sources (once per reason)."""
        entry = self.core.state.suppressed.get(signal.dedup_key)
        fresh = entry is None or entry.reason != reason
        if entry is None:
            entry = Suppressed(signal=signal, reason=reason, since=now, last_at=now)
            self.core.state.suppressed[signal.dedup_key] = entry
        else:
            entry.signal, entry.reason, entry.last_at, entry.count = signal, reason, now, entry.count + 1
        changes.suppressed[signal.dedup_key] = entry
        changes.count(self.core.day(now), signal.rule_id, "suppressed")
        if source is not None and fresh:
            self._merge(source, signal)
            note = f"held back {signal.rule_id} ({signal.colour.value}, {signal.dedup_key}): same cause"
            self._note(changes, source, "inhibited", note, now)

    def recheck(self, changes: Changes, now: float) -> None:
        """Release suppressed signals whose reason ended; forget them after the retention."""
        retention = self.core.config.routing.suppressed_retention_s
        for key, entry in list(self.core.state.suppressed.items()):
            if now - entry.last_at >= retention:
                del self.core.state.suppressed[key]
                changes.suppressed_removed.append(key)
                continue
            reason, _source = self.suppression(entry.signal, now)
            if reason is None:
                del self.core.state.suppressed[key]
                changes.suppressed_removed.append(key)
                self.fire(changes, entry.signal, now)
            elif reason != entry.reason:
                entry.reason = reason
                changes.suppressed[key] = entry

    # ----- helpers -----------------------------------------------------------------------------------
    def voice(
        self, changes: Changes, record: IncidentRecord, signal: RuleSignal, action: ActionSpec, now: float
    ) -> None:
        """Ask the voice desk for a warning on the action's speaker (or the camera's)."""
        core = self.core
        camera = core.cameras.get(signal.camera_id or "")
        speaker = action.target or (camera.speaker_id if camera is not None else None)
        if not speaker or not topic_safe(speaker):
            why = f"voice action has no usable target ({speaker!r}) and camera {signal.camera_id!r} no speaker_id"
            self._note(changes, record, "voice_failed", why, now)
            return
        plate = signal.explain.get("plate") or action.params.get("plate")
        template = action.template or core.config.speakers.default_template
        text = render_warning(template, str(plate) if plate else None, signal.zone, signal.camera_id)
        record.voice_seq += 1
        task, event = core.voice.request(
            warning_id=f"{record.id}.w{record.voice_seq}",
            incident_id=record.id,
            speaker_id=speaker,
            text=text,
            repeat=_int(action.params.get("repeat"), 1),
            expires_s=_positive(action.params.get("expires_s"), DEFAULT_EXPIRES_S),
            now=now,
        )
        changes.voice[task.warning_id] = task
        if not task.finished:
            changes.dispatch.append(task)
        core.voice_events(changes, [event], now)

    def _record_of(self, dedup_key: str) -> IncidentRecord | None:
        incident_id = self.core.keys.get(dedup_key)
        return self.core.state.records.get(incident_id) if incident_id else None

    def _note(self, changes: Changes, record: IncidentRecord, action: str, note: str, now: float) -> None:
        self.core.emitter.emit(changes, record, AlertKind.UPDATED, action=action, by="system", now=now, note=note)

    def _merge(self, record: IncidentRecord, signal: RuleSignal) -> tuple[int, int]:
        inc = record.incident
        have_sources = {(s.kind, s.id) for s in inc.sources}
        new_sources = [s for s in signal.sources if (s.kind, s.id) not in have_sources]
        room = max(0, self.core.config.max_sources - len(inc.sources))
        record.dropped_sources += max(0, len(new_sources) - room)
        have_evidence = {(e.ref, e.role) for e in inc.evidence}
        new_evidence = [e for e in signal.evidence if (e.ref, e.role) not in have_evidence]
        new_evidence = new_evidence[: max(0, self.core.config.max_evidence - len(inc.evidence))]
        sources = (*inc.sources, *new_sources[:room])
        record.incident = replace(inc, sources=sources, evidence=(*inc.evidence, *new_evidence))
        return min(len(new_sources), room), len(new_evidence)

    def _targets(self, record: IncidentRecord, signal: RuleSignal) -> list[str]:
        problems: list[str] = []
        for action in signal.actions:
            if action.kind == "notify" and action.target:
                if not all(topic_safe(level) for level in action.target.strip("/").split("/")):
                    problems.append(f"notify target {action.target!r} cannot be a topic")
                elif action.target not in record.notify_targets:
                    record.notify_targets.append(action.target)
            elif action.kind == "webhook":
                if self.core.config.webhooks.endpoint(action.target) is None:
                    problems.append(f'undefined webhook "{action.target}"')
                elif action.target not in record.webhooks:
                    record.webhooks.append(action.target)
            elif action.kind not in ("voice", "grace", "notify"):
                problems.append(f"unknown action kind {action.kind!r}")
        return problems


def topic_safe(level: str) -> bool:
    """Can `level` be one topic level (non-empty, no / + # or NUL)?"""
    return bool(level) and not any(ch in level for ch in "/+#\0")


def check_topic_level(name: str, value: str) -> None:
    """Raise PayloadError if `value` cannot be a topic level."""
    if not topic_safe(value):
        raise PayloadError(f"{name} {value!r} cannot be used in a topic (empty, or has / + # or NUL)")


def _int(value: object, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 1 else default


def _positive(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else default
