"""JSON encoding and decoding of contract messages at the process boundary (validated, versioned)."""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from qinghe.contracts import WIRE_VERSION, DeadLetter
from qinghe.errors import PayloadError

T = TypeVar("T")

MAX_PAYLOAD_BYTES = 256 * 1024


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


def encode(message: object) -> bytes:
    """Serialise a contract dataclass to compact UTF-8 JSON (timestamps as RFC 3339)."""
    return _adapter(type(message)).dump_json(message, exclude_none=False)


def decode(cls: type[T], payload: bytes | str) -> T:
    """Parse and validate JSON into `cls`; raise PayloadError with a readable reason.

    Payloads from a newer major wire version than this program knows are rejected, not guessed at.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES} byte limit")
    try:
        value: T = _adapter(cls).validate_json(payload)
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from None
    version = getattr(value, "v", WIRE_VERSION)
    if version != WIRE_VERSION:
        raise PayloadError(f"unsupported wire version v={version}; this program speaks v={WIRE_VERSION}")
    return value


def to_jsonable(message: object) -> Any:
    """The JSON-compatible Python form of a contract dataclass (dicts, lists, strings)."""
    return _adapter(type(message)).dump_python(message, mode="json")


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each failing field: `field.path: message`."""
    parts = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in error["loc"]) or "payload"
        if error["type"] == "json_invalid":
            parts.append(f"malformed JSON: {error['msg']}")
        else:
            parts.append(f"{loc}: {error['msg']}")
    return "; ".join(parts)


def payload_text(payload: bytes) -> tuple[str, str]:
    """The payload as text if it is UTF-8, else base64; returns (text, encoding)."""
    try:
        return payload.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), "base64"


def dead_letter(topic: str, payload: bytes, reason: str, ts: float, stage: str) -> DeadLetter:
    """Build a dead letter that carries the original payload verbatim (text or base64)."""
    text, encoding = payload_text(payload)
    return DeadLetter(topic=topic, payload=text, reason=reason, ts=ts, stage=stage, encoding=encoding)
