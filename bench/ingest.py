"""Ingest benchmark: throughput with zero loss, publish-to-alert latency and peak memory, against a bare
paho subscriber that only counts (the ceiling), measured in the same run on the same private broker.

    .venv/bin/python -m bench.ingest [--messages 30000] [--steps 2000,5000,10000] [--step-s 4] [--probes 150]

- ceilings: a bare paho subscriber (MQTT 3.1.1, auto-ack) under one publisher flooding as fast as it can,
  at QoS 0 and QoS 1, and draining a QoS 1 backlog;
- ours (IngestService: validate, group commit to the disk buffer, then ack; a sink thread writes
  VictoriaMetrics over the InfluxDB v2 API; every reading is counted back in the database): the same
  flood and the same backlog, as fractions of the ceilings, plus CPU per message;
- the in-flight window: a backlog drained with MQTT 5 Receive Maximum 20 (mosquitto's default
  max_inflight_messages) and 2000, and with MQTT 3.1.1 (window = the broker's 20);
- sustained: paced simulator traffic at increasing rates; a rate holds when ingest has caught up
  within 1 s of the last PUBACK;
- latency from publish to `alert/{colour}/{type}` at 1,000 msg/s through ingest -> rules -> alerting;
- peak RSS (VmHWM) of the process running the services.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.service import IngestService
from ingest.simulate import SimulationPlan, TrafficGenerator, registry_yaml, run_simulation, synthetic_sensors
from qinghe.bus import InboundMessage, MqttBus
from qinghe.central_config import CentralConfig
from qinghe.clock import SystemClock
from qinghe.config import BrokerConfig
from qinghe.contracts import SensorReading
from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics

RULE_FILE = Path(__file__).resolve().parents[1] / "tests" / "ingest" / "fixtures" / "e2e" / "air-fast.yaml"
SENSORS = 200
PROBE_PREFIX = "probe-"
TARGET_FRACTION = 0.60
TARGET_P99_MS = 50.0
REQUIRED = "air_pm25|noise_laeq|water_level_level|water_quality_ph|rain_rate|smoke_smoke|thermal_temp_max"
STORED = f'{{__name__=~"{REQUIRED}"}}'


# ----- helpers ------------------------------------------------------------------------------------------
def wait_until(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.005) -> bool:
    """Poll until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def peak_rss_mib() -> float:
    """Peak resident set size (VmHWM) of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def forget_session(url: str, client_id: str) -> None:
    """Discard a persistent session (connect with a clean session), so the broker stops queueing for it.

    Left behind, every finished measurement's session would queue every later message, and mosquitto's
    autosave of that growing queue stalls the broker for hundreds of milliseconds.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


def _flood_main(url: str, n: int, qos: int, seed: int) -> None:
    """Child process: build n realistic readings first, then publish them as fast as one paho client can."""
    sensors = synthetic_sensors(SENSORS)
    plan = SimulationPlan(BrokerConfig(url=url), tuple(sensors), rate=1e6, duration_s=0)
    gen = TrafficGenerator(plan, sensors, rate=1e6, seed=seed)
    messages = [gen.message(i, time.time())[:2] for i in range(n)]
    bus = MqttBus(BrokerConfig(url=url), f"bench-flood-{seed}", clean_start=True, max_inflight=1000)
    bus.start(wait_s=10)
    handles = [bus.publish(topic, body, qos=qos) for topic, body in messages]
    if qos:
        for handle in handles:
            handle.wait(120)
    else:
        wait_until(lambda: not bus._client._out_packet, 120)
        time.sleep(0.5)
    bus.stop()


def flood_publisher(url: str, n: int, qos: int, seed: int) -> None:
    """Run the flooding publisher in a child process and wait for it to finish."""
    proc = multiprocessing.get_context("spawn").Process(target=_flood_main, args=(url, n, qos, seed))
    proc.start()
    proc.join()


