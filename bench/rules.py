"""Rules benchmark: 200 rules over 10,000 sensors through the live RulesService on Mosquitto, against
Node-RED 4 running the equivalent threshold-with-duration flow in the same run; plus replay speed.

Prints: sustained readings/s (a QoS 1 backlog drained from the broker), alert latency p50/p99 at a
fixed rate, engine evaluation latency p50/p99, memory per rule instance, replay speed on a day of
1,000 sensors, and the ratios against Node-RED.

    .venv/bin/python -m bench.rules [--backlog 100000] [--rate 1000] [--no-node-red]

Node-RED is installed with `npm install node-red@4` into ~/.cache/qinghe-bench/node-red (outside the
repository) on first use; without node/npm the comparison is reported as not measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from qinghe.bus import InboundMessage, MqttBus
from qinghe.central_config import CentralConfig
from qinghe.clock import SystemClock
from qinghe.config import BrokerConfig
from qinghe.localservers import LocalMosquitto, free_port
from rules.engine import Engine
from rules.loader import load_rules
from rules.recording import read_recording
from rules.registry import Registry
from rules.replay import replay
from rules.service import RulesService

CACHE = Path.home() / ".cache" / "qinghe-bench" / "node-red"
THRESHOLD, RESOLVE, FOR_S = 75.0, 60.0, 2.0
PROBES = 50


# ----- workload ------------------------------------------------------------------------------------


def workload(sensors: int, rules: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Air sensors spread over rules/2 zones; two threshold-with-duration rules per zone."""
    zones = max(1, rules // 2)
    registry = [
        {"id": f"z{i % zones}-s{i}", "kind": "air", "zone": f"z{i % zones}", "expected_interval_s": 60}
        for i in range(sensors)
    ]
    specs = [
        {"id": f"bench.z{z}.{k}", "zone": f"z{z}", "above": THRESHOLD + 10 * k, "below": RESOLVE}
        for z in range(zones)
        for k in range(2)
    ][:rules]
    return registry, specs


def rules_yaml(specs: list[dict[str, Any]]) -> str:
    """The rules as YAML for our engine."""
    out = ["rules:"]
    for r in specs:
        out += [
            f"  - id: {r['id']}",
            "    type: bench",
            f"    readings: {{kind: air, zone: {r['zone']}}}",
            "    per: sensor",
            "    value: pm25",
            f"    for: {FOR_S:g}s",
            f"    tiers: [{{colour: yellow, above: {r['above']:g}}}]",
            f"    resolve: {{below: {r['below']:g}}}",
            "    gap: {notify: never}",
        ]
    return "\n".join(out) + "\n"


def payload(value: float, ts_ms: int) -> bytes:
    """A sensor reading as the wire carries it."""
    return b'{"ts":%d,"values":{"pm25":%.1f}}' % (ts_ms, value)


def _publish_share(url: str, sensors: list[str], count: int, seed: int) -> None:
    """One publisher process: `count` QoS 1 readings of its own sensors, below the thresholds, each with
    a later timestamp than the sensor's previous one (ingest's validator drops repeats)."""
    port = int(url.rsplit(":", 1)[1])
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{seed}-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    last = None
    base_ms = int(time.time() * 1000) - count - 60_000
    for i in range(count):
        sensor = sensors[(i * 7919) % len(sensors)]
        value = 20.0 + (i % 40)
        last = client.publish(f"qh/v1/sensor/{sensor}/reading", payload(value, base_ms + i), qos=1)
    if last is not None:
        last.wait_for_publish(60)
    while client._out_messages:  # every PUBACK in
        time.sleep(0.01)
    client.loop_stop()
    client.disconnect()


def publish_backlog(url: str, sensors: list[str], count: int, processes: int = 2) -> float:
    """Queue `count` readings at the broker with several publisher processes; returns seconds taken."""
    started = time.perf_counter()
    share = count // processes
    own = [sensors[p::processes] for p in range(processes)]  # disjoint sensors keep per-sensor order
    procs = [
        multiprocessing.Process(
            target=_publish_share, args=(url, own[p], share + (count % processes if p == 0 else 0), p)
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Bench:
    """What every phase needs: a scratch folder, the broker, the workload and the options."""

    folder: Path
    url: str
    port: int
    registry: list[dict[str, Any]]
    specs: list[dict[str, Any]]
    args: argparse.Namespace

    @property
    def sensors(self) -> list[str]:
        """Sensor ids."""
        return [s["id"] for s in self.registry]


# ----- our service -----------------------------------------------------------------------------------


def service_config(
    folder: Path, url: str, registry: list[dict[str, Any]], specs: list[dict[str, Any]], service_id: str, **rules: Any
) -> CentralConfig:
    """The central config of a rules service running the benchmark rules alone (default settings)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(rules_yaml(specs), encoding="utf-8")
    return CentralConfig.model_validate(
        {
            "service_id": service_id,
            "state_dir": str(folder / "state"),
            "broker": {"url": url},
            "sensors": registry,
            "rules": {"files": [str(folder / "rules.yaml")], "reload_interval_s": 3600, **rules},
            "ingest": {"max_future_skew_s": 3600},
        }
    )


class TimedService:
    """RulesService (alone: it subscribes to readings) with the engine's step timed per reading."""

    def __init__(
        self, folder: Path, url: str, registry: list[dict[str, Any]], specs: list[dict[str, Any]], service_id: str
    ) -> None:
        self.client_id = f"{service_id}-rules"
        config = service_config(folder, url, registry, specs, service_id)
        self.service = RulesService(config, folder, SystemClock(), subscribe_readings=True)
        self.step_s: list[float] = []
        self.first: float | None = None
        self.last = 0.0
        self.count = 0
        engine = self.service.engine
        original: Callable[..., Any] = engine.step

        def timed(item: Any, now: float) -> Any:
            t0 = time.perf_counter()
            out = original(item, now)
            t1 = time.perf_counter()
            self.step_s.append(t1 - t0)
            self.count += 1
            if self.first is None:
                self.first = t1
            self.last = t1
            return out

        engine.step = timed  # type: ignore[method-assign]

    def drain_rate(self) -> float:
        """Readings per second between the first and the last processed."""
        return (self.count - 1) / (self.last - self.first) if self.first and self.count > 1 else 0.0


def drop_session(url: str, client_id: str) -> None:
    """Connect once with a clean start so the broker forgets a persistent session (and its queue)."""
    bus = MqttBus(BrokerConfig(url=url), client_id, clean_start=True)
    bus.start(wait_s=10)
    bus.stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def bench_ours(b: Bench) -> dict[str, float]:
    """Backlog drain and engine step latency through the live service."""
    folder, backlog = b.folder / "ours", b.args.backlog
    timed = TimedService(folder, b.url, b.registry, b.specs, "benchdrain")
    timed.service.start()  # creates the persistent session and its subscription
    timed.service.stop()
    publish_s = publish_backlog(b.url, b.sensors, backlog)
    timed = TimedService(folder, b.url, b.registry, b.specs, "benchdrain")
    timed.service.start()
    done = wait_until(lambda: timed.count >= backlog, timeout_s=600)
    rate = timed.drain_rate()
    steps = sorted(timed.step_s)
    timed.service.stop()
    drop_session(b.url, timed.client_id)  # later phases' traffic must not queue for it
    return {
        "publish_s": publish_s,
        "drained": float(done),
        "rate": rate,
        "step_p50_us": steps[len(steps) // 2] * 1e6 if steps else 0.0,
        "step_p99_us": steps[int(len(steps) * 0.99)] * 1e6 if steps else 0.0,
    }


def bench_workers(b: Bench) -> dict[str, float]:
    """The same backlog drained by `workers` zone-sharded worker processes."""
    folder, workers, backlog = b.folder / "pool", b.args.workers, b.args.backlog
    config = service_config(folder, b.url, b.registry, b.specs, "benchpool", workers=workers, stats_interval_s=2.0)
    stats: dict[str, dict[str, Any]] = {}
    watcher = MqttBus(BrokerConfig(url=b.url), "bench-pool-watch", clean_start=True)
    watcher.subscribe("qh/v1/rules/stats/+", lambda m: stats.__setitem__(m.topic, json.loads(m.payload)))
    watcher.start(wait_s=10)
    pool = RulesService(config, folder, SystemClock(), subscribe_readings=True)
    pool.start()  # sessions and subscriptions
    wait_until(lambda: len(stats) == workers, 120)
    pool.stop()
    stats.clear()
    publish_backlog(b.url, b.sensors, backlog)
    pool = RulesService(config, folder, SystemClock(), subscribe_readings=True)
    pool.start()

    def total() -> int:
        return sum(int(s.get("counters", {}).get("readings", 0)) for s in stats.values())

    done = wait_until(lambda: total() >= backlog, 600)
    time.sleep(1.0)
    pool.stop()
    watcher.stop()
    for i in range(workers):
        drop_session(b.url, f"benchpool-rules-{i + 1}of{workers}")
    firsts = [s["first_input_at"] for s in stats.values() if s.get("first_input_at")]
    lasts = [s["last_input_at"] for s in stats.values() if s.get("last_input_at")]
    span = max(lasts) - min(firsts) if firsts and lasts else 0.0
    return {"rate": total() / span if span > 0 else 0.0, "drained": float(done), "readings": float(total())}


def bench_ceiling(b: Bench) -> float:
    """The same backlog drained by a bare paho subscriber that only counts (QoS 1, MQTT 3.1.1, auto-ack):
    what one Python consumer can reach on this machine before doing anything with a message."""
    count, span = [0], [0.0, 0.0]

    def on_message(_client: paho.Client, _userdata: object, _message: paho.MQTTMessage) -> None:
        count[0] += 1
        now = time.perf_counter()
        if count[0] == 1:
            span[0] = now
        span[1] = now

    def client(clean: bool) -> paho.Client:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv311,
                        clean_session=clean)  # fmt: skip
        c.on_message = on_message
        c.on_connect = lambda c, *_args: c.subscribe("qh/v1/sensor/+/reading", qos=1)
        c.connect("127.0.0.1", b.port)
        c.loop_start()
        return c

    def close(c: paho.Client) -> None:
        c.disconnect()
        c.loop_stop()

    first = client(False)
    wait_until(lambda: False, 1.0)  # subscribed: the backlog queues for this session
    close(first)
    publish_backlog(b.url, b.sensors, b.args.backlog)
    drain = client(False)
    wait_until(lambda: count[0] >= b.args.backlog, 300)
    close(drain)
    close(client(True))  # forget the session
    return (count[0] - 1) / (span[1] - span[0]) if span[1] > span[0] else 0.0


# ----- latency at a fixed rate --------------------------------------------------------------------


class LatencyProbe:
    """Publishes readings at a fixed rate; probe sensors cross the threshold; records alert latencies."""

    def __init__(self, url: str, signal_topic: str, parse: Callable[[bytes], float | None]) -> None:
        self.latencies: list[float] = []
        self.parse = parse
        self.bus = MqttBus(BrokerConfig(url=url), f"bench-probe-{os.getpid()}", clean_start=True)
        self.bus.subscribe(signal_topic, self._on_signal)

    def _on_signal(self, message: InboundMessage) -> None:
        sent = self.parse(message.payload)
        if sent is not None:
            self.latencies.append(message.received_at - sent)

    def run(self, sensors: list[str], rate: int, seconds: float) -> None:
        """Background readings for all sensors; probes (z0-*) are high for 3 s then low for 1 s, repeatedly."""
        self.bus.start(wait_s=10)
        probes = [s for s in sensors if s.startswith("z0-")][:PROBES]
        others = [s for s in sensors if not s.startswith("z0-")]
        total = int(rate * seconds)
        period = 1.0 / rate
        started = time.perf_counter()
        for i in range(total):
            target = started + i * period
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now_ms = int(time.time() * 1000)
            if i % 10 == 0:  # 10% of the traffic: probes, high 3 s (they fire after FOR_S) then low 1 s
                sensor = probes[(i // 10) % len(probes)]
                value = 10.0 if int((target - started) % 4.0) == 3 else 100.0
            else:
                sensor, value = others[i % len(others)], 30.0
            self.bus.publish(f"qh/v1/sensor/{sensor}/reading", payload(value, now_ms))
        time.sleep(2.0)
        self.bus.stop()

    def summary(self) -> tuple[float, float, int]:
        """(p50 ms, p99 ms, alerts seen)."""
        ms = sorted(x * 1000 for x in self.latencies)
        if not ms:
            return 0.0, 0.0, 0
        return ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))], len(ms)


def our_signal_time(body: bytes) -> float | None:
    """When the condition of a firing signal was met (its ts: the `for:` deadline or the reading's arrival).

    The engine fires at the deadline itself, between readings; Node-RED can only fire on the next reading,
    so each is measured from the instant its own decision became due.
    """
    from qinghe.timefmt import parse_timestamp

    data = json.loads(body)
    return parse_timestamp(data["ts"]) if data["status"] == "firing" else None


def nodered_signal_time(body: bytes) -> float | None:
    """When the reading behind a Node-RED alert was sent."""
    data = json.loads(body)
    return data["ts"] / 1000.0 if data.get("status") == "firing" else None


def _serve(config: CentralConfig, folder: Path, ready: Any, stop: Any) -> None:
    """A rules service in a process of its own (as deployed, and like Node-RED here) until `stop` is set."""
    service = RulesService(config, folder, SystemClock(), subscribe_readings=True)
    service.start()
    ready.set()
    stop.wait()
    service.stop()


def latency_ours(b: Bench) -> tuple[float, float, int]:
    """Alert latency of the live service at a fixed rate; the probe runs in this process, the service not."""
    folder = b.folder / "ours-latency"
    config = service_config(folder, b.url, b.registry, b.specs, "benchlatency")
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    process = context.Process(target=_serve, args=(config, folder, ready, stop), name="bench-rules-service")
    process.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("the rules service did not start")
        probe = LatencyProbe(b.url, "qh/v1/rules/signal/#", our_signal_time)
        probe.run(b.sensors, b.args.rate, b.args.seconds)
    finally:
        stop.set()
        process.join(60)
    drop_session(b.url, "benchlatency-rules")
    return probe.summary()


# ----- Node-RED ------------------------------------------------------------------------------------


NODE_RED_FUNCTION = """
const state = context.get('state');
const rules = context.get('rules');
const n = context.get('n') + 1; context.set('n', n);
const sensor = msg.topic.split('/')[3];
const zone = sensor.slice(0, sensor.indexOf('-'));
const doc = JSON.parse(msg.payload);
const v = doc.values.pm25, ts = doc.ts;
const out = [];
for (const r of (rules[zone] || [])) {
  const key = r.id + '|' + sensor;
  let s = state.get(key);
  if (!s) { s = {since: null, firing: false}; state.set(key, s); }
  if (v > r.above) {
    if (s.since === null) s.since = ts;
    if (!s.firing && ts - s.since >= r.for_ms) {
      s.firing = true;
      out.push({topic: 'bench/nodered/signal/' + r.id,
                payload: JSON.stringify({rule: r.id, sensor, status: 'firing', ts})});
    }
  } else {
    s.since = null;
    if (s.firing && v < r.below) {
      s.firing = false;
      out.push({topic: 'bench/nodered/signal/' + r.id,
                payload: JSON.stringify({rule: r.id, sensor, status: 'resolved', ts})});
    }
  }
}
const progress = (n === 1 || n % 5000 === 0)
  ? {topic: 'bench/nodered/progress', payload: JSON.stringify({n, t: Date.now()})} : null;
return [out.length ? out : null, progress];
"""


def node_red_flow(port: int, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_zone: dict[str, list[dict[str, Any]]] = {}
    for r in specs:
        by_zone.setdefault(r["zone"], []).append(
            {"id": r["id"], "above": r["above"], "below": r["below"], "for_ms": FOR_S * 1000}
        )
    init = f"context.set('state', new Map()); context.set('n', 0); context.set('rules', {json.dumps(by_zone)});"
    broker = {
        "id": "broker", "type": "mqtt-broker", "name": "local", "broker": "127.0.0.1", "port": str(port),
        "clientid": "nodered-bench", "autoConnect": True, "usetls": False, "protocolVersion": "4", "keepalive": "60",
        "cleansession": False,
    }  # fmt: skip
    return [
        {"id": "tab", "type": "tab", "label": "bench"},
        broker,
        {"id": "in", "type": "mqtt in", "z": "tab", "topic": "qh/v1/sensor/+/reading", "qos": "1", "datatype": "utf8",
         "broker": "broker", "nl": False, "rap": True, "rh": 0, "inputs": 0, "wires": [["fn"]]},
        {"id": "fn", "type": "function", "z": "tab", "name": "rules", "func": NODE_RED_FUNCTION, "outputs": 2,
         "initialize": init, "finalize": "", "libs": [], "wires": [["out"], ["out"]]},
        {"id": "out", "type": "mqtt out", "z": "tab", "topic": "", "qos": "1", "retain": "false", "broker": "broker",
         "wires": []},
    ]  # fmt: skip


SETTINGS_JS = """module.exports = {
  uiHost: "127.0.0.1", uiPort: %d, httpAdminRoot: false, httpNodeRoot: false, disableEditor: true,
  flowFile: "flows.json", credentialSecret: false, logging: {console: {level: "info"}},
  diagnostics: {enabled: false, ui: false}, telemetry: {enabled: false},
  externalModules: {autoInstall: false, palette: {allowInstall: false}, modules: {allowInstall: false}},
  functionExternalModules: false,
};
"""


def install_node_red() -> Path | None:
    """node-red@4 in the cache dir (npm install on first use); None if node or npm is missing."""
    red = CACHE / "node_modules" / "node-red" / "red.js"
    if red.exists():
        return red
    if shutil.which("npm") is None or shutil.which("node") is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "package.json").exists():
        (CACHE / "package.json").write_text('{"name": "qinghe-bench-node-red", "private": true}\n')
    print("installing node-red@4 into", CACHE, "(first run only)")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "node-red@4"], cwd=CACHE,
                   check=False, timeout=900)  # fmt: skip
    return red if red.exists() else None


