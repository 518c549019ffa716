"""Sensor kinds: their fields, canonical units, physical ranges, and unit conversions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qinghe.contracts import SensorKind


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One measured quantity: canonical unit and the physically possible range (inclusive)."""

    name: str
    unit: str
    low: float
    high: float
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class KindSpec:
    """The fields a sensor kind may report; at least the required ones must be present."""

    kind: SensorKind
    measurement: str
    fields: dict[str, FieldSpec]

    def required(self) -> tuple[str, ...]:
        """Names of the fields every reading of this kind must carry."""
        return tuple(name for name, spec in self.fields.items() if spec.required)


def _kind(kind: SensorKind, *fields: FieldSpec) -> KindSpec:
    return KindSpec(kind=kind, measurement=kind.value, fields={f.name: f for f in fields})


KINDS: dict[SensorKind, KindSpec] = {
    spec.kind: spec
    for spec in (
        _kind(
            SensorKind.AIR,
            FieldSpec("pm25", "ug/m3", 0, 1000, True, "PM2.5 mass concentration"),
            FieldSpec("pm10", "ug/m3", 0, 2000, False, "PM10 mass concentration"),
            FieldSpec("no2", "ug/m3", 0, 2000, False, "nitrogen dioxide"),
            FieldSpec("o3", "ug/m3", 0, 1200, False, "ozone"),
        ),
        _kind(SensorKind.NOISE, FieldSpec("laeq", "dBA", 0, 150, True, "A-weighted equivalent level")),
        _kind(SensorKind.WATER_LEVEL, FieldSpec("level", "m", -20, 200, True, "water level above datum")),
        _kind(
            SensorKind.WATER_QUALITY,
            FieldSpec("ph", "pH", 0, 14, True, "acidity"),
            FieldSpec("turbidity", "NTU", 0, 4000, False, "turbidity"),
            FieldSpec("dissolved_oxygen", "mg/L", 0, 25, False, "dissolved oxygen"),
            FieldSpec("cod", "mg/L", 0, 2000, False, "chemical oxygen demand"),
        ),
        _kind(
            SensorKind.RAIN,
            FieldSpec("rate", "mm/h", 0, 500, True, "rain intensity"),
            FieldSpec("accumulated", "mm", 0, 2000, False, "rain since midnight"),
        ),
        _kind(SensorKind.SMOKE, FieldSpec("smoke", "%obs/m", 0, 100, True, "smoke obscuration")),
        _kind(
            SensorKind.THERMAL,
            FieldSpec("temp_max", "degC", -40, 1500, True, "hottest pixel / probe"),
            FieldSpec("temp_avg", "degC", -40, 1500, False, "mean temperature"),
            FieldSpec("hot_area", "m2", 0, 1_000_000, False, "area above the hotspot threshold"),
        ),
    )
}

# (from_unit, canonical_unit) -> converter into the canonical unit.
CONVERSIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("mg/m3", "ug/m3"): lambda x: x * 1000.0,
    ("cm", "m"): lambda x: x / 100.0,
    ("mm", "m"): lambda x: x / 1000.0,
    ("degF", "degC"): lambda x: (x - 32.0) * 5.0 / 9.0,
    ("K", "degC"): lambda x: x - 273.15,
    ("in/h", "mm/h"): lambda x: x * 25.4,
    ("ppm", "mg/L"): lambda x: x,
}


def unit_converter(field: FieldSpec, unit: str) -> Callable[[float], float] | None:
    """The converter from `unit` to the field's canonical unit; None if the unit is not supported."""
    if unit == field.unit:
        return _identity
    return CONVERSIONS.get((unit, field.unit))


def _identity(x: float) -> float:
    return x
