"""Ingest settings: payload limits, clock skew tolerance, disk buffer."""

from __future__ import annotations

from pydantic import Field

from qinghe.config import StrictModel


class IngestConfig(StrictModel):
    """How ingest validates readings and buffers them on their way to the time-series database."""

    enabled: bool = True
    max_payload_bytes: int = Field(16 * 1024, ge=256, description="larger payloads are dead-lettered")
    max_future_skew_s: float = Field(300.0, ge=0, description="readings further in the future are rejected")
    buffer_path: str = Field("ingest-buffer.db", description="disk buffer, relative to state_dir")
