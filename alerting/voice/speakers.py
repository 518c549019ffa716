"""Speaker adapter port and its three adapters: MQTT (text-speaking speakers), HTTP (WAV POST), local audio."""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from alerting.voice.desk import Delivery, DeliveryStatus
from alerting.voice.render import EspeakRenderer, SpeechError, resample_wav
from qinghe.codec import MAX_PAYLOAD_BYTES, encode
from qinghe.contracts import VoiceWarning
from qinghe.outbox import OutboxEntry
from qinghe.timefmt import to_rfc3339
from qinghe.topics import Topics

log = logging.getLogger(__name__)
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MQTT_AUDIO_RATE = 8000
"""Audio inside MQTT payloads is resampled to 8 kHz mono 16-bit (about 16 kB per second of speech)."""


class SpeakerAdapter(Protocol):
    """Hands one warning to a speaker; says whether it was played, sent (receipt to follow) or failed."""

    def deliver(self, warning: VoiceWarning) -> Delivery:
        """Deliver one attempt of a warning."""
        ...


class MqttSpeaker:
    """Publishes the warning on `warden/{speaker_id}/say` through the durable outbox; the speaker answers
    on `warden/{speaker_id}/said`. With `audio=True` the WAV is rendered and sent base64 in `audio`."""

    def __init__(
        self,
        publish: Callable[[list[OutboxEntry]], None],
        topics: Topics,
        renderer: EspeakRenderer | None = None,
        scratch_dir: Path | None = None,
        audio_speakers: frozenset[str] = frozenset(),
    ) -> None:
        self.publish = publish
        self.topics = topics
        self.renderer = renderer
        self.scratch_dir = scratch_dir or Path("/tmp")
        self.audio_speakers = audio_speakers

    def deliver(self, warning: VoiceWarning) -> Delivery:
        """Queue the say command (durably); the receipt decides played or failed."""
        if warning.speaker_id in self.audio_speakers and self.renderer is not None:
            try:
                wav = resample_wav(self.renderer.render_bytes(warning.text, self.scratch_dir), MQTT_AUDIO_RATE)
            except SpeechError as exc:
                return Delivery(DeliveryStatus.FAILED, str(exc), retryable=False)
            warning = replace(warning, audio=base64.b64encode(wav).decode("ascii"))
        payload = encode(warning)
        if len(payload) > MAX_PAYLOAD_BYTES:
            why = f"say payload {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}; shorten the text or use http"
            return Delivery(DeliveryStatus.FAILED, why, retryable=False)
        self.publish([OutboxEntry(self.topics.warden_say(warning.speaker_id), payload)])
        return Delivery(DeliveryStatus.AWAITING_RECEIPT, "published")


class HttpSpeaker:
    """Renders WAV with espeak-ng and POSTs it (audio/wav) to the speaker's URL; 2xx means played
    unless the JSON reply says `{"status": "failed"|"expired"}`."""

    def __init__(self, url: str, renderer: EspeakRenderer, scratch_dir: Path, timeout_s: float = 10.0) -> None:
        self.url = url
        self.renderer = renderer
        self.scratch_dir = scratch_dir
        self.timeout_s = timeout_s

    def deliver(self, warning: VoiceWarning) -> Delivery:
        """Render and POST; 5xx and network errors are retryable, 4xx are not."""
        try:
            wav = self.renderer.render_bytes(warning.text, self.scratch_dir)
        except SpeechError as exc:
            return Delivery(DeliveryStatus.FAILED, str(exc), retryable=False)
        headers = {
            "Content-Type": "audio/wav",
            "X-Qinghe-Warning-Id": warning.warning_id,
            "X-Qinghe-Incident-Id": warning.incident_id,
            "X-Qinghe-Speaker-Id": warning.speaker_id,
            "X-Qinghe-Repeat": str(warning.repeat),
            "X-Qinghe-Expires-At": to_rfc3339(warning.expires_at),
            "X-Qinghe-Text": urllib.parse.quote(warning.text),
        }
        request = urllib.request.Request(self.url, data=wav, headers=headers, method="POST")
        try:
            with DIRECT.open(request, timeout=self.timeout_s) as response:
                body = response.read(4096)
                status = response.status
        except urllib.error.HTTPError as exc:
            return Delivery(DeliveryStatus.FAILED, f"HTTP {exc.code} from {self.url}", retryable=exc.code >= 500)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return Delivery(DeliveryStatus.FAILED, f"{self.url}: {getattr(exc, 'reason', exc)}")
        return _reply(body, status, len(wav))


def _reply(body: bytes, status: int, size: int) -> Delivery:
    try:
        reply = json.loads(body) if body.strip() else {}
    except ValueError:
        reply = {}
    said = reply.get("status", "played") if isinstance(reply, dict) else "played"
    if said == "played":
        return Delivery(DeliveryStatus.PLAYED, f"HTTP {status}, {size} byte WAV played")
    return Delivery(DeliveryStatus.FAILED, f"speaker replied {said!r}", retryable=said == "failed")


class LocalAudioSpeaker:
    """Demo adapter: writes `{dir}/{warning_id}.wav` (and the text beside it) and logs the path."""

    def __init__(
        self,
        directory: Path,
        renderer: EspeakRenderer,
        on_written: Callable[[Path, VoiceWarning], None] | None = None,
    ) -> None:
        self.directory = directory
        self.renderer = renderer
        self.on_written = on_written

    def deliver(self, warning: VoiceWarning) -> Delivery:
        """Render the WAV file; played once it is on disk."""
        name = warning.warning_id.replace("/", "_")
        try:
            path = self.renderer.render(warning.text, self.directory / f"{name}.wav")
        except SpeechError as exc:
            return Delivery(DeliveryStatus.FAILED, str(exc), retryable=False)
        path.with_suffix(".txt").write_text(warning.text + "\n", encoding="utf-8")
        log.info("voice warning %s for %s written to %s", warning.warning_id, warning.speaker_id, path)
        if self.on_written is not None:
            self.on_written(path, warning)
        return Delivery(DeliveryStatus.PLAYED, f"WAV written to {path}")


class VoiceWorker:
    """Runs speaker deliveries off the core's lock, one at a time, and reports each result."""

    def __init__(
        self,
        adapters: Mapping[str, SpeakerAdapter],
        adapter_for: Callable[[str], str],  # speaker id -> key in `adapters`
        on_result: Callable[[str, Delivery], None],
    ) -> None:
        self.adapters = dict(adapters)
        self.adapter_for = adapter_for
        self.on_result = on_result
        self._queue: queue.Queue[VoiceWarning | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, warning: VoiceWarning) -> None:
        """Queue one delivery attempt."""
        self._queue.put(warning)

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="alerting-voice", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the current delivery and stop (undelivered warnings are re-sent after restart)."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        while (warning := self._queue.get()) is not None:
            self.on_result(warning.warning_id, self.deliver(warning))

    def deliver(self, warning: VoiceWarning) -> Delivery:
        """Deliver through the speaker's adapter; an adapter bug becomes a retryable failure."""
        name = self.adapter_for(warning.speaker_id)
        adapter = self.adapters.get(name)
        if adapter is None:
            return Delivery(DeliveryStatus.FAILED, f"no {name} adapter for speaker {warning.speaker_id}", False)
        try:
            return adapter.deliver(warning)
        except Exception as exc:  # an adapter bug must not stop the voice worker
            log.exception("speaker adapter %s failed for %s", name, warning.warning_id)
            return Delivery(DeliveryStatus.FAILED, f"adapter error: {exc}")
