"""Per-camera analytics settings (filled in by the analytics work; embedded in the edge config)."""

from __future__ import annotations

from qinghe.config import StrictModel


class AnalyticsConfig(StrictModel):
    """Which analytics run on a camera and how they are tuned."""
