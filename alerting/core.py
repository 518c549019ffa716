"""The alerting core (pure): signals, commands, receipts and time in; Changes (records, outbox rows, jobs) out.

No I/O and no clock reads: every method takes `now`. The service persists each Changes and its outbox
rows in one SQLite transaction, so what is published always matches what is stored.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from alerting import escalation, parking, sla
from alerting.config import AlertingConfig
from alerting.emit import Changes, Emitter
from alerting.lifecycle import apply_command, rejection
from alerting.model import (
    GraceStatus,
    IncidentRecord,
    Silence,
    Suppressed,
    VoiceTask,
)
from alerting.routing import highest, record_key, signal_key
from alerting.signals import SignalDesk
from alerting.voice.desk import Delivery, VoiceDesk, VoiceEvent
from qinghe.central_config import CameraRefConfig
from qinghe.codec import encode
from qinghe.contracts import (
    AlertKind,
    CameraState,
    CameraStatus,
    Colour,
    CommandRejected,
    GeoPoint,
    IncidentCommand,
    IncidentState,
    RuleSignal,
    SignalStatus,
    WarningReceipt,
)
from qinghe.outbox import OutboxEntry
from qinghe.topics import Topics

SYSTEM = "system"


@dataclass(slots=True)
class CoreState:
    """Everything the core remembers; rebuilt from the store after a restart."""

    records: dict[str, IncidentRecord] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    suppressed: dict[str, Suppressed] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    cameras: dict[str, tuple[str, float]] = field(default_factory=dict)
    voice: dict[str, VoiceTask] = field(default_factory=dict)
    next_seq: int = 1


class AlertingCore:
    """Incident lifecycle, 1510 clocks, escalation, routing, parking loop and voice bookkeeping."""

    def __init__(
        self,
        config: AlertingConfig,
        topics: Topics,
        cameras: Mapping[str, CameraRefConfig],
        state: CoreState | None = None,
    ) -> None:
        self.config = config
        self.topics = topics
        self.cameras = dict(cameras)
        self.state = state or CoreState()
        self.emitter = Emitter(config, topics)
        self.voice = VoiceDesk(config.speakers, config.tz, self.state.voice)
        self.keys: dict[str, str] = {}  # dedup key -> incident id, for members not yet resolved
        self.by_zone: dict[str, set[str]] = {}
        self._heap: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        self._recheck_at = 0.0
        self._evict_at = 0.0
        self._day_cache = (-1, "")
        self.signals = SignalDesk(self)
        for silence in config.silences:  # a stored copy (expired at runtime) wins over the file
            self.state.silences.setdefault(
                silence.id,
                Silence(
                    id=silence.id,
                    matchers=dict(silence.matchers),
                    starts_at=silence.starts_at.timestamp() if silence.starts_at else 0.0,
                    ends_at=silence.ends_at.timestamp(),
                    reason=silence.reason,
                    created_by=silence.created_by,
                    origin="config",
                ),
            )
        for record in self.state.records.values():
            self.index(record)
            self.schedule(record)

    # ----- indexes and timers ------------------------------------------------------------------------
    def index(self, record: IncidentRecord) -> None:
        """Add an incident to the key and zone indexes."""
        self.by_zone.setdefault(record.incident.zone, set()).add(record.id)
        for member in record.members.values():
            if member.status is not SignalStatus.RESOLVED:
                self.keys[member.dedup_key] = record.id

    def candidates(self, zone: str | None) -> list[IncidentRecord]:
        """Unarchived incidents in `zone` (all of them when zone is None)."""
        if zone is None:
            return list(self.state.records.values())
        return [self.state.records[i] for i in self.by_zone.get(zone, ()) if i in self.state.records]

    def next_due(self, record: IncidentRecord) -> float | None:
        """When this incident next needs attention: a clock, its grace timer, auto-close or archive."""
        inc = record.incident
        times: list[float] = []
        if record.active:
            deadline = sla.next_deadline(inc.sla)
            if deadline is not None:
                times.append(deadline)
        if record.grace is not None and record.grace.status is GraceStatus.RUNNING:
            times.append(record.grace.verdict_at)
        auto_close = self.config.auto_close_resolved_s
        if inc.state is IncidentState.RESOLVED and auto_close is not None and record.resolved_at is not None:
            times.append(record.resolved_at + auto_close)
        if inc.state is IncidentState.CLOSED and record.archived_at is None and record.closed_at is not None:
            times.append(record.closed_at + self.config.archive_after_s)
        return min(times) if times else None

    def schedule(self, record: IncidentRecord) -> None:
        """(Re)arm the timer of one incident."""
        due = self.next_due(record)
        if due is None:
            self._scheduled.pop(record.id, None)
        elif self._scheduled.get(record.id) != due:
            self._scheduled[record.id] = due
            heapq.heappush(self._heap, (due, record.id))

    def day(self, now: float) -> str:
        """The local date (YYYY-MM-DD) for per-day counters (cached per minute: it is asked often)."""
        minute = int(now // 60)
        if minute != self._day_cache[0]:
            self._day_cache = (minute, datetime.fromtimestamp(now, self.config.tz).strftime("%Y-%m-%d"))
        return self._day_cache[1]

    # ----- inputs ------------------------------------------------------------------------------------
    def on_signal(self, signal: RuleSignal, now: float) -> Changes:
        """A RuleSignal from the rules engine (see alerting.signals)."""
        changes = Changes()
        self.signals.handle(changes, self.district_view(signal), round(now, 3))
        return self.finish(changes)

    def district_view(self, signal: RuleSignal) -> RuleSignal:
        """A camera signal as the command centre routes it: in the camera's district zone, at its location.

        Edge events name the camera's own polygon zone (`no_parking_east`); teams, grouping, inhibition
        and silences work on the district zones of the registry, so the polygon name moves to
        `explain.camera_zone` and the incident takes the camera's first registry zone.
        """
        camera = self.cameras.get(signal.camera_id or "")
        if camera is None or not camera.zones or signal.zone in camera.zones:
            return signal
        location = signal.location
        if location is None and camera.location is not None:
            location = GeoPoint(camera.location.lat, camera.location.lon)
        explain = {**signal.explain, "camera_zone": signal.zone}
        return replace(signal, zone=camera.zones[0], location=location, explain=explain)

    def on_command(self, incident_id: str, command: IncidentCommand, now: float) -> Changes:
        """A responder command; illegal ones are answered on `incident/{id}/cmd/rejected`."""
        now = round(now, 3)
        changes = Changes()
        record = self.state.records.get(incident_id)
        reason = (
            "unknown incident (never opened, or archived)" if record is None else rejection(record.incident, command)
        )
        if reason is not None or record is None:
            rejected = CommandRejected(incident_id, command.action.value, command.by, reason or "", now)
            topic = self.topics.build("incident_cmd_rejected", incident_id=incident_id)
            changes.outbox.append(OutboxEntry(topic, encode(rejected)))
            return changes
        record.incident, kind, action = apply_command(record.incident, command, now)
        if kind is AlertKind.RESOLVED:
            record.resolved_at = now
            if record.incident.outcome is None:
                record.incident = replace(record.incident, outcome="resolved")
        elif kind is AlertKind.CLOSED:
            record.closed_at = now
        self.emitter.emit(changes, record, kind, action=action, by=command.by, now=now, note=command.note)
        self.schedule(record)
        return self.finish(changes)

    def on_receipt(self, speaker_id: str, receipt: WarningReceipt, now: float) -> Changes:
        """A speaker's `warden/{id}/said` acknowledgement."""
        now = round(now, 3)
        changes = Changes()
        events, dispatch = self.voice.receipt(speaker_id, receipt, now)
        self._voice_outcome(changes, events, dispatch, now)
        return self.finish(changes)

    def on_delivered(self, warning_id: str, delivery: Delivery, now: float) -> Changes:
        """A speaker adapter's answer for the current attempt of a warning."""
        now = round(now, 3)
        changes = Changes()
        self._voice_outcome(changes, self.voice.delivered(warning_id, delivery, now), [], now)
        if warning_id in self.voice.tasks:
            changes.voice[warning_id] = self.voice.tasks[warning_id]
        return self.finish(changes)

    def on_camera_status(self, camera_id: str, status: CameraStatus, now: float) -> Changes:
        """A camera's retained status; back online re-checks signals its outage suppressed."""
        changes = Changes()
        previous = self.state.cameras.get(camera_id)
        self.state.cameras[camera_id] = (status.state.value, status.since)
        changes.cameras[camera_id] = self.state.cameras[camera_id]
        if (
            previous is not None
            and previous[0] == CameraState.OFFLINE.value
            and status.state is not CameraState.OFFLINE
        ):
            self._recheck_at = 0.0
        return changes

    def camera_offline(self, camera_id: str | None) -> bool:
        """Is this camera known to be offline?"""
        state = self.state.cameras.get(camera_id or "")
        return state is not None and state[0] == CameraState.OFFLINE.value

    def add_silence(self, silence: Silence) -> Changes:
        """Add or replace a runtime silence."""
        changes = Changes()
        self.state.silences[silence.id] = silence
        changes.silences[silence.id] = silence
        return changes

    def expire_silence(self, silence_id: str, now: float) -> Changes:
        """End a silence now; what it held back is re-checked on the next tick."""
        changes = Changes()
        silence = self.state.silences.get(silence_id)
        if silence is not None:
            silence.ends_at = min(silence.ends_at, now)
            changes.silences[silence_id] = silence
            self._recheck_at = 0.0
        return changes

    # ----- time --------------------------------------------------------------------------------------
    def tick(self, now: float) -> Changes:
        """Fire what is due: missed clocks, grace timers, auto-close, archive, voice retries, rechecks."""
        now = round(now, 3)
        changes = Changes()
        due_now: list[IncidentRecord] = []
        while self._heap and self._heap[0][0] <= now:
            due, incident_id = heapq.heappop(self._heap)
            record = self.state.records.get(incident_id)
            if record is None or self._scheduled.get(incident_id) != due:
                continue  # archived, or re-armed since
            del self._scheduled[incident_id]
            due_now.append(record)
        for record in due_now:  # each incident at most once per tick, whatever its timers say
            self._on_due(changes, record, now)
            if record.archived_at is None:
                self.schedule(record)
        events, dispatch = self.voice.tick(now)
        self._voice_outcome(changes, events, dispatch, now)
        if now >= self._recheck_at:
            self._recheck_at = now + 1.0
            self.signals.recheck(changes, now)
        if now >= self._evict_at:
            self._evict_at = now + 60.0
            self._evict(changes, now)
        return self.finish(changes)

    def _on_due(self, changes: Changes, record: IncidentRecord, now: float) -> None:
        grace = record.grace
        if grace is not None and grace.status is GraceStatus.RUNNING and grace.verdict_at <= now and record.active:
            parking.violation(
                self,
                changes,
                record,
                now,
                f"still parked when the {grace.deadline - grace.started_at:g} s grace ran out",
            )
        if record.active:
            for clock in sla.due(record.incident.sla, now):
                escalation.breach(self, changes, record, clock.name, now)
        inc = record.incident
        auto_close = self.config.auto_close_resolved_s
        if (
            inc.state is IncidentState.RESOLVED
            and auto_close is not None
            and record.resolved_at is not None
            and now >= record.resolved_at + auto_close
        ):
            self.close(changes, record, now, f"auto-closed {auto_close:g} s after it was resolved")
        elif (
            inc.state is IncidentState.CLOSED
            and record.closed_at is not None
            and now >= record.closed_at + self.config.archive_after_s
        ):
            self._archive(changes, record, now)

    def close(self, changes: Changes, record: IncidentRecord, now: float, note: str, by: str = SYSTEM) -> None:
        """Close an incident (from resolved)."""
        record.incident = replace(record.incident, state=IncidentState.CLOSED)
        record.closed_at = now
        self.emitter.emit(changes, record, AlertKind.CLOSED, action="closed", by=by, now=now, note=note)

    def _archive(self, changes: Changes, record: IncidentRecord, now: float) -> None:
        record.archived_at = now
        changes.touch(record)
        changes.outbox.append(OutboxEntry(self.topics.incident(record.id), b"", retain=True))
        del self.state.records[record.id]
        zone = self.by_zone.get(record.incident.zone)
        if zone is not None:
            zone.discard(record.id)
            if not zone:
                del self.by_zone[record.incident.zone]
        for key in [k for k, v in self.keys.items() if v == record.id]:
            del self.keys[key]

    def _evict(self, changes: Changes, now: float) -> None:
        horizon = now - self.config.routing.dedupe_window_s
        old = [sid for sid, ts in self.state.seen.items() if ts < horizon]
        for sid in old:
            del self.state.seen[sid]
        changes.seen_evict_before = horizon
        for warning_id in self.voice.evict(now):
            changes.voice_removed.append(warning_id)
        for silence_id in [s.id for s in self.state.silences.values() if s.ends_at <= now]:
            del self.state.silences[silence_id]
            changes.silences_removed.append(silence_id)

    # ----- shared helpers (used by signals and parking) ----------------------------------------------
    def recolour(self, changes: Changes, record: IncidentRecord, now: float, by: str) -> None:
        """Set the incident's colour from its members (and any violation floor); re-base clocks on a change."""
        members = record.firing_members() or list(record.members.values())
        wanted = highest([m.colour for m in members] + ([record.colour_floor] if record.colour_floor else []))
        inc = record.incident
        if wanted is inc.colour:
            return
        limits = self.limits(inc.type, wanted)
        clocks = sla.rebase(inc.sla, limits, now) if record.active else inc.sla
        tier = max(inc.tier, self.config.responders.start_tier(wanted))
        record.incident = replace(inc, colour=wanted, sla=clocks, tier=tier)
        note = f"{inc.colour.value} -> {wanted.value}; pending clocks re-based from now"
        self.emitter.emit(changes, record, AlertKind.COLOUR_CHANGED, action="colour_changed", by=by, now=now, note=note)
        self.schedule(record)

    def limits(self, incident_type: str, colour: Colour) -> sla.Limits:
        """The clock limits for a type and colour."""
        return lambda name: self.config.sla.limit(incident_type, colour, name)

    def group_target(self, signal: RuleSignal, now: float) -> IncidentRecord | None:
        """An active incident this new signal joins (same group key, within the window), if grouping applies."""
        grouping = self.config.routing.grouping
        if not grouping.enabled or signal.incident_type in grouping.exclude_types:
            return None
        wanted = signal_key(grouping.by, signal)
        zone = signal.zone if "zone" in grouping.by else None
        for record in self.candidates(zone):
            if (
                record.active
                and record.incident.type not in grouping.exclude_types
                and now - record.last_signal_at <= grouping.window_s
                and record_key(grouping.by, record) == wanted
            ):
                return record
        return None

    def voice_events(self, changes: Changes, events: list[VoiceEvent], now: float) -> None:
        """Record voice events in their incidents' history."""
        for event in events:
            record = self.state.records.get(event.incident_id)
            if record is not None:
                self.emitter.emit(
                    changes, record, AlertKind.UPDATED, action=event.action, by=SYSTEM, now=now, note=event.note
                )

    def _voice_outcome(self, changes: Changes, events: list[VoiceEvent], dispatch: list[VoiceTask], now: float) -> None:
        self.voice_events(changes, events, now)
        for event in events:
            task = self.voice.tasks.get(event.warning_id)
            if task is not None:
                changes.voice[task.warning_id] = task
        changes.dispatch.extend(dispatch)

    def finish(self, changes: Changes) -> Changes:
        """Re-arm timers of changed incidents and append their retained documents."""
        for record in changes.incidents.values():
            if record.archived_at is None:
                self.schedule(record)
        return self.emitter.finish(changes)

    def hhmmss(self, ts: float) -> str:
        """A local time of day for history notes."""
        return datetime.fromtimestamp(ts, self.config.tz).strftime("%H:%M:%S")
