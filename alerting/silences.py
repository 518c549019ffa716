"""Runtime silences: the wire command on `{prefix}/v1/alerting/silence/cmd` and the retained list of silences."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alerting.config import MATCH_KEYS
from alerting.model import Silence
from qinghe.codec import describe_validation_error
from qinghe.errors import PayloadError
from qinghe.timefmt import Timestamp, to_rfc3339


class SilenceCommand(BaseModel):
    """`{"action": "add", "matchers": {"zone": "Z1"}, "duration_s": 7200, "reason": "...", "by": "..."}`
    or `{"action": "expire", "id": "..."}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["add", "expire"]
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    matchers: dict[str, str] = Field(default_factory=dict)
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    duration_s: float | None = Field(None, gt=0)
    reason: str = ""
    by: str = ""

    @field_validator("matchers")
    @classmethod
    def _keys(cls, matchers: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(matchers) - set(MATCH_KEYS))
        if unknown:
            raise ValueError(f"unknown matcher key(s) {unknown}; expected some of {list(MATCH_KEYS)}")
        return matchers


def parse_command(payload: bytes) -> SilenceCommand:
    """Decode a silence command; raise PayloadError with a readable reason."""
    try:
        return SilenceCommand.model_validate_json(payload)
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from None


def to_silence(command: SilenceCommand, now: float) -> Silence:
    """The silence an `add` command asks for; raise PayloadError if it is incomplete."""
    if not command.matchers:
        raise PayloadError("matchers: at least one matcher is required")
    if not command.reason.strip() or not command.by.strip():
        raise PayloadError("reason and by are required: a silence must say why and who")
    starts = command.starts_at if command.starts_at is not None else now
    if command.ends_at is not None:
        ends = command.ends_at
    elif command.duration_s is not None:
        ends = starts + command.duration_s
    else:
        raise PayloadError("give ends_at or duration_s: every silence expires")
    if ends <= starts:
        raise PayloadError("ends_at must be after starts_at")
    return Silence(
        id=command.id or f"sil-{uuid.uuid4().hex[:10]}",
        matchers=dict(command.matchers),
        starts_at=starts,
        ends_at=ends,
        reason=command.reason,
        created_by=command.by,
    )


def silences_document(silences: Iterable[Silence], now: float) -> bytes:
    """The retained list of silences not yet expired."""
    items = [
        {
            "id": s.id,
            "matchers": s.matchers,
            "starts_at": to_rfc3339(s.starts_at),
            "ends_at": to_rfc3339(s.ends_at),
            "reason": s.reason,
            "created_by": s.created_by,
            "origin": s.origin,
        }
        for s in sorted(silences, key=lambda s: s.ends_at)
        if s.ends_at > now
    ]
    return json.dumps({"silences": items, "ts": to_rfc3339(now), "v": 1}, ensure_ascii=False).encode()
