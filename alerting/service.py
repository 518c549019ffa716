"""The alerting service: wires the pure core to MQTT, the SQLite store, the outbox, speakers and webhooks."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from alerting.core import AlertingCore
from alerting.emit import Changes
from alerting.model import VoiceStatus, VoiceTask
from alerting.publisher import StorePublisher
from alerting.silences import parse_command, silences_document, to_silence
from alerting.store import AlertingStore
from alerting.voice.desk import Delivery
from alerting.voice.render import EspeakRenderer
from alerting.voice.speakers import HttpSpeaker, LocalAudioSpeaker, MqttSpeaker, SpeakerAdapter, VoiceWorker
from alerting.webhook import WebhookWorker
from qinghe.bus import Availability, InboundMessage, MqttBus
from qinghe.central_config import CentralConfig
from qinghe.clock import Clock
from qinghe.codec import dead_letter, decode, encode
from qinghe.contracts import CameraStatus, IncidentCommand, RuleSignal, VoiceWarning, WarningReceipt
from qinghe.errors import PayloadError, RetryableError
from qinghe.outbox import OutboxEntry
from qinghe.topics import Topics

log = logging.getLogger(__name__)

STAGE = "alerting"
PURGE_EVERY_S = 3600.0


class AlertingService:
    """Incidents, clocks, escalation, voice warnings and webhooks for one central site."""

    def __init__(
        self,
        config: CentralConfig,
        config_dir: Path,
        clock: Clock,
        subscribe_signals: bool = False,
        *,
        speakers: Mapping[str, SpeakerAdapter] | None = None,
        on_voice_file: Callable[[Path, VoiceWarning], None] | None = None,
    ) -> None:
        self.config = config
        self.settings = config.alerting
        self.clock = clock
        self.topics = Topics(config.broker.topic_prefix)
        state_dir = config.resolve(config_dir, config.state_dir)
        self.store = AlertingStore(state_dir / self.settings.state_file)
        self.core = AlertingCore(self.settings, self.topics, config.camera_map(), self.store.load())
        self.service_name = f"{config.service_id}-alerting"
        availability = Availability(self.topics.build("service_availability", service=self.service_name))
        self.bus = MqttBus(config.broker, self.service_name, availability=availability, manual_ack=True)
        self.outbox = StorePublisher(self.store, self.bus)
        self.renderer = EspeakRenderer(self.settings.speakers.voice, self.settings.speakers.espeak_binary)
        self.voice_dir = config.resolve(config_dir, self.settings.speakers.local_audio_dir)
        adapters = dict(speakers) if speakers is not None else self._adapters(state_dir, on_voice_file)
        self.voice = VoiceWorker(adapters, self._adapter_key, self._on_delivered)
        self.webhooks = WebhookWorker(self.settings.webhooks, self.store, clock, self.topics)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._purge_at = 0.0
        self._subscribe(subscribe_signals)

    # ----- wiring ------------------------------------------------------------------------------------
    def _adapters(
        self, state_dir: Path, on_voice_file: Callable[[Path, VoiceWarning], None] | None
    ) -> dict[str, SpeakerAdapter]:
        speakers = self.settings.speakers
        scratch = state_dir / "voice-scratch"
        audio = frozenset(d.id for d in speakers.devices if d.audio)
        adapters: dict[str, SpeakerAdapter] = {
            "mqtt": MqttSpeaker(self._publish, self.topics, self.renderer, scratch, audio),
            "local_audio": LocalAudioSpeaker(self.voice_dir, self.renderer, on_voice_file),
        }
        for device in speakers.devices:
            if device.adapter == "http" and device.url:
                adapters[f"http:{device.id}"] = HttpSpeaker(device.url, self.renderer, scratch)
        return adapters

    def _publish(self, entries: list[OutboxEntry]) -> None:
        self.store.put_outbox(entries)
        self.outbox.pump()

    def _adapter_key(self, speaker_id: str) -> str:
        name = self.settings.speakers.adapter_of(speaker_id)
        return f"http:{speaker_id}" if name == "http" else name

    def _subscribe(self, subscribe_signals: bool) -> None:
        t = self.topics
        self.bus.subscribe(t.filter("incident_cmd"), self._guard(self._on_command))
        self.bus.subscribe(t.filter("warden_said"), self._guard(self._on_receipt))
        self.bus.subscribe(t.filter("camera_status"), self._guard(self._on_camera_status))
        self.bus.subscribe(f"{t.root}/alerting/silence/cmd", self._guard(self._on_silence))
        if subscribe_signals:
            self.bus.subscribe(t.filter("rule_signal"), self._guard(self._on_signal_message))

    # ----- lifecycle ---------------------------------------------------------------------------------
    def start(self, wait_s: float = 10.0) -> None:
        """Start the outbox, workers and ticker, fire what fell due while down, then connect."""
        self.outbox.start()
        self.voice.start()
        self.webhooks.start()
        self.tick()  # deadlines that passed while the service was down fire at once
        self._redispatch()
        self._ticker = threading.Thread(target=self._tick_loop, name="alerting-ticker", daemon=True)
        self._ticker.start()
        try:
            self.bus.start(wait_s=wait_s)
        except RetryableError as exc:
            log.warning("%s; buffering to the outbox and retrying in the background", exc)

    def stop(self, flush_s: float = 5.0) -> None:
        """Stop sources first, then flush the outbox and disconnect."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self.voice.stop()
        self.webhooks.stop()
        self.outbox.flush(flush_s)
        self.bus.stop()
        self.outbox.stop()
        self.store.close()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.settings.tick_interval_s):
            try:
                self.tick()
            except Exception:  # the ticker must survive; state is on disk
                log.exception("alerting tick failed")

    def _redispatch(self) -> None:
        with self._lock:
            pending = [t for t in self.core.voice.tasks.values() if t.status is VoiceStatus.SENDING]
        for task in pending:
            self.voice.submit(_warning(task))

    # ----- entry points ------------------------------------------------------------------------------
    def handle_signal(self, signal: RuleSignal) -> None:
        """Apply a rule signal; its effects are on disk (and queued for MQTT) when this returns."""
        try:
            with self._lock:
                self._commit(self.core.on_signal(signal, self.clock.now()))
        except PayloadError as exc:  # a signal we cannot publish: keep it, with the reason, and go on
            log.warning("rejected signal %s: %s", signal.signal_id, exc.reason)
            letter = dead_letter(self.topics.filter("rule_signal"), encode(signal), exc.reason, self.clock.now(), STAGE)
            with self._lock:
                self._commit(Changes(outbox=[OutboxEntry(self.topics.deadletter(STAGE), encode(letter))]))

    def command(self, incident_id: str, command: IncidentCommand) -> None:
        """Apply a responder command in-process (same path as `incident/{id}/cmd`)."""
        with self._lock:
            self._commit(self.core.on_command(incident_id, command, self.clock.now()))

    def tick(self) -> None:
        """Fire due clocks and timers now (the ticker calls this; tests with a fake clock call it too)."""
        now = self.clock.now()
        with self._lock:
            self._commit(self.core.tick(now))
            if now >= self._purge_at:
                self._purge_at = now + PURGE_EVERY_S
                horizon = now - self.settings.purge_after_s
                purged = self.store.purge(horizon, self.core.day(horizon))
                if purged:
                    log.info("purged %d archived incidents", purged)

    def _commit(self, changes: Changes) -> None:
        if changes.empty():
            return
        try:
            self.store.commit(changes, self.core.state.next_seq)
        except sqlite3.Error as exc:  # memory ran ahead of the disk: go back to what is on disk
            log.exception("could not store alerting state; reloading it from %s", self.store.path)
            self.core = AlertingCore(self.settings, self.topics, self.config.camera_map(), self.store.load())
            raise RetryableError(f"alerting state not stored: {exc}") from exc
        if changes.outbox:
            self.outbox.pump()  # hand the rows to paho now, without waiting for the pump thread
        for task in changes.dispatch:
            self.voice.submit(_warning(task))
        if changes.webhooks:
            self.webhooks.wake()

    def _on_delivered(self, warning_id: str, delivery: Delivery) -> None:
        with self._lock:
            self._commit(self.core.on_delivered(warning_id, delivery, self.clock.now()))

    # ----- MQTT handlers (paho's thread) -------------------------------------------------------------
    def _guard(self, handler: Callable[[InboundMessage], None]) -> Callable[[InboundMessage], None]:
        def run(message: InboundMessage) -> None:
            """Handle, dead-letter bad payloads, then acknowledge."""
            try:
                handler(message)
            except PayloadError as exc:
                self._dead_letter(message, exc.reason)
            self.bus.ack(message)  # only after the state (or the dead letter) is on disk

        return run

    def _dead_letter(self, message: InboundMessage, reason: str) -> None:
        log.warning("rejected message on %s: %s", message.topic, reason)
        letter = dead_letter(message.topic, message.payload, reason, self.clock.now(), STAGE)
        with self._lock:
            self._commit(Changes(outbox=[OutboxEntry(self.topics.deadletter(STAGE), encode(letter))]))

    def _on_signal_message(self, message: InboundMessage) -> None:
        self.handle_signal(decode(RuleSignal, message.payload))

    def _on_command(self, message: InboundMessage) -> None:
        incident_id = self.topics.parse(message.topic).params["incident_id"]
        self.command(incident_id, decode(IncidentCommand, message.payload))

    def _on_receipt(self, message: InboundMessage) -> None:
        speaker_id = self.topics.parse(message.topic).params["speaker_id"]
        receipt = decode(WarningReceipt, message.payload)
        with self._lock:
            self._commit(self.core.on_receipt(speaker_id, receipt, self.clock.now()))

    def _on_camera_status(self, message: InboundMessage) -> None:
        if not message.payload:
            return  # a cleared retained status
        camera_id = self.topics.parse(message.topic).params["camera_id"]
        status = decode(CameraStatus, message.payload)
        with self._lock:
            self._commit(self.core.on_camera_status(camera_id, status, self.clock.now()))

    def _on_silence(self, message: InboundMessage) -> None:
        command = parse_command(message.payload)
        now = self.clock.now()
        with self._lock:
            if command.action == "add":
                changes = self.core.add_silence(to_silence(command, now))
            elif command.id is None or command.id not in self.core.state.silences:
                raise PayloadError(f"expire: no silence with id {command.id!r}")
            else:
                changes = self.core.expire_silence(command.id, now)
            document = silences_document(self.core.state.silences.values(), now)
            changes.outbox.append(OutboxEntry(f"{self.topics.root}/alerting/silences", document, retain=True))
            self._commit(changes)


def _warning(task: VoiceTask) -> VoiceWarning:
    return VoiceWarning(
        warning_id=task.warning_id,
        speaker_id=task.speaker_id,
        text=task.text,
        incident_id=task.incident_id,
        repeat=task.repeat,
        expires_at=task.expires_at,
    )
