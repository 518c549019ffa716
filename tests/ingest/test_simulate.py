"""The simulator's models and messages: realistic curves, episodes, and invalid messages of every class."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from ingest.config import RegistryFile
from ingest.registry import compile_registry, load_registry_files
from ingest.simbad import BAD_CLASSES
from ingest.simmodels import (
    Environment,
    Episode,
    SimSensor,
    canonical_values,
    episode_pm25,
    parse_duration,
    parse_episode,
    reported_values,
)
from ingest.simulate import SimulationPlan, TrafficGenerator, plan_sensors, registry_yaml, synthetic_sensors
from ingest.validate import Accepted, Rejection, Validator
from qinghe.central_config import CentralConfig
from qinghe.config import BrokerConfig, SensorConfig, validate_document
from qinghe.contracts import SensorKind
from qinghe.yamlload import load_yaml_text
from tests.ingest.helpers import NOW, SENSORS, sensor_configs

# What each simulated class must be rejected as (written out here, not taken from the simulator).
EXPECTED_REASON = {
    "malformed_json": "malformed_json",
    "not_utf8": "malformed_json",
    "not_object": "not_object",
    "unknown_sensor": "unknown_sensor",
    "missing_values": "missing_values",
    "missing_field": "missing_field",
    "unknown_field": "unknown_field",
    "string_value": "non_numeric",
    "boolean_value": "non_numeric",
    "nan_value": "not_finite",
    "infinite_value": "not_finite",
    "out_of_range": "out_of_range",
    "missing_ts": "missing_timestamp",
    "unparseable_ts": "bad_timestamp",
    "future_ts": "future_timestamp",
    "stale_ts": "stale_timestamp",
    "oversized": "oversized",
    "bad_seq": "bad_seq",
    "unknown_key": "unknown_key",
    "duplicate_seq": "duplicate",
}


def _sim_sensors() -> list[SimSensor]:
    return [SimSensor(s.id, s.kind, s.zone, dict(s.units)) for s in sensor_configs()]


def test_the_simulator_documents_every_class() -> None:
    assert BAD_CLASSES == EXPECTED_REASON


def test_simulated_traffic_is_valid_except_the_bad_fraction_which_hits_every_class() -> None:
    sensors = _sim_sensors()
    plan = SimulationPlan(BrokerConfig(), tuple(sensors), rate=100.0, duration_s=20.0, bad_fraction=0.25)
    gen = TrafficGenerator(plan, sensors, rate=100.0, seed=3)
    validator = Validator(compile_registry(sensor_configs()), "qh/v1")
    outcomes: Counter[str] = Counter()
    for i in range(plan.total):
        now = NOW + i / 100.0
        topic, data, bad = gen.message(i, now)
        result = validator.check(topic, data, now)
        if bad is None:
            assert isinstance(result, Accepted), (data, result)
            outcomes["valid"] += 1
        else:
            assert isinstance(result, Rejection), (bad, data)
            assert result.reason.value == EXPECTED_REASON[bad], (bad, str(result))
            outcomes[bad] += 1
    assert outcomes["valid"] == plan.total - plan.total // 4
    assert set(outcomes) - {"valid"} == set(EXPECTED_REASON)


@pytest.mark.parametrize("kind", list(SensorKind))
def test_reported_values_convert_back_to_in_range_canonical_values(kind: SensorKind) -> None:
    env = Environment(NOW, seed=5, horizon_s=86400)
    rng = random.Random(5)
    configs = [c for c in sensor_configs() if c.kind is kind]
    for config in configs:
        sensor = SimSensor(config.id, kind, config.zone, dict(config.units))
        profile = compile_registry([config])[config.id]
        for step in range(0, 86400, 3600):
            canonical = canonical_values(sensor, env, step, rng)
            for name, reported in reported_values(sensor, canonical).items():
                rule = profile.fields[name]
                value = rule.convert(reported) if rule.convert else reported
                assert rule.spec.low <= value <= rule.spec.high
                assert value == pytest.approx(canonical[name], rel=1e-3, abs=0.02)


def test_a_pollution_episode_climbs_through_every_tier_and_falls_below_the_resolve_level() -> None:
    episode = Episode("pollution", "z", start_s=100.0, duration_s=1000.0)
    levels = [episode_pm25(episode, 100.0 + t) for t in range(0, 1001, 5)]
    assert episode_pm25(episode, 99.0) is None
    assert episode_pm25(episode, 1101.0) is None
    values = [v for v in levels if v is not None]
    peak = values.index(max(values))
    firsts = [next(i for i, v in enumerate(values) if v > limit) for limit in (75, 150, 250)]
    assert firsts == sorted(firsts)
    assert max(values) > 250
    assert values[-1] < 60
    assert any(v < 60 for v in values[peak:])


def test_air_and_noise_follow_the_day_and_the_episode_overrides_the_zone() -> None:
    midnight_local = 1_799_942_400.0  # 2027-01-15 00:00 Asia/Shanghai
    env = Environment(midnight_local, seed=1, episodes=[Episode("pollution", "z", 0, 86400)])
    quiet = SimSensor("n", SensorKind.NOISE, "other")
    rng = random.Random(1)
    night = sum(canonical_values(quiet, env, 3 * 3600, rng)["laeq"] for _ in range(50)) / 50
    rush = sum(canonical_values(quiet, env, 18.5 * 3600, rng)["laeq"] for _ in range(50)) / 50
    assert rush > night + 5
    clean = SimSensor("a", SensorKind.AIR, "other")
    assert canonical_values(clean, env, 8 * 3600, rng)["pm25"] > canonical_values(clean, env, 3 * 3600, rng)["pm25"]
    polluted = SimSensor("p", SensorKind.AIR, "z")
    assert canonical_values(polluted, env, 0.4 * 86400, rng)["pm25"] > 250


def test_water_level_rises_with_rain_and_recedes_after_it() -> None:
    env = Environment(NOW, seed=2, horizon_s=5 * 86400)
    shower = next(a for a, b in zip(env.rain, env.rain[1:], strict=False) if b.start_s - a.end_s > 4 * 3600)
    gauge = SimSensor("w", SensorKind.WATER_LEVEL, "lake")
    rng = random.Random(2)

    def level(t: float) -> float:
        return canonical_values(gauge, env, t, rng)["level"]

    before, end = level(shower.start_s - 60), level(shower.end_s)
    assert env.rain_rate(shower.start_s + 1) > 0
    assert end > before + 0.01
    assert level(shower.end_s + 4 * 3600) < end - 0.005


@pytest.mark.parametrize(
    ("text", "episode"),
    [
        ("pollution:market:60:600", Episode("pollution", "market", 60, 600)),
        ("pollution:north-gate:1m:2h", Episode("pollution", "north-gate", 60, 7200)),
    ],
)
def test_episodes_parse(text: str, episode: Episode) -> None:
    assert parse_episode(text) == episode


@pytest.mark.parametrize(
    "text", ["fire:z:1:2", "pollution:z:1", "pollution::1:2", "pollution:z:1:0", "pollution:z:x:2"]
)
def test_bad_episodes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"episode|duration"):
        parse_episode(text)


def test_durations_take_units() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "5m", "1.5h")] == [90, 90, 300, 5400]


def test_synthetic_sensors_are_deterministic_and_ingest_can_load_their_registry(tmp_path: Path) -> None:
    registry = sensor_configs()
    sensors, synthetic = plan_sensors(len(registry) + 9, registry)
    assert [s.sensor_id for s in sensors[: len(registry)]] == [s["id"] for s in SENSORS]
    assert synthetic == plan_sensors(len(registry) + 9, registry)[1]
    assert {s.kind for s in synthetic} == set(SensorKind)
    assert synthetic_sensors(3)[0].sensor_id == "sim-air-1"
    (tmp_path / "sim.yaml").write_text(registry_yaml(synthetic))
    doc = load_yaml_text((tmp_path / "sim.yaml").read_text(), "sim.yaml")
    assert [s.id for s in validate_document(doc, RegistryFile).sensors] == [s.sensor_id for s in synthetic]
    config = CentralConfig.model_validate(
        {"sensors": [s.model_dump() for s in registry], "ingest": {"registry_files": ["sim.yaml"]}}
    )
    merged = load_registry_files(config, tmp_path)
    assert len(merged.sensors) == len(registry) + 9
    assert merged.ingest.registry_files == []
    assert load_registry_files(merged, tmp_path) is merged


def test_the_registry_comes_first_then_synthetic_sensors_avoid_its_ids() -> None:
    registry = [SensorConfig(id="sim-air-1", kind=SensorKind.AIR, zone="z")]
    sensors, synthetic = plan_sensors(3, registry)
    assert [s.sensor_id for s in sensors] == ["sim-air-1", "sim-noise-1", "sim-water_level-1"]
    assert [s.zone for s in synthetic] == ["z", "z"]
