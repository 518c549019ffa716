"""Voice warnings: the desk (quiet hours, rate limit, acks, retries, expiry), espeak-ng output, adapters."""

from __future__ import annotations

import base64
import io
import json
import urllib.parse
import wave
from pathlib import Path

import pytest

from alerting.config import SpeakersConfig
from alerting.model import VoiceStatus
from alerting.voice.desk import Delivery, DeliveryStatus, VoiceDesk
from alerting.voice.render import EspeakRenderer, SpeechError, wav_info
from alerting.voice.speakers import HttpSpeaker, LocalAudioSpeaker, MqttSpeaker, VoiceWorker
from qinghe.codec import decode
from qinghe.contracts import VoiceWarning, WarningReceipt, WarningStatus
from qinghe.localservers import free_port
from qinghe.outbox import OutboxEntry
from qinghe.topics import Topics
from tests.alerting.conftest import HttpSink
from tests.alerting.helpers import Harness
from tests.alerting.test_parking import CAMERAS, warning

T0 = 1_800_000_000.0  # 16:00 in Asia/Shanghai
TEXT = "浙 A 一二三四五，此处禁止停车，请立即驶离"


def desk(**config: object) -> VoiceDesk:
    from zoneinfo import ZoneInfo

    return VoiceDesk(SpeakersConfig.model_validate(config), ZoneInfo("Asia/Shanghai"))


def request(d: VoiceDesk, n: int, now: float = T0, speaker: str = "spk1", expires_s: float = 120.0) -> VoiceStatus:
    task, _event = d.request(
        warning_id=f"w{n}", incident_id="i1", speaker_id=speaker, text=TEXT, repeat=1, expires_s=expires_s, now=now
    )
    return task.status


# ----- desk ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("window", "offset_h", "quiet"),
    [
        (("15:00", "17:00"), 0, True),
        (("17:00", "18:00"), 0, False),
        (("22:00", "07:00"), 7.5, True),  # 23:30
        (("22:00", "07:00"), 14, True),  # 06:00 next day
        (("22:00", "07:00"), 16, False),  # 08:00 next day
    ],
)
def test_quiet_hours(window: tuple[str, str], offset_h: float, quiet: bool) -> None:
    d = desk(quiet_hours={"start": window[0], "end": window[1]})
    status = request(d, 1, T0 + offset_h * 3600)
    assert (status is VoiceStatus.SUPPRESSED) is quiet
    if quiet:
        assert "quiet hours" in d.tasks["w1"].detail


def test_rate_limit_per_speaker() -> None:
    d = desk(defaults={"rate_limit": {"max": 2, "per_s": 60}})
    assert [request(d, i) for i in range(3)] == [VoiceStatus.SENDING, VoiceStatus.SENDING, VoiceStatus.SUPPRESSED]
    assert request(d, 3, speaker="spk2") is VoiceStatus.SENDING  # another speaker has its own budget
    assert request(d, 4, now=T0 + 61) is VoiceStatus.SENDING


def test_unacknowledged_warning_is_retried_then_failed() -> None:
    d = desk(defaults={"ack_timeout_s": 10, "retries": 2})
    request(d, 1)
    assert d.delivered("w1", Delivery(DeliveryStatus.AWAITING_RECEIPT), T0)[0].action == "voice_sent"
    assert d.tick(T0 + 9.9) == ([], [])
    events, dispatch = d.tick(T0 + 10)
    assert [e.action for e in events] == ["voice_retry"]
    assert [t.attempts for t in dispatch] == [2]
    d.delivered("w1", Delivery(DeliveryStatus.AWAITING_RECEIPT), T0 + 10)
    d.tick(T0 + 20)
    d.delivered("w1", Delivery(DeliveryStatus.AWAITING_RECEIPT), T0 + 20)
    events, dispatch = d.tick(T0 + 30)
    assert ([e.action for e in events], dispatch) == (["voice_failed"], [])
    assert "3 attempts" in events[0].note
    assert d.tasks["w1"].status is VoiceStatus.FAILED


def test_receipts_played_failed_wrong_speaker_and_duplicates() -> None:
    d = desk(defaults={"retries": 1})
    request(d, 1)
    d.delivered("w1", Delivery(DeliveryStatus.AWAITING_RECEIPT), T0)
    assert d.receipt("spk9", WarningReceipt("w1", WarningStatus.PLAYED, T0), T0) == ([], [])
    events, dispatch = d.receipt("spk1", WarningReceipt("w1", WarningStatus.FAILED, T0), T0 + 1)
    assert ([e.action for e in events], len(dispatch)) == (["voice_retry"], 1)
    d.delivered("w1", Delivery(DeliveryStatus.AWAITING_RECEIPT), T0 + 1)
    events, _ = d.receipt("spk1", WarningReceipt("w1", WarningStatus.PLAYED, T0), T0 + 2)
    assert [e.action for e in events] == ["voice_played"]
    assert d.receipt("spk1", WarningReceipt("w1", WarningStatus.PLAYED, T0), T0 + 3) == ([], [])


