"""`qinghe demo` end to end, as a new user runs it: real servers, live narration, clean shutdown."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from qinghe.demo import DEFAULT_MODEL


def _run_demo(tmp_path: Path, *extra: str, timeout_s: float = 400) -> str:
    out = tmp_path / "demo-output"
    proc = subprocess.run(
        [sys.executable, "-m", "qinghe.cli", "--log-level", "WARNING", "demo", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = re.search(r"state in (\S+)", proc.stdout)
    assert state is not None, proc.stdout[:2000]
    assert not Path(state.group(1)).exists(), "the demo must remove its temporary state"
    return proc.stdout


def test_sensor_path_demo_opens_escalates_and_resolves_an_incident(tmp_path: Path) -> None:
    stdout = _run_demo(tmp_path, "--no-cameras", "--duration", "40")
    assert re.search(r"INCIDENT\s+yellow\s+opened\s+air_pollution", stdout), stdout
    assert re.search(r"INCIDENT\s+(orange|red)\s+colour_changed\s+air_pollution", stdout), stdout
    assert re.search(r"RESPONDER\s+env-duty -> ack", stdout), stdout
    assert "DEADLTR" in stdout
    stored = re.search(r"(\d+) samples stored in VictoriaMetrics", stdout)
    assert stored is not None
    assert int(stored.group(1)) > 0


def test_full_demo_shows_parking_voice_smoke_water_and_a_missed_clock(tmp_path: Path) -> None:
    assert DEFAULT_MODEL.is_file(), "the trained detector is part of the repository"
    stdout = _run_demo(tmp_path, "--duration", "75", "--clip-cache", str(tmp_path / "clips"))
    out = tmp_path / "demo-output"
    assert re.search(r"CAMERA\s+cam-gate-a\s+illegal_parking\s+update\s+warning", stdout), stdout
    assert re.search(r"illegal_parking\s+inc-\S+\s+.*\[complied\]", stdout), stdout
    assert re.search(r"CAMERA\s+cam-tower-03\s+smoke_fire", stdout), stdout
    assert re.search(r"CAMERA\s+cam-underpass\s+standing_water", stdout), stdout
    assert re.search(r"sla_breached\s+fire\s+inc-\S+\s+on_site clock MISSED", stdout), stdout
    wavs = list((out / "voice").glob("*.wav"))
    assert wavs, "a voice warning WAV must be saved"
    assert wavs[0].read_bytes()[:4] == b"RIFF"
    snapshots = list((out / "snapshots").glob("*.jpg"))
    assert snapshots, "snapshots must be saved"
    assert snapshots[0].read_bytes()[:2] == b"\xff\xd8"
