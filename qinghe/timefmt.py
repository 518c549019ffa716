"""Timestamps on the wire: RFC 3339 UTC strings out; RFC 3339 or epoch milliseconds in."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from qinghe.errors import PayloadError


def to_rfc3339(epoch_s: float) -> str:
    """Format epoch seconds as an RFC 3339 UTC string with milliseconds, e.g. 2026-11-28T14:46:04.123Z."""
    dt = datetime.fromtimestamp(round(epoch_s, 3), tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_timestamp(value: object) -> float:
    """Parse an RFC 3339 string or epoch milliseconds into epoch seconds; raise PayloadError otherwise."""
    if isinstance(value, bool):
        raise PayloadError("ts must be an RFC 3339 string or epoch milliseconds, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise PayloadError("ts is not a finite number")
        return float(value) / 1000.0
    if isinstance(value, str):
        return _parse_rfc3339(value)
    raise PayloadError(f"ts must be an RFC 3339 string or epoch milliseconds, got {type(value).__name__}")


def _parse_rfc3339(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"ts {text[:40]!r} is not an RFC 3339 timestamp") from None
    if dt.tzinfo is None:
        raise PayloadError(f"ts {text[:40]!r} has no timezone offset")
    return dt.timestamp()


def _validate_ts(value: object) -> float:
    try:
        return parse_timestamp(value)
    except PayloadError as exc:
        raise ValueError(exc.reason) from None


Timestamp = Annotated[
    float,
    BeforeValidator(_validate_ts),
    PlainSerializer(to_rfc3339, return_type=str, when_used="json"),
]
"""Epoch seconds inside the program; on the wire an RFC 3339 string out, RFC 3339 or epoch ms in."""
