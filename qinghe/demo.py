"""`qinghe demo`: the whole pipeline on this machine with real local servers, narrated live.

Mosquitto and VictoriaMetrics start on free loopback ports in a temporary directory; the central
services run on `config/demo/central.yaml` (the shipped config compressed in time); a GStreamer RTSP
server plays generated scenes (parking that complies, parking that stays, straw smoke with a thermal
view, a spreading puddle) to an edge agent running the project's trained detector; a simulator
publishes sensor traffic with a pollution episode; simulated responders answer incidents, one of them
too late on purpose. Snapshots and voice WAVs are kept in the output directory; the rest is removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors import SCENES_MODEL
from qinghe.central_config import CentralConfig, load_central_config
from qinghe.clock import SystemClock
from qinghe.config import ENV_BROKER, ENV_INFLUX_URL, BrokerConfig
from qinghe.demo_view import LiveView
from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "config" / "demo" / "central.yaml"
DEFAULT_MODEL = SCENES_MODEL


@dataclass(frozen=True, slots=True)
class DemoCamera:
    """One demo camera: which generated scene it plays and how the central registry knows it."""

    camera_id: str
    scene: str  # a key of detectors.models.demo.DEMO_SCENES
    speaker_id: str | None = None


CAMERAS = (
    DemoCamera("cam-gate-a", "parking-complied", "spk-gate-a"),
    DemoCamera("cam-gate-b", "parking-violation", "spk-gate-b"),
    DemoCamera("cam-tower-03", "smoke"),
    DemoCamera("cam-underpass", "water"),
)

_GENERATOR_SOURCES = ("scenes.py", "clips.py", "actors.py", "render.py", "assets.py", "demo.py")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the user asked for on the command line."""

    duration_s: float
    output_dir: Path
    model: Path
    cameras: bool
    clip_cache: Path
    keep_temp: bool


def _render_one(args: tuple[str, str, int, str]) -> str:
    from detectors.models.clips import write_clip

    kind, variant, seed, out = args
    write_clip(Path(out), kind, variant, seed, codec="h264")
    return out


def _generator_version() -> str:
    """A digest of the scene generator's code: clips cached by an older generator are rendered again."""
    import hashlib

    import detectors.models

    digest = hashlib.sha1(usedforsecurity=False)
    for name in _GENERATOR_SOURCES:
        digest.update((Path(detectors.models.__file__).parent / name).read_bytes())
    return digest.hexdigest()[:10]


def render_clips(cache: Path, say: Any) -> dict[str, Path]:
    """Generate (or reuse) each camera's scene clip; returns camera id -> clip directory."""
    from detectors.models.demo import DEMO_SCENES

    root = cache / _generator_version()
    wanted = {cam.camera_id: root / cam.scene for cam in CAMERAS}
    jobs = [
        (*DEMO_SCENES[cam.scene][:3], str(wanted[cam.camera_id]))
        for cam in CAMERAS
        if not (wanted[cam.camera_id] / "labels.json").exists()
    ]
    if jobs:
        say("SETUP", f"rendering {len(jobs)} scene clips from real imagery (cached in {root})")
        with ProcessPoolExecutor(max_workers=min(2, len(jobs))) as pool:
            list(pool.map(_render_one, jobs))
    return wanted


def edge_config_for(clips: dict[str, Path], rtsp: Any, broker_url: str, state_dir: Path, model: Path) -> dict[str, Any]:
    """The demo edge config: one camera per scene, its zones and analytics taken from the clip's labels."""
    from detectors.models.demo import demo_camera

    cameras = []
    for cam in CAMERAS:
        source = rtsp.url(f"/{cam.camera_id}")
        config = demo_camera(cam.scene, clips[cam.camera_id], source=source, speaker_id=cam.speaker_id, loop=True)
        cameras.append({**config, "id": cam.camera_id})
    return {
        "edge_id": "demo-edge", "state_dir": str(state_dir), "stats_interval_s": 10,
        "broker": {"url": broker_url, "reconnect_min_s": 0.2, "reconnect_max_s": 2.0},
        "detector": {"model": str(model)}, "cameras": cameras,
    }  # fmt: skip


class VoiceWatcher:
    """Prints each voice-warning WAV the local-audio speaker writes, with its text and length."""

    def __init__(self, directory: Path, view: LiveView) -> None:
        self.directory = directory
        self.view = view
        self.files: list[Path] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voice-watch", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(timeout=2)
        self._scan()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._scan()

    def _scan(self) -> None:
        from alerting.voice.render import wav_info

        for wav in sorted(self.directory.glob("*.wav")):
            if wav in self.files:
                continue
            self.files.append(wav)
            text = (
                wav.with_suffix(".txt").read_text(encoding="utf-8").strip() if wav.with_suffix(".txt").exists() else ""
            )
            try:
                seconds = f"{wav_info(wav).duration_s:.1f} s"
            except Exception:  # a half-written file: report it anyway
                seconds = "?"
            self.view.say("VOICE", f"「{text}」 spoken to {wav} ({seconds})")


def _responders(broker: BrokerConfig) -> list[Any]:
    from alerting.responder import ResponderPlan, SimulatedResponder

    plans = {
        # fire: acknowledged in time, but the responder arrives after the 30 s on-site clock: escalation
        "late-fire-crew": ResponderPlan(3.0, 40.0, 48.0, None, frozenset({"fire"})),
        "env-duty": ResponderPlan(2.0, 9.0, None, None, frozenset({"air_pollution", "standing_water"})),
        "traffic-warden": ResponderPlan(3.0, None, None, None, frozenset({"illegal_parking"})),
    }
    return [SimulatedResponder(broker, plan, name) for name, plan in plans.items()]


