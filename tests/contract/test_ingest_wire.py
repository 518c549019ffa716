"""Contract: `qinghe serve` with the shipped config, fed sensor readings like a device, read back like ops.

One `serve` runs for the whole module, started exactly as documented: the shipped `config/central.yaml`
(copied with its rules and calendars so state lands in a temp dir), `QINGHE_BROKER` and
`QINGHE_INFLUX_URL` pointing at private servers.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics
from tests.contract.support import REPO, Program, Seen, Wire, base_env, now_ms, retained, rfc3339, run_cli

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Pw-never-logged"
AVAILABILITY = "qh/v1/service/central/availability"
DEADLETTER = "qh/v1/deadletter/ingest"


@dataclass
class Central:
    """The running `qinghe serve` and what a test needs to talk to it."""

    program: Program
    wire: Wire
    config: Path
    env: dict[str, str]
    broker: LocalMosquitto
    database: LocalVictoriaMetrics

    def wait_online(self, after: float = 0.0) -> None:
        """Wait for `online` on the service availability topic, published after `after`."""
        self.wire.wait_for(
            lambda w: any(m.payload == b"online" and m.at >= after for m in w.on(AVAILABILITY)),
            60,
            "qinghe serve announcing online",
        )

    def restart(self) -> None:
        """Start the (stopped or killed) program again and wait until it is online."""
        started = time.time()
        self.program.start()
        self.wait_online(after=started)


@pytest.fixture(scope="module")
def central(
    tmp_path_factory: pytest.TempPathFactory, broker: LocalMosquitto, database: LocalVictoriaMetrics
) -> Iterator[Central]:
    """`qinghe serve --config <copy of config/central.yaml>` against the private servers."""
    root = tmp_path_factory.mktemp("central")
    config_dir = shutil.copytree(REPO / "config", root / "config", ignore=shutil.ignore_patterns("demo", "schema"))
    host_port = broker.url.removeprefix("mqtt://")
    env = base_env(QINGHE_BROKER=f"mqtt://qa-user:{SECRET}@{host_port}", QINGHE_INFLUX_URL=database.url)
    wire = Wire(broker.port, "qh/v1/#").start()
    program = Program(["serve", "--config", str(config_dir / "central.yaml")], env, root / "serve.log")
    central = Central(program, wire, config_dir / "central.yaml", env, broker, database)
    program.start()
    central.wait_online()
    yield central
    code = program.terminate()
    wire.stop()
    assert code == 0, program.log()[-3000:]


def publish_reading(central: Central, sensor: str, payload: bytes | str) -> str:
    """Publish one reading as a device does (QoS 1) and return its topic."""
    topic = f"qh/v1/sensor/{sensor}/reading"
    central.wire.publish(topic, payload)
    return topic


def dead_letters_for(wire: Wire, topic: str, payload: bytes) -> list[Seen]:
    """Dead letters on `deadletter/ingest` that carry exactly this topic and payload."""
    found = []
    for message in wire.on(DEADLETTER):
        body = message.json()
        original = base64.b64decode(body["payload"]) if body.get("encoding") == "base64" else body["payload"].encode()
        if body["topic"] == topic and original == payload:
            found.append(message)
    return found


def stored(database: LocalVictoriaMetrics, metric: str, **labels: str) -> list[dict[str, Any]]:
    """Series of `metric` with exactly these label values, as exported by the database."""
    match = "{" + ",".join([f'__name__="{metric}"', *(f'{k}="{v}"' for k, v in labels.items())]) + "}"
    return database.export(match)


def wait_stored(database: LocalVictoriaMetrics, metric: str, count: int, timeout_s: float = 20, **labels: str) -> int:
    """Wait until the series holds at least `count` samples; return how many it holds."""
    deadline = time.monotonic() + timeout_s
    have = 0
    while time.monotonic() < deadline:
        have = sum(len(s["values"]) for s in stored(database, metric, **labels))
        if have >= count:
            return have
        time.sleep(0.3)
    return have


def test_serve_announces_itself_retained_and_never_logs_the_broker_password(central: Central) -> None:
    avail = retained(central.broker.port, AVAILABILITY)
    assert avail == {AVAILABILITY: b"online"}
    assert SECRET not in central.program.log()


NOW = now_ms()

# (case id, sensor, payload, reason code the docs promise). Payloads are bytes exactly as sent.
REJECTIONS: list[tuple[str, str, bytes, str]] = [
    ("malformed_json", "aq-tianzhu-01", b'{"ts": 1795877164123, "values": {"pm25": 35.2', "malformed_json"),
    ("not_object", "aq-tianzhu-01", b"[1, 2, 3]", "not_object"),
    ("unknown_sensor", "aq-does-not-exist", json.dumps({"ts": NOW, "values": {"pm25": 1}}).encode(), "unknown_sensor"),
    ("missing_values", "aq-baolong-01", json.dumps({"ts": NOW, "seq": 11}).encode(), "missing_values"),
    ("missing_field", "aq-baolong-01", json.dumps({"ts": NOW, "values": {"pm10": 20}}).encode(), "missing_field"),
    (
        "unknown_field",
        "aq-baolong-01",
        json.dumps({"ts": NOW, "values": {"pm25": 5, "co2": 400}}).encode(),
        "unknown_field",
    ),
    ("string_value", "aq-baolong-01", json.dumps({"ts": NOW, "values": {"pm25": "35.2"}}).encode(), "non_numeric"),
    ("bool_value", "aq-baolong-01", json.dumps({"ts": NOW, "values": {"pm25": True}}).encode(), "non_numeric"),
    ("null_value", "aq-baolong-01", json.dumps({"ts": NOW, "values": {"pm25": None}}).encode(), "non_numeric"),
    ("nan", "aq-baolong-01", b'{"ts": %d, "values": {"pm25": NaN}}' % NOW, "not_finite"),
    ("infinity", "aq-baolong-01", b'{"ts": %d, "values": {"pm25": Infinity}}' % NOW, "not_finite"),
    ("minus_infinity", "noise-baolong-01", b'{"ts": %d, "values": {"laeq": -Infinity}}' % NOW, "not_finite"),
    ("out_of_range", "noise-baolong-01", json.dumps({"ts": NOW, "values": {"laeq": 400}}).encode(), "out_of_range"),
    ("negative_pm", "aq-baolong-01", json.dumps({"ts": NOW, "values": {"pm25": -3}}).encode(), "out_of_range"),
    ("missing_ts", "aq-baolong-01", json.dumps({"values": {"pm25": 5}}).encode(), "missing_timestamp"),
    ("ts_without_offset", "aq-baolong-01", b'{"ts": "2026-11-28T08:00:00", "values": {"pm25": 5}}', "bad_timestamp"),
    (
        "future_ts",
        "aq-baolong-01",
        json.dumps({"ts": NOW + 3_600_000, "values": {"pm25": 5}}).encode(),
        "future_timestamp",
    ),
    (
        "stale_ts",
        "aq-baolong-01",
        json.dumps({"ts": NOW - 400 * 86_400_000, "values": {"pm25": 5}}).encode(),
        "stale_timestamp",
    ),
    ("negative_seq", "aq-baolong-01", json.dumps({"ts": NOW, "values": {"pm25": 5}, "seq": -1}).encode(), "bad_seq"),
    (
        "oversized",
        "aq-baolong-01",
        json.dumps({"ts": NOW, "values": {"pm25": 5}, "pad": "x" * 20_000}).encode(),
        "oversized",
    ),
    ("binary", "aq-baolong-01", b"\xff\xfe\x00\x01\x80binary reading", "malformed_json"),
]


@pytest.mark.parametrize(("sensor", "payload", "code"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_every_rejection_is_dead_lettered_with_the_original_payload_and_a_reason(
    central: Central, sensor: str, payload: bytes, code: str
) -> None:
    topic = publish_reading(central, sensor, payload)
    found = central.wire.wait_for(lambda w: dead_letters_for(w, topic, payload), 15, f"a dead letter ({code})")
    assert len(found) == 1
    letter = found[0]
    assert letter.qos == 1
    assert not letter.retain
    body = letter.json()
    assert {"topic", "payload", "reason", "ts"} <= body.keys()
    assert body["reason"].startswith(f"{code}:"), body["reason"]
    assert len(body["reason"]) > len(code) + 5, "the reason must say why, not just the code"
    assert abs(rfc3339(body["ts"]) - time.time()) < 60
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        assert body["encoding"] == "base64"
        assert base64.b64decode(body["payload"]) == payload
    else:
        assert body["payload"] == payload.decode()


def test_a_duplicate_seq_is_dead_lettered_and_stored_once(central: Central) -> None:
    payload = json.dumps({"ts": now_ms(), "values": {"pm25": 12.5}, "seq": 4242}).encode()
    topic = publish_reading(central, "aq-sci-01", payload)
    publish_reading(central, "aq-sci-01", payload)
    found = central.wire.wait_for(lambda w: dead_letters_for(w, topic, payload), 15, "the duplicate's dead letter")
    assert found[0].json()["reason"].startswith("duplicate:")
    assert wait_stored(central.database, "air_pm25", 1, sensor="aq-sci-01") == 1
    time.sleep(1)
    assert len(dead_letters_for(central.wire, topic, payload)) == 1, "only the second copy is a duplicate"
    series = stored(central.database, "air_pm25", sensor="aq-sci-01")
    assert series[0]["values"] == [12.5]


def test_valid_readings_are_stored_in_canonical_units_with_sensor_kind_and_zone_tags(central: Central) -> None:
    epoch_ms = now_ms() - 5_000
    rfc_ms = epoch_ms - 1_000
    ts_rfc = datetime.fromtimestamp(rfc_ms / 1000, timezone(timedelta(hours=8))).isoformat(timespec="milliseconds")
    assert ts_rfc.endswith("+08:00")
    readings = [
        ("aq-tianzhu-02", {"ts": epoch_ms, "values": {"pm25": 0.0352, "pm10": 0.051}, "seq": 1}),  # reports mg/m3
        ("noise-baolong-02", {"ts": epoch_ms, "values": {"laeq": 55.5}}),
        ("wl-underpass-01", {"ts": epoch_ms, "values": {"level": 187.0}}),  # reports cm
        ("smoke-baolong-01", {"ts": ts_rfc, "values": {"smoke": 1.5}}),
    ]
    for sensor, body in readings:
        publish_reading(central, sensor, json.dumps(body))

    assert wait_stored(central.database, "air_pm25", 1, sensor="aq-tianzhu-02") == 1
    (pm25,) = stored(central.database, "air_pm25", sensor="aq-tianzhu-02")
    assert pm25["metric"] == {
        "__name__": "air_pm25",
        "sensor": "aq-tianzhu-02",
        "kind": "air",
        "zone": "tianzhu-street",
    }
    assert pm25["timestamps"] == [epoch_ms]
    assert math.isclose(pm25["values"][0], 35.2, rel_tol=1e-9)
    (pm10,) = stored(central.database, "air_pm10", sensor="aq-tianzhu-02")
    assert math.isclose(pm10["values"][0], 51.0, rel_tol=1e-9)

    assert wait_stored(central.database, "noise_laeq", 1, sensor="noise-baolong-02") == 1
    (noise,) = stored(central.database, "noise_laeq", sensor="noise-baolong-02")
    assert noise["metric"] == {
        "__name__": "noise_laeq",
        "sensor": "noise-baolong-02",
        "kind": "noise",
        "zone": "baolong-plaza",
    }
    assert noise["values"] == [55.5]

    assert wait_stored(central.database, "water_level_level", 1, sensor="wl-underpass-01") == 1
    (level,) = stored(central.database, "water_level_level", sensor="wl-underpass-01")
    assert level["metric"]["zone"] == "lake-shore"
    assert math.isclose(level["values"][0], 1.87, rel_tol=1e-9)

    assert wait_stored(central.database, "smoke_smoke", 1, sensor="smoke-baolong-01") == 1
    (smoke,) = stored(central.database, "smoke_smoke", sensor="smoke-baolong-01")
    assert smoke["timestamps"] == [rfc_ms]
    assert smoke["values"] == [1.5]
    for sensor, body in readings:
        assert not dead_letters_for(central.wire, f"qh/v1/sensor/{sensor}/reading", json.dumps(body).encode())


REQUIRED_FIELD_SERIES = "air_pm25|noise_laeq|water_level_level|water_quality_ph|rain_rate|smoke_smoke|thermal_temp_max"
"""One series per sensor kind that every valid reading writes to (the kind's required field)."""


def count_required(database: LocalVictoriaMetrics) -> int:
    """Stored readings in all: samples of every kind's required field."""
    return database.count_samples(f'{{__name__=~"{REQUIRED_FIELD_SERIES}"}}')


def test_simulate_sensors_prints_one_json_line_whose_counts_match_what_arrives(central: Central) -> None:
    before = count_required(central.database)
    started = time.time()
    rate, duration, bad = 40, 4, 0.25
    result = run_cli(
        ["simulate", "sensors", "--sensors", "22", "--rate", str(rate), "--duration", str(duration),
         "--bad-fraction", str(bad), "--config", str(central.config), "--seed", "7"],
        env=central.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be exactly one JSON line, got {result.stdout!r}"
    counts = json.loads(lines[0])
    assert set(counts) == {"valid", "invalid"}
    valid, invalid = counts["valid"], counts["invalid"]
    assert isinstance(valid, int)
    assert isinstance(invalid, int)
    assert valid + invalid == rate * duration
    assert invalid == math.floor(rate * duration * bad)

    def since_start(topic_filter: str) -> int:
        return len([m for m in central.wire.on(topic_filter) if m.at >= started])

    central.wire.wait_for(lambda _w: since_start(DEADLETTER) >= invalid, 30, f"{invalid} dead letters")
    deadline = time.monotonic() + 30
    while count_required(central.database) - before < valid and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.5)  # anything extra (a reading stored twice, a spurious dead letter) would show by now
    assert since_start("qh/v1/sensor/+/reading") == valid + invalid
    assert since_start(DEADLETTER) == invalid
    assert count_required(central.database) - before == valid


def test_readings_sent_while_the_database_is_down_are_stored_once_it_is_back(central: Central) -> None:
    sensor, count = "aq-yankou-01", 20
    base = now_ms() - 60_000
    bodies = [{"ts": base + 100 * i, "seq": 2_000_000 + i, "values": {"pm25": 30.5 + i}} for i in range(count)]
    central.database.stop()
    try:
        for body in bodies:
            publish_reading(central, sensor, json.dumps(body))
        time.sleep(2)  # ingest acknowledges them (they are on its disk) and keeps retrying the database
    finally:
        central.database.start()
    expected = [b["ts"] for b in bodies]

    def mine() -> list[int]:
        stamps = [t for s in stored(central.database, "air_pm25", sensor=sensor) for t in s["timestamps"]]
        return sorted(t for t in stamps if expected[0] <= t <= expected[-1])

    deadline = time.monotonic() + 45
    while len(mine()) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    assert mine() == expected
    assert not [
        b for b in bodies if dead_letters_for(central.wire, f"qh/v1/sensor/{sensor}/reading", json.dumps(b).encode())
    ]


def test_sigkill_and_restart_of_serve_loses_nothing_and_duplicates_nothing(central: Central) -> None:
    sensor, total, kill_after = "aq-lakeshore-01", 150, 50
    base = now_ms() - 120_000  # older than what the simulator sent to the same sensors: told apart by ts
    bodies: list[dict[str, Any]] = [
        {"ts": base + 10 * i, "seq": 1_000_000 + i, "values": {"pm25": 20 + (i % 40) + 0.25}} for i in range(total)
    ]
    bad = [json.dumps({"ts": base + 10 * i + 5, "values": {"pm25": "high"}}).encode() for i in range(3)]
    topic = f"qh/v1/sensor/{sensor}/reading"
    central.wire.publish(topic, json.dumps(bodies[0]), retain=True)  # replayed to ingest when it resubscribes
    for body in bodies[1:kill_after]:
        publish_reading(central, sensor, json.dumps(body))
    killed_at = time.time()
    central.program.kill()
    central.wire.wait_for(
        lambda w: any(m.payload == b"offline" and m.at >= killed_at for m in w.on(AVAILABILITY)),
        15,
        "the last will (offline) of the killed serve",
    )
    assert retained(central.broker.port, AVAILABILITY) == {AVAILABILITY: b"offline"}
    for body in bodies[kill_after:]:
        publish_reading(central, sensor, json.dumps(body))
    for payload in bad:
        publish_reading(central, sensor, payload)
    central.restart()

    expected: list[int] = [b["ts"] for b in bodies]

    def mine() -> list[int]:
        series = stored(central.database, "air_pm25", sensor=sensor)
        stamps: list[int] = [t for s in series for t in s["timestamps"]]
        return sorted(t for t in stamps if expected[0] <= t <= expected[-1])

    deadline = time.monotonic() + 30
    while len(mine()) < total and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    assert mine() == expected, "each reading stored exactly once (the retained one too)"
    for payload in bad:

        def letters(w: Wire, p: bytes = payload) -> list[Seen]:
            return dead_letters_for(w, topic, p)

        central.wire.wait_for(letters, 15, "dead letter after restart")
    duplicates = [b for b in bodies if dead_letters_for(central.wire, topic, json.dumps(b).encode())]
    assert not duplicates, "a redelivered or retained reading must not be dead-lettered as a duplicate"
    assert retained(central.broker.port, AVAILABILITY) == {AVAILABILITY: b"online"}
    central.wire.publish(topic, b"", retain=True)  # clear the retained reading
