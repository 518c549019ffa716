"""Alerting section of the central config: 1510 clocks, responders, routing, silences, webhooks, speakers."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from qinghe.config import StrictModel
from qinghe.contracts import AlertKind, Colour, SlaClockName

_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*"
    r"(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)


def parse_duration(value: object) -> float | None:
    """Seconds from a number or a string like `90s`, `5m`, `2h`, `1d`, `1h30m`; `-` or null mean none."""
    if value is None or value == "-":
        return None
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like 5m, 2h, 1d")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match and any(match.groups()):
            days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
            return days * 86400 + hours * 3600 + minutes * 60 + seconds
    raise ValueError(f"{value!r} is not a duration (use seconds, or e.g. 90s, 5m, 2h, 1d, or - for none)")


def _required_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError("a duration is required here")
    return seconds


Duration = Annotated[float, BeforeValidator(_required_duration), Field(gt=0)]
"""A positive duration in seconds (YAML: number of seconds or `5m`, `2h`, `1d`)."""
OptDuration = Annotated[Annotated[float, Field(gt=0)] | None, BeforeValidator(parse_duration)]
"""A duration, or null / `-` for none."""

MATCH_KEYS = ("type", "zone", "rule_id", "camera_id", "colour", "dedup_key")
GroupKey = Literal["type", "zone", "rule_id", "cause"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_ALL_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# ----- 1510 clocks --------------------------------------------------------------------------------------
class ClockLimits(StrictModel):
    """Deadlines (from the incident opening, or from its last colour change) of the three clocks."""

    acknowledge: OptDuration = Field(None, description="acknowledge within; - for no clock")
    on_site: OptDuration = Field(None, description="a responder on site within; - for no clock")
    handled: OptDuration = Field(None, description="resolved within; - for no clock")

    def get(self, name: SlaClockName) -> float | None:
        """The limit of one clock."""
        return {"acknowledge": self.acknowledge, "on_site": self.on_site, "handled": self.handled}[name.value]


CONTRACT_SLA: dict[Colour, tuple[float | None, float | None, float | None]] = {
    Colour.RED: (60.0, 300.0, 600.0),
    Colour.ORANGE: (60.0, 300.0, 600.0),
    Colour.YELLOW: (600.0, 1800.0, 7200.0),
    Colour.BLUE: (3600.0, None, 86400.0),
}
"""The contract's 1510 table: (acknowledge, on site, handled) seconds per colour."""

_CLOCK_ORDER = (SlaClockName.ACKNOWLEDGE, SlaClockName.ON_SITE, SlaClockName.HANDLED)


class SlaConfig(StrictModel):
    """The 1510 clocks per colour, overridable per incident type; unset keys inherit the contract table."""

    colours: dict[Colour, ClockLimits] = Field(default_factory=dict, description="per-colour overrides")
    types: dict[str, dict[Colour, ClockLimits]] = Field(
        default_factory=dict, description="incident type -> colour -> overrides"
    )

    def limit(self, incident_type: str, colour: Colour, clock: SlaClockName) -> float | None:
        """The deadline of `clock` for this type and colour: type override, colour override, contract."""
        for limits in (self.types.get(incident_type, {}).get(colour), self.colours.get(colour)):
            if limits is not None and clock.value in limits.model_fields_set:
                return limits.get(clock)
        return CONTRACT_SLA[colour][_CLOCK_ORDER.index(clock)]


