"""The edge config: the shipped file loads, bad files are rejected with file:line: key: message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edge.config import EdgeConfig, is_edge, load_edge_config
from edge.config_camera import CameraKind
from qinghe.configcheck import check_file
from qinghe.configcheck import main as config_check_main
from qinghe.yamlload import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "edge.yaml"

GOOD = """\
edge_id: box-1
detector:
  model: model.onnx
cameras:
  - id: cam-1
    kind: road_warden
    speaker_id: spk-1
    detect:
      url: rtsp://127.0.0.1:8554/cam
    zones:
      - name: lot
        polygon: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_config_is_valid() -> None:
    config = load_edge_config(SHIPPED, environ={"ONVIF_PASSWORD": "secret"})
    kinds = {c.id: c.kind for c in config.cameras}
    assert kinds["cam-north-gate"] is CameraKind.ROAD_WARDEN
    tower = next(c for c in config.cameras if c.kind is CameraKind.AR_TOWER)
    assert tower.detect.onvif is not None
    assert tower.detect.onvif.password.get_secret_value() == "secret"
    assert config.full_check_s(tower) == 15
    assert check_file(str(SHIPPED)) == ("edge", [])


def test_config_check_cli_accepts_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_check_main([str(SHIPPED)]) == 0
    assert "ok (edge)" in capsys.readouterr().out


def test_minimal_good_config_and_defaults(tmp_path: Path) -> None:
    config = load_edge_config(write(tmp_path, GOOD), environ={})
    camera = config.cameras[0]
    assert camera.detect_fps == 5
    assert camera.motion.enabled
    assert camera.tracking.max_disappeared == 25
    assert config.full_check_s(camera) == 30  # road_warden default
    assert camera.min_capture_fps() == 2.5
    assert is_edge({"edge_id": "x"})
    assert not is_edge({"sensors": []})


BAD = [
    # (replace this, with this, expected line, expected key, message fragment)
    ("    speaker_id: spk-1\n", "", 5, "cameras[0].speaker_id", "needs the speaker_id"),
    (
        "      url: rtsp://127.0.0.1:8554/cam\n",
        "      url: rtsp://x/y\n      path: clip.mp4\n",
        8,
        "cameras[0].detect",
        "exactly one",
    ),
    ("[0.9, 0.9]]", "[1.9, 0.9]]", 12, "cameras[0].zones[0].polygon", "outside 0..1"),
    ("[0.9, 0.1], [0.9, 0.9]]", "[0.9, 0.1]]", 12, "cameras[0].zones[0].polygon", "at least 3"),
    ("    kind: road_warden\n", "    kind: drone\n", 6, "cameras[0].kind", "Input should be"),
    ("    zones:\n", "    detect_fps: 0\n    zones:\n", 10, "cameras[0].detect_fps", "greater than 0"),
    ("detector:\n  model: model.onnx\n", "", 3, "cameras[0].detector", "no top-level `detector:`"),
    ("  model: model.onnx\n", "  model: model.onnx\n  colour: red\n", 4, "detector.colour", "unknown key"),
    (
        "      url: rtsp://127.0.0.1:8554/cam\n",
        "      url: udp://1.2.3.4\n",
        8,
        "cameras[0].detect",
        "must start with rtsp",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[case[3] + ":" + case[4] for case in BAD])
def test_bad_config_is_reported_with_file_line_and_key(tmp_path: Path, case: tuple[str, str, int, str, str]) -> None:
    old, new, line, key, fragment = case
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_edge_config(path, environ={})
    issues = [(i.line, i.key, i.message) for i in info.value.issues]
    assert any(k == key and fragment in m for _, k, m in issues), issues
    matched = next(i for i in info.value.issues if i.key == key)
    assert matched.line == line, issues
    assert str(matched).startswith(f"{path}:{line}: {key}: ")


def test_duplicate_zone_and_camera_ids_and_undefined_schedule(tmp_path: Path) -> None:
    text = GOOD + "      - name: lot\n        polygon: [[0, 0], [1, 0], [1, 1]]\n        schedule: workdays\n"
    text += "  - id: cam-1\n    detect: {path: clip.mp4}\n"
    with pytest.raises(ConfigError) as info:
        load_edge_config(write(tmp_path, text), environ={})
    messages = {i.key: i.message for i in info.value.issues}
    assert "duplicate zone name 'lot'" in messages["cameras[0].zones[1].name"]
    assert "undefined schedule 'workdays'" in messages["cameras[0].zones[1].schedule"]
    assert "duplicate camera id 'cam-1'" in messages["cameras[1].id"]


def test_zone_labels_are_checked_against_listed_classes(tmp_path: Path) -> None:
    text = GOOD.replace("  model: model.onnx\n", "  model: model.onnx\n  class_names: [car, person]\n")
    text = text.replace("[0.9, 0.9]]\n", "[0.9, 0.9]]\n        objects: [car, bus]\n")
    with pytest.raises(ConfigError, match=r"zones\[0\]\.objects\[1\]: label 'bus' is not produced"):
        load_edge_config(write(tmp_path, text), environ={})


def test_missing_env_secret_is_an_error(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      url: rtsp://127.0.0.1:8554/cam\n",
        "      onvif: {host: 127.0.0.1, username: admin, password: '${CAM_PASS}'}\n",
    )
    with pytest.raises(ConfigError, match="CAM_PASS is not set"):
        load_edge_config(write(tmp_path, text), environ={})
    config = load_edge_config(write(tmp_path, text), environ={"CAM_PASS": "pw"})
    assert config.cameras[0].detect.onvif is not None
    assert "pw" not in repr(config)  # secrets never show up in reprs or logs


def test_model_is_frozen() -> None:
    config = EdgeConfig(edge_id="x")
    with pytest.raises(ValueError, match="frozen"):
        config.edge_id = "y"  # type: ignore[misc]


def test_check_reports_files_the_config_names_that_do_not_exist(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  - id: cam-2\n    detect:\n      path: clips/gone.mp4\n")
    load_edge_config(path, environ={})  # loading alone does not look at the disk
    kind, issues = check_file(str(path))
    assert kind == "edge"
    assert [(i.line, i.key) for i in issues] == [(3, "detector.model"), (15, "cameras[1].detect.path")]
    assert str(tmp_path / "model.onnx") in issues[0].message
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "gone.mp4").write_bytes(b"")
    assert check_file(str(path)) == ("edge", [])
