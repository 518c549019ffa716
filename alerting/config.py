"""Alerting section of the central config: SLA clocks, responder tiers, speakers."""

from __future__ import annotations

from qinghe.config import StrictModel


class AlertingConfig(StrictModel):
    """Incident lifecycle settings (filled in by the alerting package)."""

    enabled: bool = True