# ----- responders -------------------------------------------------------------------------------------------
class TeamConfig(StrictModel):
    """A responder team and the zones / incident types it covers (empty = all)."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = ""
    zones: list[str] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)


class TierConfig(StrictModel):
    """A responder tier; escalation walks up the list. `notify` is the topic under `notify/` ({team} allowed)."""

    name: str = Field(min_length=1)
    notify: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.{}/-]+$")


def _default_tiers() -> list[TierConfig]:
    return [
        TierConfig(name="team", notify="team/{team}"),
        TierConfig(name="squad_leader", notify="squad-leader"),
        TierConfig(name="duty_chief", notify="duty-chief"),
    ]


def _default_initial_tier() -> dict[Colour, int]:
    return {Colour.BLUE: 0, Colour.YELLOW: 0, Colour.ORANGE: 0, Colour.RED: 1}


class RespondersConfig(StrictModel):
    """Teams that handle incidents and the escalation ladder (team -> squad leader -> duty chief)."""

    teams: list[TeamConfig] = Field(default_factory=lambda: [TeamConfig(id="duty-team")])
    default_team: str = Field("duty-team", description="team for incidents no team's zones/types match")
    tiers: list[TierConfig] = Field(default_factory=_default_tiers, min_length=1)
    initial_tier: dict[Colour, int] = Field(
        default_factory=_default_initial_tier, description="the tier that first handles each colour"
    )

    @model_validator(mode="after")
    def _cross_check(self) -> RespondersConfig:
        ids = [t.id for t in self.teams]
        _require_unique(ids, "teams", "team")
        if self.default_team not in ids:
            raise ValueError(f"default_team: undefined team {self.default_team!r} (teams: {ids})")
        for colour, tier in self.initial_tier.items():
            if not 0 <= tier < len(self.tiers):
                raise ValueError(f"initial_tier.{colour.value}: tier {tier} out of range 0..{len(self.tiers) - 1}")
        return self

    def team_for(self, incident_type: str, zone: str) -> str:
        """The first team whose zones and types match, else the default team."""
        for team in self.teams:
            if (not team.zones or zone in team.zones) and (not team.types or incident_type in team.types):
                return team.id
        return self.default_team

    def start_tier(self, colour: Colour) -> int:
        """The tier that first handles an incident of `colour` (the rank rises with the colour)."""
        return min(self.initial_tier.get(colour, 0), len(self.tiers) - 1)


def _keys(*keys: GroupKey) -> list[GroupKey]:
    return list(keys)


# ----- routing and noise control ----------------------------------------------------------------------------
class GroupingConfig(StrictModel):
    """Signals with the same group key arriving within `window_s` of the last one join one incident."""

    enabled: bool = True
    by: list[GroupKey] = Field(default_factory=lambda: _keys("type", "zone"), min_length=1)
    window_s: Duration = Field(300.0, description="how long after an incident's last signal others may join")
    exclude_types: list[str] = Field(
        default_factory=lambda: ["illegal_parking"], description="types that never group (one incident per key)"
    )


class InhibitRule(StrictModel):
    """An active incident of a source colour suppresses new target-colour signals that share `equal` keys."""

    source_colours: list[Colour] = Field(default_factory=lambda: [Colour.RED], min_length=1)
    target_colours: list[Colour] = Field(
        default_factory=lambda: [Colour.BLUE, Colour.YELLOW, Colour.ORANGE], min_length=1
    )
    equal: list[GroupKey] = Field(default_factory=lambda: _keys("zone", "cause"), min_length=1)


class RoutingConfig(StrictModel):
    """Grouping, inhibition and dedup windows."""

    grouping: GroupingConfig = Field(default_factory=GroupingConfig)
    inhibit: list[InhibitRule] = Field(default_factory=lambda: [InhibitRule()])
    camera_offline_inhibits: bool = Field(True, description="an offline camera suppresses its detections")
    suppressed_retention_s: Duration = Field(86400.0, description="how long a suppressed signal is kept")
    dedupe_window_s: Duration = Field(86400.0, description="how long signal ids are remembered")


def _require_unique(ids: list[str], where: str, what: str) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(ids):
        if item in seen:
            raise ValueError(f"{where}[{i}]: duplicate {what} id {item!r} (also item {seen[item]})")
        seen[item] = i


def _check_matchers(matchers: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(matchers) - set(MATCH_KEYS))
    if unknown:
        raise ValueError(f"unknown matcher key(s) {unknown}; expected some of {list(MATCH_KEYS)}")
    if not matchers:
        raise ValueError("at least one matcher is required (a silence that matches everything is a mistake)")
    return matchers


class SilenceConfig(StrictModel):
    """A silence from config: signals matching every matcher (glob patterns) are suppressed until `ends_at`."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    matchers: dict[str, str]
    starts_at: datetime | None = None
    ends_at: datetime
    reason: str = Field(min_length=1)
    created_by: str = "config"

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_matchers(value)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a timezone offset, e.g. 2026-12-01T08:00:00+08:00")
        return value


