"""The sensor registry compiled for the hot path, and loading of extra registry files (`ingest.registry_files`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ingest.config import RegistryFile
from ingest.lineproto import series_prefix
from qinghe.central_config import CentralConfig, central_checks
from qinghe.config import SensorConfig, check_unique_ids, load_config, validate_document
from qinghe.contracts import GeoPoint, SensorKind
from qinghe.sensors import KINDS, FieldSpec, unit_converter
from qinghe.yamlload import ConfigError, ConfigIssue, load_yaml_file

Converter = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class FieldRule:
    """How one reported field is checked: the canonical spec, the sensor's unit and its converter."""

    spec: FieldSpec
    unit: str
    convert: Converter | None  # None when the sensor already reports in the canonical unit


@dataclass(frozen=True, slots=True)
class SensorProfile:
    """Everything the validator needs about one sensor, precomputed once."""

    sensor_id: str
    kind: SensorKind
    zone: str
    location: GeoPoint | None
    fields: dict[str, FieldRule]
    required: tuple[str, ...]
    line_prefix: str  # `kind,kind=..,sensor=..,zone=..`


def compile_sensor(sensor: SensorConfig) -> SensorProfile:
    """Precompute a sensor's field rules, converters and line-protocol series prefix."""
    spec = KINDS[sensor.kind]
    fields: dict[str, FieldRule] = {}
    for name, field_spec in spec.fields.items():
        unit = sensor.units.get(name, field_spec.unit)
        converter = unit_converter(field_spec, unit)
        if converter is None:  # SensorConfig validation already rejects these
            raise ValueError(f"sensor {sensor.id}: cannot convert {unit!r} to {field_spec.unit!r} for {name}")
        fields[name] = FieldRule(field_spec, unit, None if unit == field_spec.unit else converter)
    location = GeoPoint(sensor.location.lat, sensor.location.lon) if sensor.location is not None else None
    prefix = series_prefix(spec.measurement, {"sensor": sensor.id, "kind": sensor.kind.value, "zone": sensor.zone})
    return SensorProfile(sensor.id, sensor.kind, sensor.zone, location, fields, spec.required(), prefix)


def compile_registry(sensors: Iterable[SensorConfig]) -> dict[str, SensorProfile]:
    """Sensor id -> compiled profile."""
    return {sensor.id: compile_sensor(sensor) for sensor in sensors}


def load_registry_files(
    config: CentralConfig, config_dir: Path, environ: Mapping[str, str] | None = None
) -> CentralConfig:
    """The config with the sensors of every `ingest.registry_files` file merged into `sensors`.

    Raises ConfigError (file:line: key: message) for a bad file or an id defined twice. The
    returned config has `registry_files` emptied, so merging it again is a no-op.
    """
    if not config.ingest.registry_files:
        return config
    sensors = list(config.sensors)
    origin = {sensor.id: "the main config" for sensor in sensors}
    issues: list[ConfigIssue] = []
    for name in config.ingest.registry_files:
        path = config.resolve(config_dir, name)
        try:
            doc = load_yaml_file(path, environ)
            registry = validate_document(doc, RegistryFile, checks=[_unique_sensors])
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        for index, sensor in enumerate(registry.sensors):
            if sensor.id in origin:
                issues.append(
                    doc.issue(("sensors", index, "id"), f"sensor {sensor.id!r} is also in {origin[sensor.id]}")
                )
                continue
            origin[sensor.id] = str(path)
            sensors.append(sensor)
    if issues:
        raise ConfigError(issues)
    ingest = config.ingest.model_copy(update={"registry_files": []})
    return config.model_copy(update={"sensors": sensors, "ingest": ingest})


def _unique_sensors(registry: RegistryFile) -> list[tuple[tuple[str | int, ...], str]]:
    return check_unique_ids(registry.sensors, ("sensors",), "sensor")


def load_central(path: Path, environ: Mapping[str, str] | None = None) -> CentralConfig:
    """Load a central config file and merge its extra registry files; raises ConfigError."""
    config = load_config(path, CentralConfig, checks=[central_checks], environ=environ)
    return load_registry_files(config, path.parent, environ)