def _bare_main(url: str, n: int, qos: int, backlog: bool, conn: Any) -> None:
    """Child process: a paho subscriber that only counts; sends back counts, timings, CPU and peak RSS."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    state = {"count": 0, "first": 0.0, "last": 0.0, "cpu0": 0.0}

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        now = time.monotonic()
        if not state["count"]:
            state["first"], state["cpu0"] = now, time.process_time()
        state["count"] += 1
        state["last"] = now

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{qos}-{backlog}", clean_session=not backlog
    )
    client.on_message = on_message
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.subscribe("qh/v1/sensor/+/reading", qos=qos)
    client.loop_start()
    time.sleep(0.5)
    if backlog:
        client.disconnect()
        client.loop_stop()
    conn.send("ready")
    conn.recv()
    if backlog:
        client.reconnect()
        client.loop_start()
    deadline = time.monotonic() + 300
    while state["count"] < n and time.monotonic() < deadline:
        if state["count"] and time.monotonic() - state["last"] > 5:
            break  # QoS 0 may drop: stop once the stream has been idle for 5 s
        time.sleep(0.01)
    cpu = time.process_time() - state["cpu0"]
    client.disconnect()
    client.loop_stop()
    if backlog:
        forget_session(url, f"bench-bare-{qos}-{backlog}")
    conn.send({**state, "cpu_us": cpu / max(state["count"], 1) * 1e6, "rss_mib": peak_rss_mib()})


def bare_subscriber(url: str, n: int, qos: int, backlog: bool = False) -> dict[str, float]:
    """The ceiling: a bare paho subscriber's rate under one flooding publisher, or draining a backlog."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_bare_main, args=(url, n, qos, backlog, there))
    proc.start()
    here.recv()
    if backlog:
        flood_publisher(url, n, qos=1, seed=11)
    here.send("go")
    if not backlog:
        flood_publisher(url, n, qos=1, seed=5 + qos)
    result = here.recv()
    proc.join()
    span = max(result["last"] - result["first"], 1e-6)
    return {
        "rate": result["count"] / span,
        "count": result["count"],
        "cpu_us": result["cpu_us"],
        "rss_mib": result["rss_mib"],
    }


