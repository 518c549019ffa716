"""Recordings and backtests: record format, replay report, baseline diff, precision/recall, plot, CLI."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import pytest

from qinghe.central_config import load_central_config
from qinghe.cli import main
from qinghe.codec import encode
from qinghe.contracts import EventType, ObjectEvent, SnapshotRef
from rules.labels import Predicted, load_labels, score
from rules.loader import load_rules
from rules.recording import Record, RecordingWriter, read_recording
from rules.registry import Registry
from rules.replay import replay, rule_summary, spans_from

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "rules" / "data"
CENTRAL = DATA / "central.yaml"
RULES = [REPO / "config" / "rules" / "air.yaml", REPO / "config" / "rules" / "parking.yaml"]
START = datetime.fromisoformat("2026-03-02T08:00:00+08:00").timestamp()


def _reading(sensor: str, t: float, pm25: float) -> Record:
    body = json.dumps({"ts": round(t * 1000), "values": {"pm25": pm25}}).encode()
    return Record(t + 0.05, f"qh/v1/sensor/{sensor}/reading", body)


def _event(t: float, event_id: str, kind: str, phase: str | None, outcome: str | None = None) -> Record:
    ev = ObjectEvent(
        event_id=event_id, seq=1, edge_id="box", camera_id="cam-north-gate", type=EventType(kind),
        analytic="illegal_parking", label="car", zone="no_parking_east", track_id=7, score=0.9,
        box=(0.1, 0.5, 0.3, 0.9), dwell_s=0.0, ts=t, phase=phase, outcome=outcome, episode_id="ep-1",
        snapshots=(SnapshotRef(f"qh/v1/camera/cam-north-gate/snapshot/{event_id}", "before", t),),
    )  # fmt: skip
    return Record(t + 0.1, "qh/v1/camera/cam-north-gate/event", encode(ev))


def scenario() -> list[Record]:
    """Three hours: an air-01 episode 08:10-08:30, a sub-threshold air-02 bump, one parking episode."""
    records: list[Record] = []
    for minute in range(180):
        t = START + minute * 60
        records.append(_reading("air-01", t, 120.0 if 10 <= minute <= 30 else 40.0))
        records.append(_reading("air-02", t, 70.0 if 120 <= minute <= 150 else 40.0))
    warning = _event(START + 61 * 60, "ev-2", "update", "warning")
    records += [
        _event(START + 60 * 60, "ev-1", "start", "dwelling"),
        warning,
        Record(warning.t + 1, warning.topic, warning.payload),  # the edge replays its outbox: a duplicate
        _event(START + 65 * 60, "ev-3", "end", None, "complied"),
        Record(START + 5, "qh/v1/sensor/ghost/reading", b'{"ts": 1, "values": {"pm25": 1}}'),
        Record(START + 6, "qh/v1/camera/cam-north-gate/event", b"{not json"),
    ]
    return sorted(records, key=lambda r: r.t)


def write(path: Path, records: list[Record]) -> Path:
    writer = RecordingWriter(path, {"note": "test"})
    for record in records:
        writer.write(record)
    writer.close()
    return path


def test_recordings_round_trip_through_gzip_jsonl(tmp_path: Path) -> None:
    records = [*scenario()[:20], Record(START, "qh/v1/camera/x/snapshot/e", b"\xff\xd8\xff binary")]
    path = write(tmp_path / "rec.jsonl.gz", records)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        assert json.loads(handle.readline())["qinghe_recording"] == 1
    assert list(read_recording(path)) == [Record(round(r.t, 6), r.topic, r.payload, r.retain) for r in records]


def test_hand_written_lines_may_use_objects_and_rfc3339(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"t": "2026-03-02T08:00:00+08:00", "topic": "a", "payload": {"x": 1}}\n\n', encoding="utf-8")
    assert list(read_recording(path)) == [Record(START, "a", b'{"x": 1}')]
    path.write_text('{"topic": "a"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"in.jsonl:1: not a recording line"):
        list(read_recording(path))


def test_replay_reports_incidents_rejections_and_duplicates() -> None:
    config = load_central_config(CENTRAL)
    registry = Registry.from_central(config)
    ruleset = load_rules(RULES, registry)
    result = replay(ruleset, registry, config, scenario())
    assert result.messages == 366
    assert result.duplicates == 1
    assert sum(result.rejected.values()) == 2
    spans = spans_from(result.signals, {r: c.model.type for r, c in ruleset.rules.items()})
    summary = rule_summary(spans, ruleset.rules, result.last_t or 0.0)
    # air-01 above 75 from 08:10: yellow at 08:15, resolved by the 40 at 08:31
    assert summary["air.pm25"] == {
        "incidents": 1, "by_colour": {"yellow": 1}, "median_duration_s": 960.0, "max_duration_s": 960.0,
        "flapping": 0, "unknown": 0, "open_at_end": 0,
    }  # fmt: skip
    assert summary["parking.illegal"]["incidents"] == 1
    assert summary["parking.illegal"]["median_duration_s"] == 240.0
    assert summary["air.pm25.zone_hourly"]["incidents"] == 0


def test_precision_and_recall_against_labels() -> None:
    labels = load_labels(DATA / "labels.yaml")
    at = START + 15 * 60
    air, parking = ("air.pm25", "air_pollution"), ("parking.illegal", "illegal_parking")
    incidents = [
        Predicted(*air, "air.pm25:air-01", "north-gate", frozenset({"air-01"}), None, at, at + 960),
        Predicted(*air, "air.pm25:air-09", "fields", frozenset({"air-09"}), None, at, at + 60),
        Predicted(*parking, "p", "z", frozenset(), "cam-north-gate", START + 3660, START + 3900),
    ]
    rows = {
        s.rule_id: s
        for s in score(
            labels, incidents, {"air.pm25": "air_pollution", "parking.illegal": "illegal_parking", "other": "x"}
        )
    }
    assert sorted(rows) == ["air.pm25", "parking.illegal"]  # no label names `other`
    assert (rows["air.pm25"].precision, rows["air.pm25"].recall) == (0.5, 0.5)
    assert (rows["parking.illegal"].precision, rows["parking.illegal"].recall) == (1.0, 1.0)


def test_cli_replay_with_baseline_labels_plot_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording = write(tmp_path / "traffic.jsonl.gz", scenario())
    baseline = tmp_path / "deployed-air.yaml"
    baseline.write_text(RULES[0].read_text(encoding="utf-8").replace("above: 75}", "above: 130}"), encoding="utf-8")
    plot, report = tmp_path / "replay.png", tmp_path / "report.json"
    argv = ["rules", "replay", "--rules", *map(str, RULES), "--input", str(recording), "--config", str(CENTRAL),
            "--baseline", str(baseline), str(RULES[1]), "--labels", str(DATA / "labels.yaml"),
            "--plot", str(plot), "--json", str(report)]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "replayed 366 messages (363 inputs, 2 rejected, 1 duplicate events) spanning 2h59m" in out
    assert "air.pm25                             1  yellow 1" in out
    assert "air.pm25                   in both    0   new    1   gone    0" in out
    assert "air.pm25                   precision  100%  recall   50%" in out
    assert "replay [" in err
    assert "100%" in err
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["baseline"]["diff"]["parking.illegal"] == {
        "both": 1,
        "only_candidate": 0,
        "only_baseline": 0,
        "colour_changed": 0,
    }
    assert data["labels"]["parking.illegal"]["recall"] == 1.0
    assert data["speedup"] > 50
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000


def test_cli_replay_reports_a_broken_candidate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n", encoding="utf-8")
    recording = write(tmp_path / "r.jsonl", scenario()[:5])
    assert main(["rules", "replay", "--rules", str(bad), "--input", str(recording), "--config", str(CENTRAL)]) == 1
    assert f"{bad}:2: rules[0].type: Field required" in capsys.readouterr().err


def test_stats_from_recorded_signals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_central_config(CENTRAL)
    registry = Registry.from_central(config)
    signals = replay(load_rules(RULES, registry), registry, config, scenario()).signals
    records = [Record(s.ts, f"qh/v1/rules/signal/{s.rule_id}", encode(s)) for s in signals]
    path = write(tmp_path / "signals.jsonl", records)
    assert main(["rules", "stats", "--input", str(path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["rules"]["air.pm25"]["fired"] == 1
    assert stats["rules"]["air.pm25"]["median_time_to_resolve_s"] == 960.0
    assert main(["rules", "stats", "--input", str(path)]) == 0
    assert "parking.illegal" in capsys.readouterr().out
