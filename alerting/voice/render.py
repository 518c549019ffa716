"""espeak-ng rendering of spoken text to WAV (voice cmn-latn-pinyin), and WAV inspection."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path

from qinghe.errors import QingheError

log = logging.getLogger(__name__)


class SpeechError(QingheError):
    """espeak-ng is missing or failed to render."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    """Format and length of a WAV file."""

    channels: int
    sample_width: int
    rate: int
    frames: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate if self.rate else 0.0


def wav_info(path: Path | str) -> WavInfo:
    """Read a WAV header; raise SpeechError if it is not a WAV file."""
    try:
        with wave.open(str(path), "rb") as wav:
            return WavInfo(wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise SpeechError(f"{path} is not a readable WAV file: {exc}") from None


def resample_wav(data: bytes, rate: int) -> bytes:
    """Mono 16-bit WAV bytes resampled to `rate` Hz (windowed-sinc low-pass, then linear interpolation).

    Used to keep audio sent inside MQTT payloads small: speech at 8 kHz is telephone quality.
    """
    import io

    import numpy as np

    with wave.open(io.BytesIO(data), "rb") as src:
        if src.getnchannels() != 1 or src.getsampwidth() != 2:
            raise SpeechError("resample_wav handles mono 16-bit WAV only")
        source_rate = src.getframerate()
        samples = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2").astype(np.float64)
    if rate < source_rate:
        cutoff = 0.45 * rate / source_rate  # cycles per source sample, a little under the new Nyquist
        taps = np.arange(-32, 33)
        kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
        samples = np.convolve(samples, kernel / kernel.sum(), mode="same")
    duration = len(samples) / source_rate
    times = np.arange(int(duration * rate)) / rate
    out = np.interp(times, np.arange(len(samples)) / source_rate, samples)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as dst:
        dst.setnchannels(1)
        dst.setsampwidth(2)
        dst.setframerate(rate)
        dst.writeframes(np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes())
    return buffer.getvalue()


class EspeakRenderer:
    """Renders text with `espeak-ng -v VOICE -w FILE`, the text passed on stdin (never as an argument)."""

    def __init__(self, voice: str = "cmn-latn-pinyin", binary: str = "espeak-ng", timeout_s: float = 20.0) -> None:
        self.voice = voice
        self.binary = binary
        self.timeout_s = timeout_s

    def available(self) -> bool:
        """Is the espeak-ng binary installed?"""
        return shutil.which(self.binary) is not None

    def render(self, text: str, out_path: Path | str) -> Path:
        """Write `text` as a WAV file at `out_path` (atomically); returns the path."""
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        command = [self.binary, "-v", self.voice, "-w", str(tmp), "--stdin"]
        try:
            proc = subprocess.run(
                command, input=text.encode("utf-8"), capture_output=True, timeout=self.timeout_s, check=False
            )
        except FileNotFoundError:
            raise SpeechError(f"{self.binary} is not installed (apt-get install espeak-ng)") from None
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise SpeechError(f"{self.binary} took longer than {self.timeout_s} s") from None
        if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size <= 44:
            tmp.unlink(missing_ok=True)
            detail = proc.stderr.decode("utf-8", "replace").strip()[:200]
            raise SpeechError(f"{self.binary} failed (exit {proc.returncode}): {detail or 'no audio written'}")
        tmp.replace(out)
        log.debug("rendered %d characters to %s", len(text), out)
        return out

    def render_bytes(self, text: str, scratch_dir: Path) -> bytes:
        """Render to a scratch file and return the WAV bytes."""
        path = self.render(text, scratch_dir / f"render-{uuid.uuid4().hex}.wav")
        try:
            return path.read_bytes()
        finally:
            path.unlink(missing_ok=True)
