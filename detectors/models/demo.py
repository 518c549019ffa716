"""What `qinghe demo` needs from the analytics: four ready clips, camera configs for them, and the model path.

clips = make_demo_clips(Path("var/demo/clips"))          # ~20 s the first time, then reused
cameras = [demo_camera(name, path) for name, path in clips.items()]
edge = {"edge_id": "demo", "detector": {"model": str(SCENES_MODEL)}, "cameras": cameras, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detectors.models.clips import write_clip
from detectors.models.labels import LABELS_FILE, ClipLabels, read_labels

SCENES_MODEL = Path(__file__).resolve().parents[1] / "weights" / "qinghe-scenes-320.onnx"

# name -> (kind, variant, seed, camera kind): seeds chosen for short, clean episodes.
DEMO_SCENES: dict[str, tuple[str, str, int, str]] = {
    "parking-complied": ("parking", "complied", 4012, "road_warden"),
    "parking-violation": ("parking", "violation", 4013, "road_warden"),
    "smoke": ("smoke", "smoke_fire", 4014, "ar_tower"),
    "water": ("water", "puddle", 4015, "generic"),
}


def make_demo_clips(out_dir: Path, *, codec: str = "mp4v", fps: float = 5.0) -> dict[str, Path]:
    """Generate (or reuse) the demo clips: parking complied + violation, smoke with flames, a spreading puddle.

    `codec="h264"` (needs ffmpeg) writes H.264, which a GStreamer RTSP server can serve as is.
    """
    out: dict[str, Path] = {}
    for name, (kind, variant, seed, _camera_kind) in DEMO_SCENES.items():
        clip = out_dir / name
        if not _is_current(clip, seed):
            write_clip(clip, kind, variant, seed, fps=fps, codec=codec)
        out[name] = clip
    return out


def _is_current(clip: Path, seed: int) -> bool:
    if not (clip / LABELS_FILE).is_file():
        return False
    try:
        return read_labels(clip).seed == seed
    except ValueError:
        return False


def demo_camera(name: str, clip: Path, *, source: str | None = None, speaker_id: str | None = None,
                realtime: bool = True, loop: bool = False) -> dict[str, Any]:  # fmt: skip
    """An edge camera config (dict) for a clip: its zones and analytics, clip-scaled timings.

    `source` replaces the file with an RTSP URL serving the same clip; `speaker_id` is required for the
    parking cameras (kind road_warden) so warnings reach a warden speaker.
    """
    labels: ClipLabels = read_labels(clip)
    camera_kind = DEMO_SCENES.get(name, ("", "", 0, "generic"))[3]
    detect: dict[str, Any] = {"url": source} if source else {"path": str(clip / labels.video), "realtime": realtime,
                                                               "loop": loop}  # fmt: skip
    analytics = dict(labels.analytics)
    analytics.setdefault("plates", {"backend": "none"})  # synthetic vehicles carry no readable plates
    camera: dict[str, Any] = {
        "id": f"cam-{name}", "name": f"demo {name}", "kind": camera_kind if speaker_id or camera_kind != "road_warden"
        else "generic", "detect": detect, "detect_fps": labels.fps, "full_check_interval_s": 2.0,
        "stationary_recheck_s": 2.0,
        "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon], "inertia": 2} for z in labels.zones],
        "tracking": {"stationary_s": 3.0}, "before_s": 30.0, "analytics": analytics,
    }  # fmt: skip
    if speaker_id:
        camera["speaker_id"] = speaker_id
    if labels.thermal:
        camera["thermal"] = {"path": str(clip / labels.thermal), "loop": loop}
    return camera