def test_warning_expires_instead_of_retrying_late() -> None:
    d = desk(defaults={"ack_timeout_s": 30, "retries": 5})
    request(d, 1, expires_s=20)
    d.delivered("w1", Delivery(DeliveryStatus.AWAITING_RECEIPT), T0)
    events, dispatch = d.tick(T0 + 30)
    assert ([e.action for e in events], dispatch) == (["voice_expired"], [])


def test_finished_warnings_are_evicted_after_retention() -> None:
    d = desk(retention_s=3600)
    request(d, 1)
    d.delivered("w1", Delivery(DeliveryStatus.PLAYED, "ok"), T0)
    request(d, 2)  # still in flight: kept
    assert d.evict(T0 + 3599) == []
    assert d.evict(T0 + 3600) == ["w1"]
    assert set(d.tasks) == {"w2"}


def test_failed_warning_is_recorded_in_the_incident_history(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"speakers": {"defaults": {"ack_timeout_s": 5, "retries": 1}}}, cameras=CAMERAS)
    h.send(warning())
    incident_id = h.only().id
    h.delivered(f"{incident_id}.w1", Delivery(DeliveryStatus.AWAITING_RECEIPT))
    h.advance(5)
    h.delivered(f"{incident_id}.w1", Delivery(DeliveryStatus.AWAITING_RECEIPT))
    h.advance(5)
    actions = [e.action for e in h.only().incident.history]
    assert actions[2:] == ["voice_requested", "voice_sent", "voice_retry", "voice_sent", "voice_failed"]
    assert h.store.load().voice[f"{incident_id}.w1"].status is VoiceStatus.FAILED


# ----- espeak-ng ---------------------------------------------------------------------------------------
def test_espeak_renders_a_mono_wav_of_plausible_length(tmp_path: Path) -> None:
    renderer = EspeakRenderer()
    short = wav_info(renderer.render("请驶离", tmp_path / "short.wav"))
    long = wav_info(renderer.render(TEXT, tmp_path / "long.wav"))
    assert (tmp_path / "long.wav").read_bytes()[:4] == b"RIFF"
    assert (tmp_path / "long.wav").read_bytes()[8:12] == b"WAVE"
    assert (long.channels, long.sample_width) == (1, 2)
    assert long.rate in (16000, 22050, 24000)
    assert 2.0 < long.duration_s < 12.0  # 17 syllables at a speaking pace
    assert 0.3 < short.duration_s < long.duration_s / 2


def test_espeak_speaks_normalised_numbers_that_it_would_drop(tmp_path: Path) -> None:
    renderer = EspeakRenderer()
    raw = wav_info(renderer.render("-3.5", tmp_path / "raw.wav")).duration_s
    spoken = wav_info(renderer.render("负三点五", tmp_path / "spoken.wav")).duration_s
    assert spoken > raw + 0.3  # the minus and the point are really spoken


def test_missing_espeak_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpeechError, match="not installed"):
        EspeakRenderer(binary="espeak-ng-missing").render("x", tmp_path / "x.wav")


# ----- adapters -----------------------------------------------------------------------------------------
def _warning(speaker: str = "spk1") -> VoiceWarning:
    return VoiceWarning("i1.w1", speaker, TEXT, "i1", 2, T0 + 120)


def test_http_speaker_posts_a_wav_with_headers(http_sink: HttpSink, tmp_path: Path) -> None:
    http_sink.replies.append((200, json.dumps({"status": "played"}).encode()))
    speaker = HttpSpeaker(f"{http_sink.url}/play", EspeakRenderer(), tmp_path)
    result = speaker.deliver(_warning())
    assert result.status is DeliveryStatus.PLAYED
    (req,) = http_sink.wait(1)
    assert req.path == "/play"
    assert req.headers["Content-Type"] == "audio/wav"
    assert req.headers["X-Qinghe-Warning-Id"] == "i1.w1"
    assert urllib.parse.unquote(req.headers["X-Qinghe-Text"]) == TEXT
    with wave.open(io.BytesIO(req.body)) as wav:
        assert wav.getnchannels() == 1
        assert wav.getnframes() / wav.getframerate() > 2.0
    assert list(tmp_path.iterdir()) == []  # scratch files cleaned up


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [(500, b"", True), (404, b"", False), (200, b'{"status": "failed"}', True), (200, b'{"status": "expired"}', False)],
)
def test_http_speaker_failures(http_sink: HttpSink, tmp_path: Path, status: int, body: bytes, retryable: bool) -> None:
    http_sink.replies.append((status, body))
    result = HttpSpeaker(http_sink.url, EspeakRenderer(), tmp_path).deliver(_warning())
    assert (result.status, result.retryable) == (DeliveryStatus.FAILED, retryable)