# ----- ours -----------------------------------------------------------------------------------------------
def _config(work: Path, mosq: LocalMosquitto, vm: LocalVictoriaMetrics, name: str, **ingest: Any) -> CentralConfig:
    return CentralConfig.model_validate(
        {
            "service_id": name,
            "state_dir": str(work / name),
            "broker": {"url": mosq.url, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
            "influx": {"url": vm.url, "batch_size": 5000, "flush_interval_ms": 200},
            "ingest": {"registry_files": [str(work / "registry.yaml")], **ingest},
            "rules": {"files": [str(RULE_FILE)]},
        }
    )


def _ingest(config: CentralConfig, work: Path) -> IngestService:
    service = IngestService(config, work, SystemClock())
    service.start()
    if not service.wait_ready(15):
        raise RuntimeError("ingest did not connect")
    return service


def _stored(vm: LocalVictoriaMetrics, expected: int, timeout_s: float = 60.0) -> int:
    count = vm.count_samples(STORED)
    deadline = time.monotonic() + timeout_s
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        count = vm.count_samples(STORED)
    return count


def measure_ours(
    work: Path, servers: tuple[LocalMosquitto, LocalVictoriaMetrics], n: int, name: str, backlog: bool, **ingest: Any
) -> dict[str, float]:
    """Ours under one flooding publisher (live) or draining a QoS 1 backlog; every reading counted in the DB."""
    mosq, vm = servers
    config = _config(work, mosq, vm, name, **ingest)
    before = vm.count_samples(STORED)
    service = _ingest(config, work)
    publisher = threading.Thread(target=flood_publisher, args=(mosq.url, n, 1, len(name)), daemon=True)
    if backlog:
        service.stop(flush_timeout_s=1)  # the session stays at the broker and queues the backlog
        publisher.start()
        publisher.join()
        service = _ingest(config, work)
    else:
        publisher.start()
        wait_until(lambda: service.stats()["acked"] > 0, 60)
    t0, cpu0 = time.monotonic(), time.process_time()
    wait_until(lambda: service.stats()["acked"] >= n, 300)
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    publisher.join()
    service.stop(flush_timeout_s=30)
    forget_session(mosq.url, service.bus.client_id)
    stored = _stored(vm, before + n) - before
    return {"rate": n / elapsed, "cpu_us": cpu / n * 1e6, "stored": stored, "lost": n - stored}


def measure_sustained(
    work: Path, servers: tuple[LocalMosquitto, LocalVictoriaMetrics], steps: list[float], step_s: float
) -> list[dict[str, float]]:
    """Paced simulator traffic at increasing rates; a rate holds when ingest catches up within 1 s."""
    mosq, vm = servers
    service = _ingest(_config(work, mosq, vm, "bench-steps"), work)
    sensors = tuple(synthetic_sensors(SENSORS))
    rows = []
    try:
        for rate in steps:
            start = service.stats()["acked"]
            counts = run_simulation(SimulationPlan(BrokerConfig(url=mosq.url), sensors, rate, step_s, in_process=False))
            done = time.monotonic()
            total = counts.valid + counts.invalid
            caught_up = wait_until(lambda s=start, t=total: service.stats()["acked"] >= s + t, 30)  # type: ignore[misc]
            lag = time.monotonic() - done
            achieved = total / max(counts.elapsed_s, 1e-6)
            rows.append({"rate": rate, "achieved": achieved, "lag_s": lag, "ok": float(caught_up and lag < 1.0)})
    finally:
        service.stop(flush_timeout_s=30)
        forget_session(mosq.url, service.bus.client_id)
    return rows


class AlertProbe:
    """Publishes one PM2.5 spike per probe sensor (each in its own zone) and times its `opened` alert."""

    def __init__(self, url: str) -> None:
        self.sent: dict[str, float] = {}
        self.got: dict[str, float] = {}
        # Two connections, as a sensor and a control-room client would be: a subscriber that also
        # publishes would have its alerts held back by Nagle behind the broker's un-ACKed PUBACKs.
        self.bus = MqttBus(BrokerConfig(url=url), "bench-alert-watcher", clean_start=True)
        self.bus.subscribe("qh/v1/alert/#", self._on_alert)
        self.bus.start(wait_s=10)
        self.sensor = MqttBus(BrokerConfig(url=url), "bench-probe-sensor", clean_start=True)
        self.sensor.start(wait_s=10)

    def _on_alert(self, message: InboundMessage) -> None:
        now = time.monotonic()
        doc = json.loads(message.payload)
        if doc.get("kind") == "opened":
            self.got.setdefault(str(doc["incident"]["dedup_key"]).rsplit(":", 1)[-1], now)

    def spike(self, sensor: str) -> None:
        """Publish a reading above the yellow threshold."""
        body = json.dumps({"ts": int(time.time() * 1000), "values": {"pm25": 96.0}})
        self.sent[sensor] = time.monotonic()
        self.sensor.publish(f"qh/v1/sensor/{sensor}/reading", body)


def _chain(config: CentralConfig, work: Path, reached_rules: dict[str, float]) -> list[Any]:
    """serve's composition (alerting <- rules <- ingest, in-process), noting when probes reach rules."""
    from alerting.service import AlertingService
    from rules.service import RulesService

    clock = SystemClock()
    alerting = AlertingService(config, work, clock)
    rules = RulesService(config, work, clock, on_signal=alerting.handle_signal)

    def to_rules(reading: SensorReading) -> None:
        if reading.sensor_id.startswith(PROBE_PREFIX):
            reached_rules[reading.sensor_id] = time.monotonic()
        rules.handle_reading(reading)

    return [alerting, rules, IngestService(config, work, clock, on_reading=to_rules)]


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


def measure_latency(
    work: Path, servers: tuple[LocalMosquitto, LocalVictoriaMetrics], probes: int, rate: float
) -> dict[str, Any]:
    """Publish-to-alert latency through ingest -> rules -> alerting with `rate` msg/s of background traffic."""
    mosq, vm = servers
    reached_rules: dict[str, float] = {}
    chain = _chain(_config(work, mosq, vm, "bench-e2e"), work, reached_rules)
    for service in chain:
        service.start()
    chain[-1].wait_ready(15)
    probe = AlertProbe(mosq.url)
    sensors = tuple(synthetic_sensors(SENSORS))
    plan = SimulationPlan(BrokerConfig(url=mosq.url), sensors, rate, probes * 0.05 + 3, in_process=False)
    background = threading.Thread(target=run_simulation, args=(plan,), daemon=True)
    background.start()
    time.sleep(2.0)  # publisher processes start and reach their rate
    for k in range(probes):
        probe.spike(f"{PROBE_PREFIX}{k}")
        time.sleep(0.05)
    background.join()
    wait_until(lambda: len(probe.got) >= probes, 20)
    probe.bus.stop()
    probe.sensor.stop()
    for service in reversed(chain):
        service.stop()
    alert = [(probe.got[s] - t) * 1000 for s, t in probe.sent.items() if s in probe.got]
    to_rules = [(reached_rules[s] - t) * 1000 for s, t in probe.sent.items() if s in reached_rules]
    return {
        **_percentiles(alert),
        "rules": _percentiles(to_rules),
        "samples": len(alert),
        "missing": probes - len(alert),
    }


# ----- run and report -----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, in one run on one private broker and database."""
    fig: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="qinghe-bench-ingest-") as tmp:
        work = Path(tmp)
        probes = "".join(f"  - {{id: {PROBE_PREFIX}{k}, kind: air, zone: probe-{k}}}\n" for k in range(args.probes))
        (work / "registry.yaml").write_text(registry_yaml(synthetic_sensors(SENSORS)) + probes)
        mosq = LocalMosquitto(work / "mosquitto")  # mosquitto's default window: max_inflight_messages 20
        vm = LocalVictoriaMetrics(work / "vm")
        mosq.start()
        vm.start()
        servers = (mosq, vm)
        n = args.messages
        try:
            fig["bare_qos0"] = bare_subscriber(mosq.url, n, qos=0)
            fig["bare_qos1"] = bare_subscriber(mosq.url, n, qos=1)
            fig["bare_drain"] = bare_subscriber(mosq.url, n, qos=1, backlog=True)
            fig["ours_live"] = measure_ours(work, servers, n, "bench-live", backlog=False)
            fig["ours_drain"] = measure_ours(work, servers, n, "bench-drain", backlog=True)
            fig["drain_v5_rm20"] = measure_ours(
                work, servers, n // 2, "bench-rm20", True, mqtt_protocol="5", receive_maximum=20
            )
            fig["drain_v5_rm2000"] = measure_ours(
                work, servers, n // 2, "bench-rm2000", True, mqtt_protocol="5", receive_maximum=2000
            )
            fig["rss_ingest_mib"] = peak_rss_mib()
            fig["steps"] = measure_sustained(work, servers, args.steps, args.step_s)
            fig["latency"] = measure_latency(work, servers, args.probes, 1000.0)
            fig["rss_all_mib"] = peak_rss_mib()
        finally:
            mosq.stop()
            vm.stop()
    return fig


