"""Rules section of the central config: which rule files to load and how to watch them."""

from __future__ import annotations

from pydantic import Field

from qinghe.config import StrictModel


class RulesConfig(StrictModel):
    """Where the rule files are; paths are relative to the config file."""

    enabled: bool = True
    files: list[str] = Field(default_factory=list, description="YAML rule files")
    reload_interval_s: float = Field(2.0, gt=0, description="how often rule files are checked for changes")