def test_http_speaker_down_is_retryable(tmp_path: Path) -> None:
    result = HttpSpeaker(f"http://127.0.0.1:{free_port()}/", EspeakRenderer(), tmp_path, timeout_s=2).deliver(
        _warning()
    )
    assert (result.status, result.retryable) == (DeliveryStatus.FAILED, True)


def test_local_audio_writes_the_wav_and_reports_its_path(tmp_path: Path) -> None:
    written: list[Path] = []
    speaker = LocalAudioSpeaker(tmp_path / "voice", EspeakRenderer(), lambda path, _w: written.append(path))
    result = speaker.deliver(_warning())
    path = tmp_path / "voice" / "i1.w1.wav"
    assert written == [path]
    assert str(path) in result.detail
    assert wav_info(path).duration_s > 2.0
    assert path.with_suffix(".txt").read_text(encoding="utf-8").strip() == TEXT


def test_mqtt_speaker_publishes_say_with_optional_audio(tmp_path: Path) -> None:
    sent: list[OutboxEntry] = []
    speaker = MqttSpeaker(sent.extend, Topics("qh"), EspeakRenderer(), tmp_path, audio_speakers=frozenset({"spk2"}))
    assert speaker.deliver(_warning("spk1")).status is DeliveryStatus.AWAITING_RECEIPT
    speaker.deliver(_warning("spk2"))
    assert [e.topic for e in sent] == ["qh/v1/warden/spk1/say", "qh/v1/warden/spk2/say"]
    plain, with_audio = (decode(VoiceWarning, e.payload) for e in sent)
    assert (plain.text, plain.audio) == (TEXT, None)
    assert with_audio.audio is not None
    with wave.open(io.BytesIO(base64.b64decode(with_audio.audio))) as wav:
        assert wav.getframerate() == 8000
        assert 2.0 < wav.getnframes() / 8000 < 12.0


def test_resampled_audio_keeps_its_duration(tmp_path: Path) -> None:
    from alerting.voice.render import resample_wav

    original = EspeakRenderer().render_bytes(TEXT, tmp_path)
    small = resample_wav(original, 8000)
    with wave.open(io.BytesIO(original)) as a, wave.open(io.BytesIO(small)) as b:
        assert abs(a.getnframes() / a.getframerate() - b.getnframes() / b.getframerate()) < 0.01
        assert len(small) < len(original) / 2.5


def test_voice_worker_maps_missing_and_broken_adapters_to_failures() -> None:
    class Broken:
        def deliver(self, warning: VoiceWarning) -> Delivery:
            raise RuntimeError("boom")

    results: list[tuple[str, Delivery]] = []
    worker = VoiceWorker(
        {"broken": Broken()}, lambda s: "broken" if s == "spk1" else "nope", lambda w, d: results.append((w, d))
    )
    assert worker.deliver(_warning("spk1")).retryable is True
    missing = worker.deliver(_warning("spk2"))
    assert (missing.status, missing.retryable) == (DeliveryStatus.FAILED, False)


def test_rate_limit_state_is_evicted_and_rebuilt_after_a_restart() -> None:
    d = desk(defaults={"rate_limit": {"max": 2, "per_s": 60}})
    request(d, 1)
    request(d, 2)
    assert d.rate_state() == {"spk1": 2}
    restarted = desk(defaults={"rate_limit": {"max": 2, "per_s": 60}})
    restarted = VoiceDesk(restarted.config, restarted.tz, dict(d.tasks))
    assert request(restarted, 3, now=T0 + 30) is VoiceStatus.SUPPRESSED  # the budget survived the restart
    assert request(restarted, 4, now=T0 + 61) is VoiceStatus.SENDING
    assert restarted.rate_state() == {"spk1": 1}
    request(restarted, 5, now=T0 + 200, speaker="spk2")
    request(restarted, 6, now=T0 + 300)  # spk1's old entry is dropped when it is next checked
    assert restarted.rate_state() == {"spk1": 1, "spk2": 1}
