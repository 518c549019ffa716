"""`qinghe incidents list|show|stats` on a state directory produced by the core."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from qinghe.cli import main
from qinghe.contracts import Colour, SignalStatus
from tests.alerting.helpers import Harness, cmd, signal
from tests.alerting.test_parking import CAMERAS, warning


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A day with: a red fire acked late, a yellow dump handled in time, two parking episodes, noise."""
    h = Harness(tmp_path, cameras=CAMERAS)
    h.send(signal(key="fire", rule_id="fire-cam", colour=Colour.RED))  # inc 1
    h.advance(90)  # red ack missed at 60 s
    fire = h.only().id
    h.command(fire, cmd("ack", by="li"))
    h.send(signal(key="dump", rule_id="dump-cam", colour=Colour.YELLOW, incident_type="dumping", zone="z2"))  # inc 2
    dump = next(r.id for r in h.core.state.records.values() if r.incident.type == "dumping")
    h.advance(60)
    h.command(dump, cmd("arrive", by="wang"))
    h.command(dump, cmd("resolve", by="wang"))
    h.command(dump, cmd("close", by="wang"))
    h.send(warning())  # inc 3: complied
    h.advance(30)
    h.send(
        signal(key="park:cam1:7", rule_id="no-parking", incident_type="illegal_parking", status=SignalStatus.RESOLVED)
    )
    h.send(replace(warning(), dedup_key="park:cam1:8", signal_id="p8"))  # inc 4
    h.advance(200)  # violation
    for i in range(3):  # a noisy rule that clears itself before anyone acks
        h.send(signal(key=f"noise{i}", rule_id="noise-night", colour=Colour.BLUE, incident_type="noise", zone=f"n{i}"))
        h.send(signal(key=f"noise{i}", rule_id="noise-night", status=SignalStatus.RESOLVED, incident_type="noise"))
    h.store.close()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_list_open_incidents(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "incidents", "list", "--state", str(state))
    assert code == 0
    assert out.splitlines()[0] == "open: red 1, orange 1, yellow 0, blue 0"
    assert len(out.splitlines()) == 3  # the acked fire and the parking violation
    code, out = run(capsys, "incidents", "list", "--state", str(state), "--all", "--json")
    assert len(json.loads(out)) == 7


def test_show_prints_clocks_and_history(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "incidents", "list", "--state", str(state), "--all", "--json")
    fire = next(i for i in json.loads(out) if i["type"] == "smoke_fire")
    code, out = run(capsys, "incidents", "show", fire["id"], "--state", str(state))
    assert code == 0
    assert "clock acknowledge" in out
    assert "missed" in out
    assert "sla_breached" in out
    assert "li" in out
    assert run(capsys, "incidents", "show", "inc-nope", "--state", str(state))[0] == 1


def test_stats(state: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    chart = tmp_path / "out" / "day.png"
    code, out = run(capsys, "incidents", "stats", "--state", str(state), "--json", "--chart", str(chart))
    assert code == 0
    stats = json.loads(out)
    assert stats["incidents"] == 7
    assert stats["open_by_colour"] == {"red": 1, "orange": 1, "yellow": 0, "blue": 0}
    red = stats["compliance_by_colour"]["red"]["acknowledge"]
    assert (red["met"], red["missed"], red["rate"]) == (0, 1, 0.0)
    yellow = stats["compliance_by_colour"]["yellow"]
    assert (yellow["acknowledge"]["met"], yellow["on_site"]["met"], yellow["handled"]["met"]) == (1, 1, 1)
    assert stats["parking"]["complied"] == 1
    assert stats["parking"]["violation"] == 1
    assert stats["parking"]["complied_ratio"] == 0.5
    top = stats["noisiest_rules"][0]
    assert (top["rule_id"], top["signals"], top["opened"], top["cleared_unacked"]) == ("noise-night", 6, 3, 3)
    assert "duty-team" in stats["compliance_by_team"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, text = run(capsys, "incidents", "stats", "--state", str(state))
    assert "1510 compliance per colour" in text
    assert "complied ratio 50%" in text


def test_missing_state_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["incidents", "list", "--state", str(tmp_path / "nothing")]) == 1
    assert "no alerting state" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["incidents", "list"])
    assert info.value.code == 2


def test_config_flag_finds_the_state(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "central.yaml"
    config.write_text(f"state_dir: {state}\nalerting: {{}}\n", encoding="utf-8")
    code, out = run(capsys, "incidents", "list", "--config", str(config))
    assert code == 0
    assert out.startswith("open: red 1")
