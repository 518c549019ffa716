"""What `qinghe demo` needs from the analytics: the four demo scenes and an edge camera config per clip.

qinghe.demo renders each scene with `write_clip(dir, kind, variant, seed)`, then
cameras = [demo_camera(name, dir) for name, dir in clips.items()]
edge = {"edge_id": "demo", "detector": {"model": str(detectors.SCENES_MODEL)}, "cameras": cameras, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detectors.models.labels import ClipLabels, read_labels

# name -> (kind, variant, seed, camera kind): seeds chosen for short, clean episodes.
DEMO_SCENES: dict[str, tuple[str, str, int, str]] = {
    "parking-complied": ("parking", "complied", 4012, "road_warden"),
    "parking-violation": ("parking", "violation", 4013, "road_warden"),
    "smoke": ("smoke", "smoke_fire", 4014, "ar_tower"),
    "water": ("water", "puddle", 4015, "generic"),
}


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