def _parse_hhmm(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):  # YAML reads 22:00 as sexagesimal 1320
        return time(value // 60 % 24, value % 60)
    return value


HourMinute = Annotated[time, BeforeValidator(_parse_hhmm)]


class DailyWindow(StrictModel):
    """A time-of-day window in the alerting timezone; it may wrap midnight (22:00-07:00)."""

    start: HourMinute
    end: HourMinute
    days: list[Weekday] = Field(default_factory=lambda: list(_ALL_DAYS))

    def contains(self, local: datetime) -> bool:
        """Is this local (timezone-aware) moment inside the window?"""
        now = local.time()
        if self.start <= self.end:
            inside, day = self.start <= now < self.end, local
        elif now >= self.start:
            inside, day = True, local
        else:  # after midnight in a window that wraps: it belongs to the previous day's window
            inside, day = now < self.end, local - timedelta(days=1)
        return inside and WEEKDAYS[day.weekday()] in self.days


class MaintenanceWindow(DailyWindow):
    """A recurring maintenance window: matching signals are suppressed while it is open."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    matchers: dict[str, str]
    reason: str = Field(min_length=1)

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_matchers(value)


# ----- webhooks ---------------------------------------------------------------------------------------------
class WebhookConfig(StrictModel):
    """A downstream HTTP endpoint; bodies are signed with HMAC-SHA256 (header X-Qinghe-Signature)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str
    secret: SecretStr = Field(description="HMAC key; use ${ENV}")
    kinds: list[AlertKind] = Field(default_factory=list, description="alert kinds to deliver (empty = all)")
    timeout_s: Duration = 5.0
    max_attempts: int = Field(8, ge=1, le=100)
    backoff_initial_s: Duration = 1.0
    backoff_max_s: Duration = 300.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url must be http(s)://host[:port]/path")
        return url


class WebhooksConfig(StrictModel):
    """Webhook endpoints, the hosts they may point at, and endpoints that get every alert."""

    allow_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost", "::1"])
    endpoints: list[WebhookConfig] = Field(default_factory=list)
    always: list[str] = Field(default_factory=list, description="endpoint names that get every incident")

    @model_validator(mode="after")
    def _cross_check(self) -> WebhooksConfig:
        _require_unique([e.name for e in self.endpoints], "endpoints", "webhook")
        for i, endpoint in enumerate(self.endpoints):
            host = urlsplit(endpoint.url).hostname or ""
            if host not in self.allow_hosts:
                raise ValueError(f"endpoints[{i}].url: host {host!r} is not in allow_hosts {self.allow_hosts}")
        names = {e.name for e in self.endpoints}
        for i, name in enumerate(self.always):
            if name not in names:
                raise ValueError(f'always[{i}]: undefined webhook "{name}"')
        return self

    def endpoint(self, name: str) -> WebhookConfig | None:
        """The endpoint called `name`, if configured."""
        return next((e for e in self.endpoints if e.name == name), None)


# ----- speakers ----------------------------------------------------------------------------------------------
class RateLimit(StrictModel):
    """At most `max` warnings per `per_s` seconds on one speaker."""

    max: int = Field(6, ge=1)
    per_s: Duration = 60.0


class SpeakerConfig(StrictModel):
    """A road-warden speaker and how to reach it (unset keys use `speakers.defaults`)."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    adapter: Literal["mqtt", "http", "local_audio"] | None = None
    url: str | None = Field(None, description="http adapter: where the WAV is POSTed")
    audio: bool = Field(False, description="mqtt adapter: also send the rendered WAV (base64) in `audio`")
    rate_limit: RateLimit | None = None
    ack_timeout_s: OptDuration = None
    retries: int | None = Field(None, ge=0, le=10)

    @model_validator(mode="after")
    def _check_url(self) -> SpeakerConfig:
        if self.adapter == "http" and (not self.url or urlsplit(self.url).scheme not in ("http", "https")):
            raise ValueError("an http speaker needs url: http(s)://host:port/path")
        return self


class SpeakerDefaults(StrictModel):
    """Settings for every speaker that does not set its own."""

    adapter: Literal["mqtt", "http", "local_audio"] = "mqtt"
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    ack_timeout_s: Duration = Field(15.0, description="wait this long for warden/{id}/said, then retry")
    retries: int = Field(2, ge=0, le=10, description="retries after the first attempt, then reported failed")


class SpeakersConfig(StrictModel):
    """Voice warnings: speakers, adapters, quiet hours, espeak-ng voice and where demo WAVs go."""

    defaults: SpeakerDefaults = Field(default_factory=SpeakerDefaults)
    devices: list[SpeakerConfig] = Field(default_factory=list)
    quiet_hours: DailyWindow | None = Field(None, description="no voice in this window (recorded as suppressed)")
    voice: str = Field("cmn-latn-pinyin", description="espeak-ng voice")
    espeak_binary: str = "espeak-ng"
    local_audio_dir: str = Field("var/voice", description="local_audio adapter output (relative to config)")
    default_template: str = "{plate}，此处禁止停车，请立即驶离"
    retention_s: Duration = Field(86400.0, description="finished warnings are forgotten after this")

    @model_validator(mode="after")
    def _cross_check(self) -> SpeakersConfig:
        _require_unique([d.id for d in self.devices], "devices", "speaker")
        return self

    def device(self, speaker_id: str) -> SpeakerConfig:
        """The configured speaker, or one that uses the defaults."""
        found = next((d for d in self.devices if d.id == speaker_id), None)
        return found if found is not None else SpeakerConfig(id=speaker_id)

    def adapter_of(self, speaker_id: str) -> str:
        """The adapter name a speaker uses."""
        return self.device(speaker_id).adapter or self.defaults.adapter


# ----- the section ------------------------------------------------------------------------------------------
class AlertingConfig(StrictModel):
    """Incident lifecycle settings: clocks, responders, routing, silences, webhooks and speakers."""

    enabled: bool = True
    timezone: str = Field("Asia/Shanghai", description="for quiet hours, maintenance windows and reports")
    state_file: str = Field("alerting.db", description="SQLite file under the central state_dir")
    sla: SlaConfig = Field(default_factory=SlaConfig)
    responders: RespondersConfig = Field(default_factory=RespondersConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    silences: list[SilenceConfig] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    speakers: SpeakersConfig = Field(default_factory=SpeakersConfig)
    auto_close_resolved_s: OptDuration = Field(None, description="close resolved incidents after this (null: never)")
    archive_after_s: Duration = Field(3600.0, description="closed incidents leave retained state after this")
    purge_after_s: Duration = Field(90 * 86400.0, description="archived incidents are deleted after this")
    tick_interval_s: Duration = Field(0.2, description="how often clocks and timers are checked")
    max_sources: int = Field(100, ge=1, description="sources kept per incident (later ones are counted)")
    max_evidence: int = Field(50, ge=1, description="evidence items kept per incident")
    max_history: int = Field(
        200, ge=40, description="history entries on the wire; older middle entries stay in the store only"
    )

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {name!r} (use an IANA name like Asia/Shanghai)") from None
        return name

    @model_validator(mode="after")
    def _cross_check(self) -> AlertingConfig:
        _require_unique([s.id for s in self.silences], "silences", "silence")
        _require_unique([m.id for m in self.maintenance], "maintenance", "maintenance window")
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The configured timezone."""
        return ZoneInfo(self.timezone)