def _simulation_plan(config: CentralConfig, duration_s: float) -> Any:
    from ingest.simmodels import Episode
    from ingest.simulate import SimulationPlan, plan_sensors

    sensors, _extra = plan_sensors(len(config.sensors), config.sensors)
    return SimulationPlan(
        broker=config.broker, sensors=tuple(sensors), rate=len(sensors) / 2.0, duration_s=duration_s,
        bad_fraction=0.03, episodes=(Episode("pollution", "tianzhu-street", 8.0, min(70.0, duration_s * 0.6)),),
        seed=3,
    )  # fmt: skip


class Demo:
    """Owns everything the demo starts, and stops it in reverse order."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.stack = ExitStack()
        self.work = Path(tempfile.mkdtemp(prefix="qinghe-demo-"))
        self.view: LiveView | None = None

    def run(self) -> int:
        """Run the demo to the end; returns the exit code."""
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # RTSP reconnect chatter belongs in the status lines
        with self.stack:
            self.stack.callback(self._cleanup)
            broker, influx = self._start_servers()
            config = self._load_config(broker.url, influx.url)
            self.view = view = LiveView(config.broker, self.options.output_dir)
            view.start()
            self.stack.callback(view.stop)
            view.say("SETUP", f"mosquitto {broker.url}, victoria-metrics {influx.url}, state in {self.work}")
            self._start_central(config)
            voice = VoiceWatcher(self.options.output_dir / "voice", view)
            voice.start()
            self.stack.callback(voice.stop)
            if self.options.cameras:
                self._start_cameras(broker.url, view)
            for responder in _responders(config.broker):
                self.stack.callback(responder.stop)
                responder.start()
            counts = self._simulate(config, view)
            self._summary(view, influx, counts, voice)
        return 0

    def _start_servers(self) -> tuple[LocalMosquitto, LocalVictoriaMetrics]:
        broker = LocalMosquitto(self.work / "mosquitto", max_inflight=1000)
        broker.start()
        self.stack.callback(broker.stop)
        influx = LocalVictoriaMetrics(self.work / "victoria")
        influx.start()
        self.stack.callback(influx.stop)
        return broker, influx

    def _load_config(self, broker_url: str, influx_url: str) -> CentralConfig:
        environ = {
            **os.environ,
            ENV_BROKER: broker_url,
            ENV_INFLUX_URL: influx_url,
            "QINGHE_DEMO_STATE": str(self.work / "central"),
            "QINGHE_DEMO_OUT": str(self.options.output_dir.resolve()),
        }
        return load_central_config(DEMO_CONFIG, environ=environ)

    def _start_central(self, config: CentralConfig) -> None:
        from qinghe.serve import CentralServices

        services = CentralServices(config, DEMO_CONFIG.parent, SystemClock())
        services.start()
        self.stack.callback(services.stop)

    def _start_cameras(self, broker_url: str, view: LiveView) -> None:
        from edge.agent import EdgeAgent
        from edge.config import EdgeConfig
        from edge.rtsp_testing import LocalRtspServer

        if not self.options.model.is_file():
            view.say("SETUP", f"no detector model at {self.options.model}: running the sensor path only")
            return
        clips = render_clips(self.options.clip_cache, view.say)
        sources = {f"/{cam}": path / "video.mp4" for cam, path in clips.items()}
        rtsp = LocalRtspServer(self.work / "rtsp", sources)
        rtsp.start()
        self.stack.callback(rtsp.stop)
        data = edge_config_for(clips, rtsp, broker_url, self.work / "edge", self.options.model)
        agent = EdgeAgent(EdgeConfig.model_validate(data), self.work)
        agent.start()
        self.stack.callback(agent.stop)
        view.say(
            "SETUP", f"edge agent on {len(CAMERAS)} RTSP cameras at {rtsp.url('/')}, model {self.options.model.name}"
        )

    def _simulate(self, config: CentralConfig, view: LiveView) -> Any:
        from ingest.simulate import run_simulation

        plan = _simulation_plan(config, self.options.duration_s)
        view.say(
            "SETUP", f"{len(plan.sensors)} sensors publishing for {plan.duration_s:.0f} s, pollution in tianzhu-street"
        )
        counts = run_simulation(plan)
        time.sleep(3.0)  # let the last readings and clocks land before the summary
        return counts

    def _summary(self, view: LiveView, influx: LocalVictoriaMetrics, counts: Any, voice: VoiceWatcher) -> None:
        tally = view.tally
        stored = influx.count_samples('{__name__=~"(air|noise|smoke|water_level|rain)_.*"}')
        view.say(
            "SUMMARY",
            f"readings published: {counts.valid} valid, {counts.invalid} invalid; "
            f"{tally.dead_letters} dead letters; {stored} samples stored in VictoriaMetrics",
        )
        view.say("SUMMARY", "alerts: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.alerts.items())))
        view.say(
            "SUMMARY", "camera events: " + (", ".join(f"{k} {v}" for k, v in sorted(tally.events.items())) or "none")
        )
        view.say("SUMMARY", "parking outcomes: " + (", ".join(f"{k} {v}" for k, v in tally.outcomes.items()) or "none"))
        view.say(
            "SUMMARY",
            f"{len(tally.snapshots)} snapshots in {self.options.output_dir / 'snapshots'}, "
            f"{len(voice.files)} voice WAVs in {self.options.output_dir / 'voice'}",
        )
        view.say("SUMMARY", f"service logs in {self.options.output_dir / 'demo.log'}")

    def _cleanup(self) -> None:
        if not self.options.keep_temp:
            shutil.rmtree(self.work, ignore_errors=True)