class NodeRed:
    """A headless Node-RED process running the benchmark flow."""

    def __init__(self, red: Path, folder: Path, broker_port: int, specs: list[dict[str, Any]]) -> None:
        self.red, self.folder = red, folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "flows.json").write_text(json.dumps(node_red_flow(broker_port, specs)), encoding="utf-8")
        (folder / "settings.js").write_text(SETTINGS_JS % free_port(), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "node-red.log").open("ab")
        self.proc = subprocess.Popen(
            ["node", str(self.red), "--userDir", str(self.folder), "--settings", str(self.folder / "settings.js")],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (Node-RED then unsubscribes), or SIGKILL, which leaves its persistent session subscribed."""
        if self.proc is not None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def rss_mib(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20 if self.proc else 0.0


class Progress:
    """Node-RED's progress messages: (count, its clock ms)."""

    def __init__(self, url: str) -> None:
        self.points: list[tuple[int, int]] = []
        self.bus = MqttBus(BrokerConfig(url=url), "bench-progress", clean_start=True)
        self.bus.subscribe("bench/nodered/progress", self._on)
        self.bus.start(wait_s=10)

    def _on(self, message: InboundMessage) -> None:
        data = json.loads(message.payload)
        self.points.append((int(data["n"]), int(data["t"])))

    def count(self) -> int:
        return max((n for n, _t in self.points), default=0)


def bench_node_red(b: Bench, red: Path) -> dict[str, float]:
    """The same backlog drain and latency run against Node-RED."""
    folder, backlog = b.folder / "node-red", b.args.backlog
    node = NodeRed(red, folder, b.port, b.specs)
    progress = Progress(b.url)
    node.start()  # creates its persistent session
    wait_until(lambda: _subscribed(folder), 60)
    time.sleep(2)
    node.stop(kill=True)  # a clean stop would unsubscribe and the backlog would not queue
    publish_backlog(b.url, b.sensors, backlog)
    progress.points.clear()
    node.start()
    wait_until(lambda: progress.count() >= backlog - backlog % 5000, 300)
    points = sorted(progress.points)
    first, last = points[0], points[-1]
    rate_drained = (last[0] - first[0]) / ((last[1] - first[1]) / 1000) if last[1] > first[1] else 0.0
    rss = node.rss_mib()
    probe = LatencyProbe(b.url, "bench/nodered/signal/#", nodered_signal_time)
    probe.run(b.sensors, b.args.rate, b.args.seconds)
    node.stop()
    progress.bus.stop()
    p50, p99, alerts = probe.summary()
    return {"rate": rate_drained, "p50_ms": p50, "p99_ms": p99, "alerts": alerts, "rss_mib": rss}


def _subscribed(folder: Path) -> bool:
    log = folder / "node-red.log"
    return log.exists() and "Started flows" in log.read_text(errors="replace")


# ----- memory and replay -----------------------------------------------------------------------------


def memory_per_instance(b: Bench) -> tuple[float, int]:
    """Bytes per rule instance (tracemalloc) after every sensor reported a few times."""
    folder, registry = b.folder, b.registry
    (folder / "mem-rules.yaml").write_text(rules_yaml(b.specs), encoding="utf-8")
    config = CentralConfig.model_validate({"sensors": registry})
    reg = Registry.from_central(config)
    ruleset = load_rules([folder / "mem-rules.yaml"], reg)
    from qinghe.contracts import SensorKind, SensorReading

    readings = [SensorReading(s["id"], SensorKind.AIR, s["zone"], 0.0, {"pm25": 30.0}) for s in registry]
    gc.collect()
    tracemalloc.start()
    engine = Engine(ruleset, reg)
    before = tracemalloc.get_traced_memory()[0]
    t = 1_800_000_000.0
    for round_ in range(3):
        for r in readings:
            engine.step(SensorReading(r.sensor_id, r.kind, r.zone, t, {"pm25": 30.0 + round_}), t)
            t += 0.001
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    instances = sum(len(v) for v in engine.instances.values())
    return (after - before) / max(instances, 1), instances


def replay_day(folder: Path, sensors: int, interval_s: int) -> dict[str, float]:
    """A day of `sensors` air sensors, one reading each per `interval_s`, written as a recording and replayed."""
    import gzip

    registry = [
        {"id": f"r{i}", "kind": "air", "zone": f"zone{i % 20}", "expected_interval_s": interval_s}
        for i in range(sensors)
    ]
    specs = [{"id": f"day.zone{z}", "zone": f"zone{z}", "above": THRESHOLD, "below": RESOLVE} for z in range(20)]
    (folder / "day-rules.yaml").write_text(rules_yaml(specs), encoding="utf-8")
    config = CentralConfig.model_validate({"sensors": registry, "ingest": {"max_age_s": 86400 * 400}})
    reg = Registry.from_central(config)
    ruleset = load_rules([folder / "day-rules.yaml"], reg)
    path = folder / "day.jsonl.gz"
    start = 1_772_380_800  # 2026-03-02 00:00 +08:00
    written = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        out.write('{"qinghe_recording": 1}\n')
        for step in range(86400 // interval_s):
            base = start + step * interval_s
            for i in range(sensors):
                t = base + (i * interval_s) / sensors
                value = 40.0 + 50.0 * ((step // 30 + i) % 7 == 0)  # occasional episodes
                body = json.dumps({"ts": int(t * 1000), "values": {"pm25": value}})
                out.write(json.dumps({"t": round(t, 3), "topic": f"qh/v1/sensor/r{i}/reading", "payload": body}) + "\n")
                written += 1
    result = replay(ruleset, reg, config, read_recording(path))
    return {"messages": written, "signals": len(result.signals), "wall_s": result.wall_s, "speedup": result.speedup}


# ----- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=100_000, help="readings queued at the broker, then drained")
    parser.add_argument("--rate", type=int, default=1000, help="msg/s for the latency run")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the latency run")
    parser.add_argument("--replay-sensors", type=int, default=1000)
    parser.add_argument("--replay-interval", type=int, default=60, help="seconds between readings of a sensor")
    parser.add_argument("--no-node-red", action="store_true")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare paho subscriber's drain")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="also drain with this many zone-sharded worker processes (1: single process only)",
    )
    args = parser.parse_args(argv)
    registry, specs = workload(args.sensors, args.rules)
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        folder = Path(tmp)
        broker = LocalMosquitto(folder / "mosquitto", max_inflight=1000)
        broker.start()
        try:
            run_all(Bench(folder, broker.url, broker.port, registry, specs, args))
        finally:
            broker.stop()


def run_all(b: Bench) -> None:
    """Every phase, printing as it goes, then the summary with the ratios (all measured in this run)."""
    args = b.args
    load = os.getloadavg()
    print(f"workload: {len(b.specs)} rules over {len(b.registry)} sensors (2 rules per sensor), QoS 1, {b.url}; "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")  # fmt: skip
    r: dict[str, float] = {}
    if not args.no_ceiling:
        r["ceiling"] = bench_ceiling(b)
        print(f"bare paho subscriber (counts only, auto-ack): drained at {r['ceiling']:,.0f} msg/s")
    ours = bench_ours(b)
    r.update(ours=ours["rate"], step_p50=ours["step_p50_us"], step_p99=ours["step_p99_us"])
    print(f"qinghe rules, 1 process: drained {args.backlog:,} readings at {ours['rate']:,.0f} readings/s "
          f"(engine step p50 {ours['step_p50_us']:.1f} us, p99 {ours['step_p99_us']:.1f} us)")  # fmt: skip
    red = None if args.no_node_red else install_node_red()
    if red is not None:
        theirs = bench_node_red(b, red)
        r.update(red=theirs["rate"], red_p50=theirs["p50_ms"], red_p99=theirs["p99_ms"], red_rss=theirs["rss_mib"])
        print(f"node-red 4: drained at {theirs['rate']:,.0f} readings/s; alert latency p50 "
              f"{theirs['p50_ms']:.2f} ms, p99 {theirs['p99_ms']:.2f} ms ({theirs['alerts']:.0f} alerts); "
              f"RSS {theirs['rss_mib']:.0f} MiB")  # fmt: skip
    else:
        print("node-red: not measured (--no-node-red, or node/npm unavailable)")
    r["p50"], r["p99"], alerts = latency_ours(b)
    print(f"qinghe rules: alert latency at {args.rate} msg/s: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms "
          f"({alerts} alerts)")  # fmt: skip
    if args.workers > 1:
        pool = bench_workers(b)
        r["pool"] = pool["rate"]
        print(
            f"qinghe rules, {args.workers} workers: drained {pool['readings']:,.0f} readings at {pool['rate']:,.0f}/s"
        )
    r["mem"], instances = memory_per_instance(b)
    print(f"qinghe rules: memory per rule instance {r['mem']:,.0f} bytes ({instances:,} instances)")
    day = replay_day(b.folder, args.replay_sensors, args.replay_interval)
    r["replay"] = day["speedup"]
    print(f"replay: a day of {args.replay_sensors:,} sensors ({day['messages']:,.0f} readings, one per "
          f"{args.replay_interval} s) in {day['wall_s']:.1f} s: {day['speedup']:,.0f}x real time "
          "(target >= 50x)")  # fmt: skip
    summary(b, r)


def summary(b: Bench, r: dict[str, float]) -> None:
    """The figures side by side, with ratios against Node-RED measured in the same run."""
    args, load = b.args, os.getloadavg()

    def vs(rate: float) -> str:
        return f"{rate / r['red']:.2f}x Node-RED" if r.get("red") else "Node-RED not measured"

    print(f"\nsummary (load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} CPUs):")
    print(f"  sustained readings/s, {args.backlog:,}-reading QoS 1 backlog drained:")
    print(f"    qinghe rules, 1 process      {r['ours']:>9,.0f}  {vs(r['ours'])}")
    if "pool" in r:
        print(f"    qinghe rules, {args.workers} workers      {r['pool']:>9,.0f}  {vs(r['pool'])}  (target >= 3x)")
    if "red" in r:
        print(f"    Node-RED 4                   {r['red']:>9,.0f}")
    if "ceiling" in r:
        print(f"    bare paho subscriber         {r['ceiling']:>9,.0f}  (one Python consumer that only counts; "
              f"ours {r['ours'] / r['ceiling']:.0%} of it)")  # fmt: skip
    red = f"; Node-RED {r['red_p50']:.2f} / {r['red_p99']:.2f} ms" if "red" in r else ""
    lower = ("lower" if r["p99"] < r["red_p99"] else "NOT lower") if "red" in r else "not compared"
    print(f"  alert latency p50 / p99 at {args.rate:,} msg/s: ours {r['p50']:.2f} / {r['p99']:.2f} ms{red} "
          f"(p99 {lower})")  # fmt: skip
    print(f"  engine evaluation per reading (2 rules) p50 / p99: {r['step_p50']:.1f} / {r['step_p99']:.1f} us")
    print(
        f"  memory per rule instance: {r['mem']:,.0f} bytes"
        + (f"; Node-RED RSS {r['red_rss']:.0f} MiB" if "red" in r else "")
    )
    print(f"  replay: {r['replay']:,.0f}x real time (target >= 50x)")


if __name__ == "__main__":
    main()
