"""One exception hierarchy for the whole project; third-party errors are mapped at the boundary."""

from __future__ import annotations


class QingheError(Exception):
    """Base of every error this project raises on purpose."""


class PayloadError(QingheError):
    """A wire payload could not be decoded or failed validation; `reason` is safe to publish."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableError(QingheError):
    """A transient failure (broker, database, camera down): retry later, keep the data."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(QingheError):
    """A failure that retrying cannot fix (rejected by the server, bad request)."""
