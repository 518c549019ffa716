"""The central services' config file (`qinghe serve --config`): broker, database, registries, sections."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from alerting.config import AlertingConfig
from ingest.config import IngestConfig
from qinghe.config import (
    BrokerConfig,
    InfluxConfig,
    LocationConfig,
    SensorConfig,
    StrictModel,
    check_unique_ids,
    load_config,
)
from qinghe.yamlload import Loc
from rules.config import RulesConfig


class CameraRefConfig(StrictModel):
    """A camera as the central side knows it: where it is, its zones, and its speaker if it has one."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: str = Field("generic", pattern=r"^(generic|road_warden|ar_tower|thermal)$")
    zones: list[str] = Field(default_factory=list)
    location: LocationConfig | None = None
    speaker_id: str | None = Field(None, description="road-warden speaker that warns at this camera")
    edge_id: str | None = None


class CentralConfig(StrictModel):
    """Everything `qinghe serve` needs. Relative paths are relative to this file's directory."""

    service_id: str = Field("central", pattern=r"^[A-Za-z0-9_.-]+$", description="MQTT client id stem")
    state_dir: str = Field("var/central", description="durable state (buffers, incidents, outboxes)")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    influx: InfluxConfig = Field(default_factory=InfluxConfig)
    sensors: list[SensorConfig] = Field(default_factory=list, description="the sensor registry")
    cameras: list[CameraRefConfig] = Field(default_factory=list, description="the camera registry")
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)

    def sensor_map(self) -> dict[str, SensorConfig]:
        """Registry lookup by sensor id."""
        return {sensor.id: sensor for sensor in self.sensors}

    def camera_map(self) -> dict[str, CameraRefConfig]:
        """Registry lookup by camera id."""
        return {camera.id: camera for camera in self.cameras}

    def resolve(self, base_dir: str | Path, relative: str) -> Path:
        """A path from this config, made absolute against `base_dir` (the config file's directory)."""
        path = Path(relative)
        return path if path.is_absolute() else Path(base_dir) / path


def central_checks(config: CentralConfig) -> Iterable[tuple[Loc, str]]:
    """Cross-reference checks: unique sensor and camera ids."""
    yield from check_unique_ids(config.sensors, ("sensors",), "sensor")
    yield from check_unique_ids(config.cameras, ("cameras",), "camera")


def load_central_config(path: str | Path, environ: Mapping[str, str] | None = None) -> CentralConfig:
    """Load and fully validate a central config file; raises ConfigError with file:line: key: message."""
    return load_config(path, CentralConfig, checks=[central_checks], environ=environ)


def is_central(data: Any) -> bool:
    """Does this parsed YAML look like a central config?"""
    return isinstance(data, dict) and bool({"sensors", "ingest", "alerting", "influx"} & data.keys())


def file_kinds() -> list[Any]:
    """The central config as a `qinghe config check` file kind."""
    from qinghe.configcheck import FileKind

    def check(path: str) -> None:
        config = load_central_config(path)
        from ingest.registry import load_registry_files  # extra sensor registries named by the file

        load_registry_files(config, Path(path).parent)

    return [FileKind("central", is_central, check)]
