"""InfluxDB line protocol encoding for sensor readings (measurement = kind; tags sensor, kind, zone)."""

from __future__ import annotations

from collections.abc import Mapping

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\", "\n": r"\n", "\r": r"\r"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\\": "\\\\", "\n": r"\n", "\r": r"\r"})


def escape_tag(text: str) -> str:
    """Escape a tag key or value: commas, equals signs, spaces, backslashes and line breaks."""
    return text.translate(_TAG_ESCAPES)


def escape_measurement(text: str) -> str:
    """Escape a measurement name: commas, spaces, backslashes and line breaks."""
    return text.translate(_MEASUREMENT_ESCAPES)


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,tag=value,...` with tags sorted by key (InfluxDB's canonical order); empty tags dropped."""
    parts = [escape_measurement(measurement)]
    parts.extend(f"{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    return ",".join(parts)


def encode_line(prefix: str, values: Mapping[str, float], ts_ms: int) -> str:
    """One point: `prefix field=1.5,other=2.0 <epoch ms>`; field names must be plain identifiers."""
    fields = ",".join([f"{name}={value!r}" for name, value in values.items()])
    return f"{prefix} {fields} {ts_ms}"


def epoch_ms(ts: float) -> int:
    """Epoch seconds to integer milliseconds (the precision ingest writes with)."""
    return round(ts * 1000.0)
