"""Voice warning bookkeeping (pure): quiet hours, rate limits, acknowledgements, retries, expiry."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from alerting.config import SpeakersConfig
from alerting.model import VoiceStatus, VoiceTask
from qinghe.contracts import WarningReceipt, WarningStatus


class DeliveryStatus(StrEnum):
    """What a speaker adapter reports after handing a warning over."""

    AWAITING_RECEIPT = "awaiting_receipt"  # sent; the speaker will answer on warden/{id}/said
    PLAYED = "played"  # the adapter knows it was played (local audio, HTTP speaker that answered)
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """An adapter's answer: status, a detail for the history (a WAV path, an HTTP status), retryable or not."""

    status: DeliveryStatus
    detail: str = ""
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class VoiceEvent:
    """Something to record in an incident's history."""

    incident_id: str
    warning_id: str
    action: str  # voice_requested, voice_sent, voice_played, voice_retry, voice_failed, voice_expired, ...
    note: str


class VoiceDesk:
    """Holds every voice warning until it is played, failed, expired or suppressed, then for `retention_s`."""

    def __init__(self, config: SpeakersConfig, tz: ZoneInfo, tasks: dict[str, VoiceTask] | None = None) -> None:
        self.config = config
        self.tz = tz
        self.tasks: dict[str, VoiceTask] = tasks if tasks is not None else {}
        self._recent: dict[str, deque[float]] = {}  # speaker -> creation times of warnings sent (rate limit)
        self._awaiting: set[str] = set()  # warnings waiting for a receipt (checked on every tick)
        for task in sorted(self.tasks.values(), key=lambda t: t.created_at):
            if task.status is not VoiceStatus.SUPPRESSED:
                self._recent.setdefault(task.speaker_id, deque()).append(task.created_at)
            if task.status is VoiceStatus.AWAITING:
                self._awaiting.add(task.warning_id)

    def request(
        self,
        *,
        warning_id: str,
        incident_id: str,
        speaker_id: str,
        text: str,
        repeat: int,
        expires_s: float,
        now: float,
    ) -> tuple[VoiceTask, VoiceEvent]:
        """A new warning: suppressed (quiet hours, rate limit) or ready to dispatch (status SENDING)."""
        device = self.config.device(speaker_id)
        defaults = self.config.defaults
        task = VoiceTask(
            warning_id=warning_id,
            incident_id=incident_id,
            speaker_id=speaker_id,
            adapter=self.config.adapter_of(speaker_id),
            text=text,
            repeat=max(1, repeat),
            created_at=now,
            expires_at=now + expires_s,
            max_attempts=1 + (device.retries if device.retries is not None else defaults.retries),
            ack_timeout_s=device.ack_timeout_s or defaults.ack_timeout_s,
            attempts=1,
        )
        reason = self._suppression(speaker_id, now)
        if reason is not None:
            task.status, task.finished_at, task.detail, task.attempts = VoiceStatus.SUPPRESSED, now, reason, 0
            self.tasks[warning_id] = task
            return task, VoiceEvent(incident_id, warning_id, "voice_suppressed", f"{speaker_id}: {reason}")
        self.tasks[warning_id] = task
        self._recent.setdefault(speaker_id, deque()).append(now)
        note = f"to {speaker_id} via {task.adapter}: {text}"
        return task, VoiceEvent(incident_id, warning_id, "voice_requested", note)

    def _suppression(self, speaker_id: str, now: float) -> str | None:
        quiet = self.config.quiet_hours
        if quiet is not None and quiet.contains(datetime.fromtimestamp(now, self.tz)):
            return f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M}"
        limit = self.config.device(speaker_id).rate_limit or self.config.defaults.rate_limit
        recent = self._recent.get(speaker_id)
        while recent and now - recent[0] >= limit.per_s:
            recent.popleft()
        if recent is not None and not recent:
            del self._recent[speaker_id]  # evicted: nothing sent in the window
        elif recent is not None and len(recent) >= limit.max:
            return f"rate limit {limit.max} per {limit.per_s:g} s"
        return None

    def delivered(self, warning_id: str, delivery: Delivery, now: float) -> list[VoiceEvent]:
        """The adapter's answer for the current attempt."""
        task = self.tasks.get(warning_id)
        if task is None or task.status is not VoiceStatus.SENDING:
            return []
        ev = VoiceEvent(task.incident_id, warning_id, "", "")
        attempt = f"attempt {task.attempts}/{task.max_attempts}"
        if delivery.status is DeliveryStatus.PLAYED:
            self._finish(task, VoiceStatus.PLAYED, now, delivery.detail)
            return [replace(ev, action="voice_played", note=f"{task.speaker_id}: {delivery.detail or 'played'}")]
        if delivery.status is DeliveryStatus.AWAITING_RECEIPT:
            task.status, task.sent_at = VoiceStatus.AWAITING, now
            self._awaiting.add(warning_id)
            return [replace(ev, action="voice_sent", note=f"{task.speaker_id}, {attempt}")]
        if not delivery.retryable:
            self._finish(task, VoiceStatus.FAILED, now, delivery.detail)
            return [replace(ev, action="voice_failed", note=f"{task.speaker_id}: {delivery.detail} ({attempt})")]
        task.status, task.sent_at, task.detail = VoiceStatus.AWAITING, now, delivery.detail  # retried on timeout
        self._awaiting.add(warning_id)
        return [replace(ev, action="voice_send_error", note=f"{task.speaker_id}: {delivery.detail} ({attempt})")]

    def receipt(self, speaker_id: str, receipt: WarningReceipt, now: float) -> tuple[list[VoiceEvent], list[VoiceTask]]:
        """A `warden/{id}/said` acknowledgement; returns history events and tasks to dispatch again."""
        task = self.tasks.get(receipt.warning_id)
        if task is None or task.speaker_id != speaker_id or task.finished:
            return [], []
        ev = VoiceEvent(task.incident_id, task.warning_id, "", "")
        if receipt.status is WarningStatus.PLAYED:
            self._finish(task, VoiceStatus.PLAYED, now, "acknowledged by the speaker")
            return [replace(ev, action="voice_played", note=f"{speaker_id} acknowledged")], []
        if receipt.status is WarningStatus.EXPIRED:
            self._finish(task, VoiceStatus.EXPIRED, now, "the speaker reported it expired")
            return [replace(ev, action="voice_expired", note=f"{speaker_id} reported it expired")], []
        return self._retry_or_fail(task, now, f"{speaker_id} reported failure")

    def tick(self, now: float) -> tuple[list[VoiceEvent], list[VoiceTask]]:
        """Retry or fail warnings whose acknowledgement is late; forget finished ones after retention."""
        events: list[VoiceEvent] = []
        dispatch: list[VoiceTask] = []
        for warning_id in sorted(self._awaiting):
            task = self.tasks[warning_id]
            if now >= (task.sent_at or now) + task.ack_timeout_s:
                more_events, more_dispatch = self._retry_or_fail(task, now, "no acknowledgement in time")
                events += more_events
                dispatch += more_dispatch
        return events, dispatch

    def evict(self, now: float) -> list[str]:
        """Forget finished warnings older than the retention; returns their ids."""
        old = [
            t.warning_id
            for t in self.tasks.values()
            if t.finished and now - (t.finished_at or t.created_at) >= self.config.retention_s
        ]
        for warning_id in old:
            del self.tasks[warning_id]
        return old

    def _retry_or_fail(self, task: VoiceTask, now: float, why: str) -> tuple[list[VoiceEvent], list[VoiceTask]]:
        ev = VoiceEvent(task.incident_id, task.warning_id, "", "")
        if now >= task.expires_at:
            self._finish(task, VoiceStatus.EXPIRED, now, why)
            return [replace(ev, action="voice_expired", note=f"{task.speaker_id}: {why}; warning expired")], []
        if task.attempts >= task.max_attempts:
            self._finish(task, VoiceStatus.FAILED, now, why)
            note = f"{task.speaker_id}: {why} after {task.attempts} attempts"
            return [replace(ev, action="voice_failed", note=note)], []
        task.attempts += 1
        task.status, task.sent_at = VoiceStatus.SENDING, None
        self._awaiting.discard(task.warning_id)
        note = f"{task.speaker_id}: {why}; attempt {task.attempts}/{task.max_attempts}"
        return [replace(ev, action="voice_retry", note=note)], [task]

    def _finish(self, task: VoiceTask, status: VoiceStatus, now: float, detail: str) -> None:
        task.status, task.finished_at, task.detail = status, now, detail
        self._awaiting.discard(task.warning_id)

    def rate_state(self) -> dict[str, int]:
        """Warnings counted against each speaker's rate limit (for tests and diagnostics)."""
        return {speaker: len(times) for speaker, times in self._recent.items()}