def report(fig: dict[str, Any]) -> None:
    """Print the figures and the ratios against the ceilings measured in the same run."""
    b0, b1, bd = fig["bare_qos0"], fig["bare_qos1"], fig["bare_drain"]
    live, drain = fig["ours_live"], fig["ours_drain"]
    rm20, rm2000 = fig["drain_v5_rm20"], fig["drain_v5_rm2000"]
    print("ceiling: a bare paho subscriber that only counts (MQTT 3.1.1, auto-ack), same broker, same run")
    print(
        f"  QoS 0, one flooding publisher  {b0['rate']:8.0f} msg/s  {b0['cpu_us']:5.0f} us CPU/msg  "
        f"peak RSS {b0['rss_mib']:.0f} MiB"
    )
    print(f"  QoS 1, one flooding publisher  {b1['rate']:8.0f} msg/s  {b1['cpu_us']:5.0f} us CPU/msg")
    print(f"  QoS 1, draining a backlog      {bd['rate']:8.0f} msg/s  {bd['cpu_us']:5.0f} us CPU/msg")
    print("ours: validate, group commit to disk, ack, write to the database; every reading counted back in it")
    print(
        f"  QoS 1, one flooding publisher  {live['rate']:8.0f} msg/s  {live['cpu_us']:5.0f} us CPU/msg  "
        f"{live['rate'] / b1['rate']:.0%} of the QoS 1 ceiling, {live['rate'] / b0['rate']:.0%} of QoS 0; "
        f"lost {live['lost']:.0f}"
    )
    print(
        f"  QoS 1, draining a backlog      {drain['rate']:8.0f} msg/s  {drain['cpu_us']:5.0f} us CPU/msg  "
        f"{drain['rate'] / bd['rate']:.0%} of the drain ceiling; lost {drain['lost']:.0f}"
    )
    print(
        f"  window: MQTT 5 Receive Maximum 20 {rm20['rate']:.0f} msg/s, 2000 {rm2000['rate']:.0f} msg/s; "
        f"MQTT 3.1.1 with the broker's 20: {drain['rate']:.0f} msg/s; lost {rm20['lost'] + rm2000['lost']:.0f}"
    )
    for step in fig["steps"]:
        verdict = "holds" if step["ok"] else "falls behind"
        print(
            f"  paced {step['rate']:6.0f} msg/s: published at {step['achieved']:6.0f}/s, "
            f"caught up {step['lag_s']:.2f} s after the last PUBACK: {verdict}"
        )
    sustained = max((s["achieved"] for s in fig["steps"] if s["ok"]), default=0.0)
    print(f"  sustained with zero loss: {sustained:.0f} msg/s (paced); {live['rate']:.0f} msg/s under a flood")
    lat = fig["latency"]
    print(
        f"latency publish -> alert at 1,000 msg/s (ingest -> rules -> alerting): p50 {lat['p50']:.1f} ms, "
        f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms ({lat['samples']} samples, {lat['missing']} missing)"
    )
    hop = lat["rules"]
    print(f"  of which publish -> reading handed to rules: p50 {hop['p50']:.1f} ms, p99 {hop['p99']:.1f} ms")
    print(
        f"peak RSS: ingest {fig['rss_ingest_mib']:.0f} MiB, ingest+rules+alerting {fig['rss_all_mib']:.0f} MiB "
        f"(bare subscriber {b0['rss_mib']:.0f} MiB)"
    )
    rate_ok = live["rate"] >= TARGET_FRACTION * b1["rate"]
    print(
        f"targets: >= {TARGET_FRACTION:.0%} of the QoS 1 ceiling {'met' if rate_ok else 'MISSED'}; "
        f"p99 < {TARGET_P99_MS:.0f} ms {'met' if lat['p99'] < TARGET_P99_MS else 'MISSED'}"
    )
    print(json.dumps(fig, default=float))


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30_000, help="messages per throughput measurement")
    parser.add_argument("--steps", default="2000,5000,10000", help="paced simulator rates (msg/s)")
    parser.add_argument("--step-s", type=float, default=4.0, help="seconds per paced step")
    parser.add_argument("--probes", type=int, default=150, help="latency samples at 1,000 msg/s")
    args = parser.parse_args()
    args.steps = [float(x) for x in args.steps.split(",") if x]
    report(run(args))


if __name__ == "__main__":
    main()
