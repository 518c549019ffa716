"""Typed, frozen messages that cross stages and processes (wire format v1; see docs/contract.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from qinghe.timefmt import Timestamp

WIRE_VERSION = 1

JsonScalar = str | int | float | bool | None


class Colour(StrEnum):
    """Incident severity, lowest first: blue general, yellow ordinary, orange important, red major."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"

    @property
    def rank(self) -> int:
        """0 for blue up to 3 for red."""
        return _COLOUR_ORDER.index(self)

    def raised(self, levels: int = 1) -> Colour:
        """This colour moved up (or down, if negative) by `levels`, clamped to blue..red."""
        index = min(max(self.rank + levels, 0), len(_COLOUR_ORDER) - 1)
        return _COLOUR_ORDER[index]


_COLOUR_ORDER = (Colour.BLUE, Colour.YELLOW, Colour.ORANGE, Colour.RED)


class SensorKind(StrEnum):
    """Kinds of IoT sensor; each has its own fields and physical ranges (see qinghe.sensors)."""

    AIR = "air"
    NOISE = "noise"
    WATER_LEVEL = "water_level"
    WATER_QUALITY = "water_quality"
    RAIN = "rain"
    SMOKE = "smoke"
    THERMAL = "thermal"


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """WGS-84 position in degrees."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class SensorReading:
    """A validated sensor reading in canonical units, enriched from the sensor registry."""

    sensor_id: str
    kind: SensorKind
    zone: str
    ts: Timestamp
    values: dict[str, float]
    seq: int | None = None
    location: GeoPoint | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message: the original topic and payload and why it was rejected."""

    topic: str
    payload: str
    reason: str
    ts: Timestamp
    stage: str
    encoding: str = "text"  # "text" or "base64" when the payload was not UTF-8
    v: int = WIRE_VERSION


class EventType(StrEnum):
    """Phase of a camera object event."""

    START = "start"
    UPDATE = "update"
    END = "end"


class Analytic(StrEnum):
    """The enforcement analytics an edge agent runs; `object` is plain zone presence."""

    ILLEGAL_PARKING = "illegal_parking"
    DUMPING = "dumping"
    SMOKE_FIRE = "smoke_fire"
    STANDING_WATER = "standing_water"
    OBJECT = "object"


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """Where a snapshot can be fetched: the MQTT topic it was published on, plus its role."""

    topic: str
    role: str = "best"  # best | before | after | appeared
    ts: Timestamp | None = None


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """`camera/{id}/event`: an object or scene condition starting, changing or ending in a zone.

    `phase` refines `type` for multi-step analytics (illegal_parking: dwelling, warning, violation);
    `outcome` is set on `end` (complied, violation, left, expired).
    """

    event_id: str
    seq: int
    edge_id: str
    camera_id: str
    type: EventType
    analytic: str
    label: str
    zone: str
    track_id: int
    score: float
    box: tuple[float, float, float, float]
    dwell_s: float
    ts: Timestamp
    plate: str | None = None
    plate_confidence: float | None = None
    snapshot: str | None = None
    snapshots: tuple[SnapshotRef, ...] = ()
    phase: str | None = None
    outcome: str | None = None
    episode_id: str | None = None
    attributes: dict[str, JsonScalar] = field(default_factory=dict)
    v: int = WIRE_VERSION


class CameraState(StrEnum):
    """Health of a camera stream as seen by its edge agent."""

    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """Retained `camera/{id}/status`."""

    state: CameraState
    since: Timestamp
    fps: float
    reason: str = ""
    v: int = WIRE_VERSION


