"""What one core step produced (records to persist, messages for the outbox, jobs) and how alerts are built."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from alerting.config import AlertingConfig
from alerting.lifecycle import with_history
from alerting.model import IncidentRecord, Silence, Suppressed, VoiceTask
from qinghe.codec import encode
from qinghe.contracts import Alert, AlertKind, HistoryEntry, SlaClockName
from qinghe.outbox import OutboxEntry
from qinghe.topics import Topics

NOTIFY_KINDS = frozenset({AlertKind.OPENED, AlertKind.COLOUR_CHANGED, AlertKind.SLA_BREACHED})
"""Alert kinds sent to every notify target of the incident (re-notification on each breach)."""


@dataclass(frozen=True, slots=True)
class WebhookJob:
    """One alert to deliver to one webhook endpoint (durable until delivered or given up)."""

    delivery_id: str
    webhook: str
    event: str
    body: bytes
    created_at: float


@dataclass(slots=True)
class Changes:
    """Everything one core call changed; the service persists it and its outbox rows in one transaction."""

    outbox: list[OutboxEntry] = field(default_factory=list)
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)
    voice: dict[str, VoiceTask] = field(default_factory=dict)
    voice_removed: list[str] = field(default_factory=list)
    dispatch: list[VoiceTask] = field(default_factory=list)
    webhooks: list[WebhookJob] = field(default_factory=list)
    silences: dict[str, Silence] = field(default_factory=dict)
    silences_removed: list[str] = field(default_factory=list)
    suppressed: dict[str, Suppressed] = field(default_factory=dict)
    suppressed_removed: list[str] = field(default_factory=list)
    seen: list[tuple[str, float]] = field(default_factory=list)
    seen_evict_before: float | None = None
    cameras: dict[str, tuple[str, float]] = field(default_factory=dict)
    stats: dict[tuple[str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    meta: dict[str, str] = field(default_factory=dict)
    docs: dict[str, bytes] = field(default_factory=dict)  # incident id -> its retained document
    alerts: int = 0

    def touch(self, record: IncidentRecord) -> None:
        """Persist this record (and republish its retained document) at the end of the step."""
        self.incidents[record.id] = record

    def count(self, day: str, rule_id: str, name: str, n: int = 1) -> None:
        """Add to a per-rule, per-day counter (noisiest-rules report)."""
        bucket = self.stats[(day, rule_id)]
        bucket[name] = bucket.get(name, 0) + n

    def empty(self) -> bool:
        """Nothing to persist or publish."""
        return (
            not (self.outbox or self.incidents or self.voice or self.voice_removed or self.webhooks or self.silences)
            and not (self.silences_removed or self.suppressed or self.suppressed_removed or self.seen or self.cameras)
            and not (self.stats or self.meta or self.seen_evict_before is not None)
        )


HISTORY_HEAD = 20
"""Entries kept from the start of a long history (how the incident began)."""
TRIMMED = "history_trimmed"


def trim_history(record: IncidentRecord, limit: int) -> None:
    """Keep the wire document bounded: the first entries, a marker, and the newest; the middle moves to
    `record.older_history` (stored, shown by `qinghe incidents show`)."""
    history = record.incident.history
    if len(history) <= limit:
        return
    head, rest = history[:HISTORY_HEAD], list(history[HISTORY_HEAD:])
    if rest and rest[0].action == TRIMMED:
        rest = rest[1:]
    excess = len(head) + 1 + len(rest) - limit
    record.older_history.extend(rest[:excess])
    rest = rest[excess:]
    first = rest[0]
    note = f"{len(record.older_history)} earlier entries are kept in the incident store (qinghe incidents show)"
    marker = HistoryEntry(first.ts, TRIMMED, "system", first.state, first.colour, note)
    record.incident = replace(record.incident, history=(*head, marker, *rest))


class Emitter:
    """Records history, builds alerts and notifications, and queues webhook deliveries."""

    def __init__(self, config: AlertingConfig, topics: Topics) -> None:
        self.config = config
        self.topics = topics

    def emit(
        self,
        changes: Changes,
        record: IncidentRecord,
        kind: AlertKind,
        *,
        action: str,
        by: str,
        now: float,
        note: str = "",
        clock: SlaClockName | None = None,
    ) -> Alert:
        """Add a history entry, publish an alert on `alert/{colour}/{type}`, notify and queue webhooks."""
        record.incident = with_history(record.incident, action, by, now, note)
        trim_history(record, self.config.max_history)
        record.alert_seq += 1
        inc = record.incident
        alert = Alert(
            alert_id=f"{inc.id}.{record.alert_seq}",
            kind=kind,
            incident_id=inc.id,
            type=inc.type,
            colour=inc.colour,
            state=inc.state,
            ts=now,
            incident=inc,
            clock=clock,
            tier=inc.tier,
            note=note,
        )
        payload = encode(alert)
        changes.outbox.append(OutboxEntry(self.topics.alert(inc.colour, inc.type), payload))
        changes.alerts += 1
        for target in self.notify_targets(record, kind):
            changes.outbox.append(OutboxEntry(self.notify_topic(target), payload))
        self._queue_webhooks(changes, record, alert, payload, now)
        changes.touch(record)
        return alert

    def notify_targets(self, record: IncidentRecord, kind: AlertKind) -> list[str]:
        """Where a notification for `kind` goes: the rule's targets and the tiers reached so far."""
        tiers = self.config.responders.tiers
        if kind is AlertKind.ESCALATED:
            return [tiers[record.incident.tier].notify.format(team=record.team)]
        if kind not in NOTIFY_KINDS:
            return []
        reached = [t.notify.format(team=record.team) for t in tiers[: record.incident.tier + 1]]
        return list(dict.fromkeys([*record.notify_targets, *reached]))

    def notify_topic(self, target: str) -> str:
        """`{prefix}/v1/notify/{target}`."""
        return f"{self.topics.root}/notify/{target.strip('/')}"

    def _queue_webhooks(
        self, changes: Changes, record: IncidentRecord, alert: Alert, payload: bytes, now: float
    ) -> None:
        names = dict.fromkeys([*self.config.webhooks.always, *record.webhooks])
        for name in names:
            endpoint = self.config.webhooks.endpoint(name)
            if endpoint is None or (endpoint.kinds and alert.kind not in endpoint.kinds):
                continue
            changes.webhooks.append(WebhookJob(f"{alert.alert_id}.{name}", name, alert.kind.value, payload, now))

    def finish(self, changes: Changes) -> Changes:
        """Append the retained `incident/{id}` document of every changed, unarchived incident."""
        for record in changes.incidents.values():
            if record.archived_at is None:
                doc = changes.docs[record.id] = encode(record.incident)
                changes.outbox.append(OutboxEntry(self.topics.incident(record.id), doc, retain=True))
        return changes
