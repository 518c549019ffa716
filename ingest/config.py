"""Ingest settings: payload limits, timestamp tolerances, dedup, disk buffer, database retries."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from qinghe.config import SensorConfig, StrictModel


class IngestConfig(StrictModel):
    """How ingest validates readings and buffers them on their way to the time-series database."""

    enabled: bool = True
    max_payload_bytes: int = Field(16 * 1024, ge=256, le=10 * 1024 * 1024, description="larger payloads are rejected")
    max_future_skew_s: float = Field(300.0, ge=0, description="readings further in the future are rejected")
    max_age_s: float = Field(30 * 86400.0, gt=0, description="readings older than this are rejected as stale")
    buffer_path: str = Field("ingest-buffer.db", description="disk buffer, relative to state_dir")
    buffer_sync: Literal["normal", "full"] = Field(
        "normal", description="normal: survives a process crash; full: fsync every commit, survives power loss"
    )
    buffer_max_rows: int = Field(
        5_000_000, ge=1000, description="when the buffer holds this many rows ingest stops acknowledging (backpressure)"
    )
    deadletter_path: str = Field("ingest-deadletters.db", description="dead-letter outbox, relative to state_dir")
    mqtt_protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1",
        description="3.1.1: paho receives it ~1.5x cheaper; the broker's max_inflight_messages bounds the window. "
        "5: session expiry and our own receive_maximum",
    )
    receive_maximum: int = Field(
        2000, ge=1, le=65535, description="MQTT 5 Receive Maximum: unacknowledged messages the broker may send us"
    )
    commit_max_batch: int = Field(5000, ge=1, le=100_000, description="most messages committed in one transaction")
    retry_min_s: float = Field(0.5, gt=0, description="first back-off after a failed database write")
    retry_max_s: float = Field(30.0, gt=0, description="longest back-off between database write attempts")
    registry_files: list[str] = Field(
        default_factory=list,
        description="extra sensor registries (YAML files with a `sensors:` list), relative to the config file",
    )

    @model_validator(mode="after")
    def _check_retry(self) -> IngestConfig:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError(f"retry_max_s ({self.retry_max_s}) must be >= retry_min_s ({self.retry_min_s})")
        return self


class RegistryFile(StrictModel):
    """A sensor registry file named in `ingest.registry_files` (e.g. written by `simulate --write-registry`)."""

    sensors: list[SensorConfig] = Field(default_factory=list)
