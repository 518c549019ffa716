"""Shared config models (broker, time series, sensor registry) and strict validation with YAML lines."""

from __future__ import annotations

import os
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from qinghe.contracts import SensorKind
from qinghe.sensors import KINDS, unit_converter
from qinghe.yamlload import ConfigError, ConfigIssue, Loc, YamlDocument, load_yaml_file

M = TypeVar("M", bound=BaseModel)

ENV_BROKER = "QINGHE_BROKER"
ENV_INFLUX_URL = "QINGHE_INFLUX_URL"


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class BrokerConfig(StrictModel):
    """Where the MQTT broker is and how to talk to it."""

    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://[user:pass@]host:port or mqtts://...")
    username: str | None = Field(None, description="overrides the URL's user")
    password: SecretStr | None = Field(None, description="overrides the URL's password; use ${ENV}")
    client_id: str | None = Field(None, description="fixed client id (persistent session); default derived")
    topic_prefix: str = Field("qh", description="every topic starts {prefix}/v1/")
    keepalive_s: int = Field(30, ge=5, le=3600)
    ca_file: str | None = Field(None, description="CA bundle for mqtts://; system CAs when unset")
    tls_insecure: bool = Field(False, description="skip hostname verification (test setups only)")
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0, description="how long the broker keeps our session")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL scheme must be mqtt or mqtts, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("broker URL has no host")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("broker URL port is not a number") from None
        return url

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, prefix: str) -> str:
        if not prefix.strip("/") or any(ch in prefix for ch in "+#"):
            raise ValueError("topic_prefix must be non-empty and must not contain + or #")
        return prefix.strip("/")

    def __repr_args__(self) -> Any:
        # The URL may carry a password: never let it reach a log line or a traceback.
        for name, value in super().__repr_args__():
            yield name, (self.redacted_url() if name == "url" else value)

    @property
    def tls(self) -> bool:
        """True for mqtts:// URLs."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        """Broker host name."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """Broker port (1883 / 8883 by default)."""
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    def credentials(self) -> tuple[str | None, str | None]:
        """(username, password), explicit fields winning over the URL's user info.

        An empty field (`password: ${QINGHE_MQTT_PASSWORD:-}` with the variable unset) does not count, so
        the credentials of a `QINGHE_BROKER` URL reach the broker with the shipped config.
        """
        parts = urlsplit(self.url)
        user = self.username or (unquote(parts.username) if parts.username else None)
        if self.password is not None and self.password.get_secret_value():
            return user, self.password.get_secret_value()
        return user, unquote(parts.password) if parts.password else None

    def redacted_url(self) -> str:
        """The URL with any password replaced by ***, safe to log."""
        parts = urlsplit(self.url)
        user = f"{parts.username}:***@" if parts.password else (f"{parts.username}@" if parts.username else "")
        return f"{parts.scheme}://{user}{self.host}:{self.port}"


class InfluxConfig(StrictModel):
    """The InfluxDB v2 write endpoint (VictoriaMetrics' /api/v2/write works too)."""

    url: str = Field("http://127.0.0.1:8086", description="http(s)://host:port")
    org: str = "qinghe"
    bucket: str = "sensors"
    token: SecretStr = Field(SecretStr(""), description="API token; use ${ENV}")
    batch_size: int = Field(1000, ge=1, le=100_000)
    flush_interval_ms: int = Field(500, ge=10, le=60_000)
    timeout_ms: int = Field(5000, ge=100)
    gzip: bool = True

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError("influx url must be http(s)://host:port")
        return url.rstrip("/")


class LocationConfig(StrictModel):
    """WGS-84 position in degrees."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class SensorConfig(StrictModel):
    """One sensor in the registry: what it measures, where it is, and its units if not canonical."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: SensorKind
    zone: str = Field(min_length=1)
    location: LocationConfig | None = None
    name: str = ""
    units: dict[str, str] = Field(default_factory=dict, description="field -> unit it reports in")
    expected_interval_s: float = Field(60.0, gt=0, description="how often it reports; gaps are judged by it")
    tags: list[str] = Field(default_factory=list, description="free labels rules select by, e.g. school")

    @field_validator("units")
    @classmethod
    def _check_units(cls, units: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself was invalid; that error is reported already
            return units
        spec = KINDS[kind]
        for field_name, unit in units.items():
            if field_name not in spec.fields:
                raise ValueError(f"{kind.value} sensors have no field {field_name!r}")
            if unit_converter(spec.fields[field_name], unit) is None:
                canonical = spec.fields[field_name].unit
                raise ValueError(f"cannot convert {unit!r} to {canonical!r} for {field_name}")
        return units


def check_unique_ids(items: Sequence[Any], loc: Loc, what: str) -> list[tuple[Loc, str]]:
    """Cross-check helper: every item's `.id` is unique; returns (loc, message) per duplicate."""
    seen: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    for i, item in enumerate(items):
        if item.id in seen:
            problems.append(((*loc, i, "id"), f"duplicate {what} id {item.id!r} (also item {seen[item.id]})"))
        seen.setdefault(item.id, i)
    return problems


CrossCheck = Callable[[Any], Iterable[tuple[Loc, str]]]


def validate_document(
    doc: YamlDocument, model: type[M], checks: Sequence[CrossCheck] = (), context: Mapping[str, Any] | None = None
) -> M:
    """Validate a parsed document against `model`, then run cross-reference `checks`.

    Raises ConfigError with `file:line: key: message` for every problem found.
    """
    try:
        value = model.model_validate(doc.data if doc.data is not None else {}, context=dict(context or {}))
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(doc, exc)) from None
    problems = [doc.issue(loc, message) for check in checks for loc, message in check(value)]
    if problems:
        raise ConfigError(problems)
    return value


def issues_from_validation(doc: YamlDocument, exc: ValidationError) -> list[ConfigIssue]:
    """Map pydantic errors to YAML lines, with messages that say what was expected."""
    issues = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not _is_union_tag(p))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (not allowed here; check the spelling)"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        issues.append(doc.issue(loc, message))
    return issues


def _is_union_tag(part: object) -> bool:
    # pydantic inserts the union member / tag name into loc, e.g. ("rules", 0, "threshold", "for").
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def apply_env_overrides(
    data: Any, environ: Mapping[str, str] | None = None, fields: Container[str] | None = None
) -> Any:
    """Apply QINGHE_BROKER and QINGHE_INFLUX_URL on top of a loaded config mapping (a new dict).

    `fields` (the model's field names) limits the overrides to files that have those sections, so a
    rule file or holiday calendar does not get a `broker` key injected.
    """
    env = os.environ if environ is None else environ
    if not isinstance(data, dict):
        return data
    out = dict(data)
    if env.get(ENV_BROKER) and (fields is None or "broker" in fields):
        out["broker"] = {**(out.get("broker") or {}), "url": env[ENV_BROKER]}
    influx_wanted = "influx" in fields if fields is not None else ("influx" in out or "ingest" in out)
    if env.get(ENV_INFLUX_URL) and influx_wanted:
        out["influx"] = {**(out.get("influx") or {}), "url": env[ENV_INFLUX_URL]}
    return out


def load_config(
    path: str | Path,
    model: type[M],
    checks: Sequence[CrossCheck] = (),
    environ: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Load a YAML file into `model` with env overrides applied; raise ConfigError on any problem."""
    doc = load_yaml_file(path, environ)
    doc = YamlDocument(doc.path, apply_env_overrides(doc.data, environ, model.model_fields), doc.lines)
    ctx = {"config_dir": str(Path(path).resolve().parent), **(context or {})}
    return validate_document(doc, model, checks, ctx)
