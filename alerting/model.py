"""Internal records of the alerting core: an incident with its members, timers and routing state."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter

from qinghe.contracts import Colour, HistoryEntry, Incident, IncidentState, RuleSignal, SignalStatus

ACTIVE_STATES = frozenset({IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.ON_SITE})
"""States in which clocks run and responders are expected to act."""


@dataclass(slots=True)
class Member:
    """One dedup key (rule instance) that belongs to an incident, and what its rule last said."""

    dedup_key: str
    rule_id: str
    status: SignalStatus
    colour: Colour
    last_signal_at: float
    camera_id: str | None = None


class GraceStatus(StrEnum):
    """The parking loop's grace timer."""

    RUNNING = "running"
    COMPLIED = "complied"
    VIOLATION = "violation"


@dataclass(slots=True)
class Grace:
    """A grace period after a voice warning: the vehicle may leave until `deadline`; alerting declares
    the violation itself only `settle_s` later, the time the edge needs to confirm a departure."""

    started_at: float
    deadline: float
    violation_colour: Colour
    status: GraceStatus = GraceStatus.RUNNING
    settle_s: float = 0.0

    @property
    def verdict_at(self) -> float:
        """When a grace without an edge verdict becomes a violation."""
        return self.deadline + self.settle_s


@dataclass(slots=True)
class IncidentRecord:
    """An incident as the core keeps it: the public document plus members, routing and timers."""

    incident: Incident
    members: dict[str, Member]
    team: str
    cause: str
    last_signal_at: float
    camera_id: str | None = None
    alert_seq: int = 0
    notify_targets: list[str] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)
    grace: Grace | None = None
    colour_floor: Colour | None = None
    resolved_at: float | None = None
    closed_at: float | None = None
    archived_at: float | None = None
    dropped_sources: int = 0
    signals: int = 1
    voice_seq: int = 0
    older_history: list[HistoryEntry] = field(default_factory=list)  # trimmed from the wire document

    @property
    def id(self) -> str:
        """The incident id."""
        return self.incident.id

    @property
    def active(self) -> bool:
        """Open, acknowledged or on site: clocks run."""
        return self.incident.state in ACTIVE_STATES

    def firing_members(self) -> list[Member]:
        """Members whose rule has not said resolved."""
        return [m for m in self.members.values() if m.status is not SignalStatus.RESOLVED]


class VoiceStatus(StrEnum):
    """A voice warning's progress."""

    SENDING = "sending"  # handed to the speaker adapter
    AWAITING = "awaiting"  # sent; waiting for warden/{id}/said
    PLAYED = "played"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"  # quiet hours or rate limit; never sent


FINISHED_VOICE = frozenset({VoiceStatus.PLAYED, VoiceStatus.FAILED, VoiceStatus.EXPIRED, VoiceStatus.SUPPRESSED})


@dataclass(slots=True)
class VoiceTask:
    """One voice warning to one speaker, with its attempts and outcome."""

    warning_id: str
    incident_id: str
    speaker_id: str
    adapter: str
    text: str
    repeat: int
    created_at: float
    expires_at: float
    max_attempts: int
    ack_timeout_s: float
    attempts: int = 0
    status: VoiceStatus = VoiceStatus.SENDING
    sent_at: float | None = None
    finished_at: float | None = None
    detail: str = ""

    @property
    def finished(self) -> bool:
        """Played, failed, expired or suppressed."""
        return self.status in FINISHED_VOICE


@dataclass(slots=True)
class Silence:
    """Signals matching every matcher (glob) are suppressed between `starts_at` and `ends_at`."""

    id: str
    matchers: dict[str, str]
    starts_at: float
    ends_at: float
    reason: str
    created_by: str
    origin: str = "runtime"  # config | runtime


@dataclass(slots=True)
class Suppressed:
    """A firing signal held back (silence, maintenance, offline camera, inhibition); re-checked later."""

    signal: RuleSignal
    reason: str
    since: float
    last_at: float
    count: int = 1


RECORD = TypeAdapter(IncidentRecord)
VOICE = TypeAdapter(VoiceTask)
SILENCE = TypeAdapter(Silence)
SUPPRESSED = TypeAdapter(Suppressed)


def dump(adapter: TypeAdapter[Any], value: object) -> bytes:
    """Serialise an internal record to JSON (timestamps of contract types as RFC 3339)."""
    return adapter.dump_json(value)
