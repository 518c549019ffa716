"""Worker processes: zone groups, refusing rules that span zones, and a two-worker service on a real broker."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from qinghe.central_config import CentralConfig
from qinghe.clock import SystemClock
from qinghe.config import BrokerConfig
from qinghe.yamlload import ConfigError
from rules.registry import CameraInfo, Registry, SensorInfo
from rules.service import RulesService
from rules.shards import plan, zone_groups
from tests.rules.helpers import REGISTRY, rules_from
from tests.support import Collector

AIR = """
rules:
  - id: air
    type: t
    readings: {kind: air}
    value: pm25
    tiers: [{colour: yellow, above: 75}]
"""


def test_every_sensor_and_camera_lands_in_exactly_one_shard(tmp_path: Path) -> None:
    shards = plan(REGISTRY, rules_from(AIR, tmp_path), 3)
    assert sorted(s for shard in shards for s in shard.sensors) == sorted(REGISTRY.sensors)
    assert sorted(c for shard in shards for c in shard.cameras) == sorted(REGISTRY.cameras)
    for shard in shards:  # a zone is never split
        zones = {REGISTRY.sensors[s].zone for s in shard.sensors}
        others = {REGISTRY.sensors[s].zone for o in shards if o is not shard for s in o.sensors}
        assert not zones & others


def test_cameras_and_correlation_radii_join_zones(tmp_path: Path) -> None:
    registry = Registry.of(
        [SensorInfo("a", "air", "za"), SensorInfo("b", "smoke", "zb"), SensorInfo("c", "air", "zc")],
        [CameraInfo("cam", "generic", ("zc", "zd"))],
    )
    groups = zone_groups(registry, rules_from(AIR, tmp_path, registry))
    assert groups.find("zc") == groups.find("zd")
    assert groups.find("za") != groups.find("zb")
    fire = """
    rules:
      - id: fire
        type: fire
        events: {analytic: smoke_fire}
        per: episode
        tiers: [{colour: orange, when: {event: {}}}]
        correlate: [{readings: {kind: smoke}, when: {value: smoke, above: 2}, within_m: 500, within: 10m}]
    """
    near = Registry.of(
        [SensorInfo("s1", "smoke", "zs", REGISTRY.sensors["s1"].location)],
        [CameraInfo("c2", "ar_tower", ("zt",), REGISTRY.cameras["c2"].location)],
    )
    groups = zone_groups(near, rules_from(fire, tmp_path, near))
    assert groups.find("zs") == groups.find("zt")  # the smoke sensor is 40 m from the camera


def test_rules_spanning_zones_cannot_be_split(tmp_path: Path) -> None:
    text = AIR + "    per: kind\n"
    with pytest.raises(ConfigError, match=r"rules air keep state across zones"):
        plan(REGISTRY, rules_from(text, tmp_path), 2)


@pytest.mark.integration
def test_two_workers_share_the_sensors_and_both_signal(
    tmp_path: Path, broker_config: BrokerConfig, collector: Collector
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(textwrap.dedent(AIR), encoding="utf-8")
    sensors = [{"id": f"s{i}", "kind": "air", "zone": f"zone{i}"} for i in range(8)]
    config = CentralConfig.model_validate({
        "service_id": "shardtest", "state_dir": str(tmp_path / "state"), "broker": broker_config.model_dump(),
        "sensors": sensors, "rules": {"files": [str(rules)], "workers": 2, "stats_interval_s": 0.5},
    })  # fmt: skip
    service = RulesService(config, tmp_path, SystemClock(), subscribe_readings=True)
    assert service.pool is not None
    owned = sorted(len(s.sensors) for s in service.pool.shards)
    assert sum(owned) == 8
    assert owned[0] > 0  # with 8 zones both workers own some
    service.start()
    try:
        deadline = time.monotonic() + 60
        while len([m for m in collector.on("qh/v1/service/") if m.payload == b"online"]) < 2:
            assert time.monotonic() < deadline, "workers did not come online"
            time.sleep(0.1)
        time.sleep(0.5)
        for i in range(8):
            body = {"ts": round(time.time() * 1000), "values": {"pm25": 90}}
            collector.bus.publish(f"qh/v1/sensor/s{i}/reading", json.dumps(body)).wait(5)
        got = collector.wait_for(lambda ms: len([m for m in ms if m.topic == "qh/v1/rules/signal/air"]) >= 8, 30)
        collector.wait_for(lambda ms: len({m.topic for m in ms if m.topic.startswith("qh/v1/rules/stats/")}) == 2, 30)
    finally:
        service.stop()
    keys = sorted(json.loads(m.payload)["dedup_key"] for m in got if m.topic == "qh/v1/rules/signal/air")
    assert keys == [f"air:s{i}" for i in range(8)]
    workers = {m.topic.rsplit("/", 1)[1] for m in collector.on("qh/v1/rules/stats/")}
    assert workers == {"1of2", "2of2"}