class IncidentState(StrEnum):
    """Lifecycle: open -> acknowledged -> on_site -> resolved -> closed."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CLOSED = "closed"


class AlertKind(StrEnum):
    """What happened to an incident; one alert per state change on `alert/{colour}/{type}`."""

    OPENED = "opened"
    ESCALATED = "escalated"
    COLOUR_CHANGED = "colour_changed"
    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CLOSED = "closed"
    SLA_BREACHED = "sla_breached"
    COMMENTED = "commented"
    UPDATED = "updated"


class SlaClockName(StrEnum):
    """The three "1510" clocks."""

    ACKNOWLEDGE = "acknowledge"
    ON_SITE = "on_site"
    HANDLED = "handled"


@dataclass(frozen=True, slots=True)
class SlaClock:
    """One clock of an incident: when it started, its deadline, and whether it was met or breached.

    `met` is derived (any value passed in is replaced): true when met by its deadline, false once the
    deadline was missed (even if met late afterwards), null while it is still counting or not applicable.
    """

    name: SlaClockName
    started_at: Timestamp
    deadline: Timestamp | None
    met_at: Timestamp | None = None
    breached_at: Timestamp | None = None
    met: bool | None = None

    def __post_init__(self) -> None:
        met: bool | None = None
        if self.breached_at is not None:
            met = False
        elif self.met_at is not None:
            met = self.deadline is None or self.met_at <= self.deadline
        object.__setattr__(self, "met", met)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One recorded change of an incident: what, when, by whom, and why."""

    ts: Timestamp
    action: str
    by: str
    state: IncidentState
    colour: Colour
    note: str = ""


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A reading or camera event that contributed to an incident."""

    kind: str  # "reading" | "event" | "camera_status"
    id: str  # sensor_id or event_id
    ts: Timestamp
    summary: str = ""
    camera_id: str | None = None
    sensor_id: str | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """A piece of evidence: a snapshot reference and its role in the episode."""

    ref: str
    role: str
    ts: Timestamp
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    """The incident document retained on `incident/{id}`."""

    id: str
    type: str
    colour: Colour
    state: IncidentState
    opened_at: Timestamp
    updated_at: Timestamp
    zone: str
    rule_id: str
    dedup_key: str
    message: str
    location: GeoPoint | None = None
    sources: tuple[SourceRef, ...] = ()
    sla: tuple[SlaClock, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    explain: dict[str, JsonScalar] = field(default_factory=dict)
    tier: int = 0
    assignee: str | None = None
    outcome: str | None = None  # complied | violation | auto_resolved | ...
    flapping: bool = False
    data_state: str = "ok"  # ok | unknown (a silent sensor)
    v: int = WIRE_VERSION


@dataclass(frozen=True, slots=True)
class Alert:
    """`alert/{colour}/{type}`: one incident state change, with the incident as it now stands."""

    alert_id: str
    kind: AlertKind
    incident_id: str
    type: str
    colour: Colour
    state: IncidentState
    ts: Timestamp
    incident: Incident
    clock: SlaClockName | None = None
    tier: int = 0
    note: str = ""
    v: int = WIRE_VERSION


class CommandAction(StrEnum):
    """Responder commands on `incident/{id}/cmd`."""

    ACK = "ack"
    ARRIVE = "arrive"
    RESOLVE = "resolve"
    CLOSE = "close"
    COMMENT = "comment"


@dataclass(frozen=True, slots=True)
class IncidentCommand:
    """A responder command for one incident."""

    action: CommandAction
    by: str
    ts: Timestamp
    note: str = ""


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """Published on `incident/{id}/cmd/rejected` when a command is illegal in the current state."""

    incident_id: str
    action: str
    by: str
    reason: str
    ts: Timestamp
    v: int = WIRE_VERSION


@dataclass(frozen=True, slots=True)
class VoiceWarning:
    """`warden/{speaker_id}/say`: a warning for a road-warden speaker."""

    warning_id: str
    speaker_id: str
    text: str
    incident_id: str
    repeat: int
    expires_at: Timestamp
    audio: str | None = None  # base64 WAV for speakers that cannot speak text
    v: int = WIRE_VERSION


class WarningStatus(StrEnum):
    """Speaker acknowledgement status."""

    PLAYED = "played"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class WarningReceipt:
    """`warden/{speaker_id}/said`: the speaker's acknowledgement of a warning."""

    warning_id: str
    status: WarningStatus
    ts: Timestamp


class SignalStatus(StrEnum):
    """What a rule instance says about its condition."""

    FIRING = "firing"
    RESOLVED = "resolved"
    UNKNOWN = "unknown"  # inputs went silent: neither firing nor resolved


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action a rule asks alerting to run: voice warning, notify topic, webhook."""

    kind: str  # voice | notify | webhook
    target: str = ""  # speaker id, topic or webhook name; empty = derive from the source
    template: str = ""
    params: dict[str, JsonScalar] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleSignal:
    """Rules -> alerting: a rule instance changed status (fired, changed colour, resolved, went unknown)."""

    signal_id: str
    rule_id: str
    dedup_key: str
    incident_type: str
    status: SignalStatus
    colour: Colour
    ts: Timestamp
    message: str
    zone: str
    location: GeoPoint | None = None
    sources: tuple[SourceRef, ...] = ()
    explain: dict[str, JsonScalar] = field(default_factory=dict)
    actions: tuple[ActionSpec, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    flapping: bool = False
    camera_id: str | None = None
    v: int = WIRE_VERSION
