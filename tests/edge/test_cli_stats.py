"""`qinghe edge` verb handling and the stats arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.stats import CameraSample, Sample, compute_stats
from qinghe.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_edge_check_accepts_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["edge", "--config", str(REPO / "config" / "edge.yaml"), "--check"]) == 0
    assert "ok (3 cameras)" in capsys.readouterr().out


def test_edge_with_a_bad_config_exits_1_with_file_line_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "edge.yaml"
    bad.write_text("edge_id: box\ncameras:\n  - id: c1\n    detect: {url: rtsp://x/y}\n    detect_fps: -1\n")
    assert main(["edge", "--config", str(bad)]) == 1
    assert f"{bad}:5: cameras[0].detect_fps: " in capsys.readouterr().err


def test_edge_with_a_missing_model_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(
        "edge_id: box\nstate_dir: state\ndetector: {model: nope.onnx}\n"
        "cameras:\n  - id: c1\n    detect: {path: clip.mp4}\n"
    )
    assert main(["edge", "--config", str(config)]) == 1
    assert "nope.onnx does not exist" in capsys.readouterr().err


def test_edge_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["edge"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["edge", "--help"])
    assert info.value.code == 0
    assert "--config FILE" in capsys.readouterr().out


def cam(analysed: int, inferred: int, drops: int = 0) -> CameraSample:
    return CameraSample("online", 10.0, analysed * 2, analysed, inferred, drops, 0, 0, 0.05)


def test_stats_are_rates_over_the_interval() -> None:
    before = Sample(100.0, {"c1": cam(100, 40)}, inferred=40, inference_s=0.4, batches=20, outbox_depth=0)
    after = Sample(110.0, {"c1": cam(150, 60, drops=3)}, inferred=60, inference_s=0.7, batches=25, outbox_depth=7)
    stats = compute_stats("box", before, after)
    c1 = stats["cameras"]["c1"]
    assert c1["detect_fps"] == 5.0
    assert c1["inference_fps"] == 2.0
    assert c1["gated_share"] == 0.6
    assert c1["queue_drops"] == 3
    assert stats["detector"] == {"inferences_per_s": 2.0, "inference_ms": 15.0, "avg_batch": 4.0}
    assert stats["box"]["outbox_depth"] == 7
    assert stats["interval_s"] == 10.0


def test_first_stats_have_no_rates_yet() -> None:
    sample = Sample(5.0, {"c1": cam(0, 0)}, inferred=0, inference_s=0.0, batches=0, outbox_depth=0)
    stats = compute_stats("box", sample, sample)
    assert stats["cameras"]["c1"]["detect_fps"] == 0.0
    assert stats["cameras"]["c1"]["gated_share"] is None
    assert stats["detector"]["inference_ms"] is None
