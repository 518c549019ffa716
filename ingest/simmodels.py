"""Pure models behind `qinghe simulate sensors`: diurnal curves, rain and water level, pollution episodes."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qinghe.contracts import SensorKind
from qinghe.sensors import KINDS

LOCAL_UTC_OFFSET_S = 8 * 3600  # Hangzhou (UTC+8): diurnal curves follow local time

# canonical -> reported unit (inverse of qinghe.sensors.CONVERSIONS), for sensors with non-canonical units
TO_REPORTED: dict[tuple[str, str], Callable[[float], float]] = {
    ("ug/m3", "mg/m3"): lambda x: x / 1000.0,
    ("m", "cm"): lambda x: x * 100.0,
    ("m", "mm"): lambda x: x * 1000.0,
    ("degC", "degF"): lambda x: x * 9.0 / 5.0 + 32.0,
    ("degC", "K"): lambda x: x + 273.15,
    ("mm/h", "in/h"): lambda x: x / 25.4,
    ("mg/L", "ppm"): lambda x: x,
}


@dataclass(frozen=True, slots=True)
class SimSensor:
    """A simulated sensor: registry identity plus the units it reports in."""

    sensor_id: str
    kind: SensorKind
    zone: str
    units: dict[str, str] = field(default_factory=dict)
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Episode:
    """`pollution:ZONE:START:DURATION`: PM2.5 in ZONE climbs past 75, 150 and 250, then falls below 60."""

    kind: str
    zone: str
    start_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class RainEvent:
    """Rain of constant intensity over [start, end) in model seconds from the simulation start."""

    start_s: float
    end_s: float
    rate_mm_h: float


def parse_duration(text: str) -> float:
    """`90`, `90s`, `5m`, `1.5h` -> seconds."""
    text = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(text[-1:])
    number = text[:-1] if scale is not None else text
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (seconds, or with s, m or h)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration")
    return value


def parse_episode(text: str) -> Episode:
    """Parse `pollution:ZONE:START:DURATION` (START and DURATION in seconds, or with s/m/h)."""
    parts = text.split(":")
    if len(parts) != 4 or parts[0] != "pollution" or not parts[1]:
        raise ValueError(f"episode {text!r} is not pollution:ZONE:START:DURATION")
    duration = parse_duration(parts[3])
    if duration <= 0:
        raise ValueError(f"episode {text!r} has no duration")
    return Episode("pollution", parts[1], parse_duration(parts[2]), duration)


# PM2.5 profile of a pollution episode: (fraction of the duration, ug/m3), linearly interpolated.
EPISODE_PROFILE: tuple[tuple[float, float], ...] = (
    (0.00, 40.0),
    (0.10, 95.0),
    (0.25, 175.0),
    (0.40, 290.0),
    (0.55, 300.0),
    (0.70, 120.0),
    (0.85, 45.0),
    (1.00, 40.0),
)


def episode_pm25(episode: Episode, elapsed_s: float) -> float | None:
    """The episode's PM2.5 level `elapsed_s` after the simulation start, or None outside it."""
    x = (elapsed_s - episode.start_s) / episode.duration_s
    if not 0.0 <= x <= 1.0:
        return None
    for (x0, y0), (x1, y1) in itertools.pairwise(EPISODE_PROFILE):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return EPISODE_PROFILE[-1][1]


def rain_schedule(seed: int, horizon_s: float, mean_gap_s: float = 6 * 3600.0) -> list[RainEvent]:
    """Rain events over the horizon: showers of 0.5-6 h at 1-30 mm/h, gaps of about `mean_gap_s`."""
    rng = random.Random(seed ^ 0x5EED)
    events: list[RainEvent] = []
    t = rng.uniform(0.05, 0.5) * mean_gap_s
    while t < horizon_s:
        length = rng.uniform(0.5, 6.0) * 3600.0
        events.append(
            RainEvent(t, t + length, round(rng.choice((1.5, 4.0, 8.0, 16.0, 30.0)) * rng.uniform(0.7, 1.3), 1))
        )
        t += length + rng.expovariate(1.0 / mean_gap_s)
    return events


class Environment:
    """Deterministic weather and pollution of the district at a model time (seconds since the start).

    Model time runs `time_scale` times faster than wall time so a demo can show a whole day.
    """

    def __init__(
        self,
        start_epoch: float,
        seed: int,
        episodes: Sequence[Episode] = (),
        time_scale: float = 1.0,
        horizon_s: float = 0,
    ) -> None:
        self.start_epoch = start_epoch
        self.time_scale = time_scale
        self.episodes = tuple(episodes)
        self.rain = rain_schedule(seed, max(horizon_s * time_scale, 86400.0))
        self._zone_bias: dict[str, float] = {}
        self._seed = seed

    def hour(self, elapsed_s: float) -> float:
        """Local hour of day (0..24) at a wall-clock offset from the start."""
        model = self.start_epoch + elapsed_s * self.time_scale + LOCAL_UTC_OFFSET_S
        return (model % 86400.0) / 3600.0

    def rain_rate(self, elapsed_s: float) -> float:
        """Rain intensity in mm/h."""
        t = elapsed_s * self.time_scale
        return sum(event.rate_mm_h for event in self.rain if event.start_s <= t < event.end_s)

    def rain_accumulated(self, elapsed_s: float) -> float:
        """Rain since the start in mm (a stand-in for "since midnight")."""
        t = elapsed_s * self.time_scale
        return sum(e.rate_mm_h * max(0.0, min(t, e.end_s) - e.start_s) / 3600.0 for e in self.rain if e.start_s < t)

    def water_response(self, elapsed_s: float, tau_s: float = 3 * 3600.0) -> float:
        """Rain filtered by a catchment with time constant tau, in mm/h-equivalent (0 when dry)."""
        t = elapsed_s * self.time_scale
        total = 0.0
        for event in self.rain:
            if event.start_s >= t:
                break
            ramp = 1.0 - math.exp(-(min(t, event.end_s) - event.start_s) / tau_s)
            decay = math.exp(-(t - event.end_s) / tau_s) if t > event.end_s else 1.0
            total += event.rate_mm_h * ramp * decay
        return total

    def zone_bias(self, zone: str) -> float:
        """A stable per-zone factor (0.8..1.25): some streets are dirtier than others."""
        bias = self._zone_bias.get(zone)
        if bias is None:
            bias = self._zone_bias[zone] = random.Random(f"{self._seed}:{zone}").uniform(0.8, 1.25)
        return bias

    def episode_level(self, zone: str, elapsed_s: float) -> float | None:
        """PM2.5 forced by a pollution episode in this zone, if one is running."""
        for episode in self.episodes:
            if episode.zone == zone:
                level = episode_pm25(episode, elapsed_s)
                if level is not None:
                    return level
        return None


def _bump(hour: float, centre: float, width: float) -> float:
    d = min(abs(hour - centre), 24.0 - abs(hour - centre))
    return math.exp(-((d / width) ** 2))


def canonical_values(sensor: SimSensor, env: Environment, elapsed_s: float, rng: random.Random) -> dict[str, float]:
    """One realistic reading of `sensor` in canonical units."""
    h = env.hour(elapsed_s)
    bias = env.zone_bias(sensor.zone)
    rain = env.rain_rate(elapsed_s)
    traffic = 0.35 + _bump(h, 8.0, 1.8) + 0.9 * _bump(h, 18.5, 2.2) + 0.3 * _bump(h, 13.0, 3.0)
    kind = sensor.kind
    if kind is SensorKind.AIR:
        washout = 1.0 / (1.0 + rain / 8.0)
        pm25 = 22.0 * bias * (0.6 + 0.5 * traffic) * washout * rng.uniform(0.9, 1.1)
        forced = env.episode_level(sensor.zone, elapsed_s)
        if forced is not None:
            pm25 = forced * rng.uniform(0.97, 1.03)
        return {
            "pm25": pm25,
            "pm10": pm25 * rng.uniform(1.5, 1.8),
            "no2": 18.0 + 40.0 * traffic * bias * rng.uniform(0.9, 1.1),
            "o3": 25.0 + 90.0 * _bump(h, 15.0, 3.0) * rng.uniform(0.85, 1.15),
        }
    if kind is SensorKind.NOISE:
        return {"laeq": 41.0 + 12.0 * min(traffic, 1.6) * bias + 3.0 * (rain > 0) + rng.gauss(0.0, 1.5)}
    if kind is SensorKind.WATER_LEVEL:
        return {"level": 2.1 + 0.035 * env.water_response(elapsed_s) * bias + rng.gauss(0.0, 0.004)}
    if kind is SensorKind.WATER_QUALITY:
        wet = env.water_response(elapsed_s)
        return {
            "ph": 7.3 + rng.gauss(0.0, 0.06) - 0.01 * wet,
            "turbidity": 6.0 + 2.5 * wet * bias + rng.uniform(0.0, 1.0),
            "dissolved_oxygen": 7.5 + 1.2 * math.sin((h - 9.0) / 24.0 * 2 * math.pi) + rng.gauss(0.0, 0.1),
            "cod": 14.0 + 0.8 * wet + rng.uniform(0.0, 2.0),
        }
    if kind is SensorKind.RAIN:
        return {"rate": max(0.0, rain * rng.uniform(0.85, 1.15)), "accumulated": env.rain_accumulated(elapsed_s)}
    if kind is SensorKind.SMOKE:
        return {"smoke": max(0.0, rng.gauss(0.15, 0.05))}
    ambient = 12.0 + 5.0 * math.sin((h - 9.0) / 24.0 * 2 * math.pi) - 0.15 * rain
    return {
        "temp_max": ambient + 6.0 + rng.uniform(0.0, 2.5),
        "temp_avg": ambient + rng.gauss(0.0, 0.3),
        "hot_area": 0.0,
    }


def reported_values(sensor: SimSensor, canonical: dict[str, float]) -> dict[str, float]:
    """Convert canonical values into the units the sensor reports in, rounded like a device would."""
    out: dict[str, float] = {}
    spec = KINDS[sensor.kind]
    for name, value in canonical.items():
        unit = sensor.units.get(name, spec.fields[name].unit)
        convert = TO_REPORTED.get((spec.fields[name].unit, unit)) if unit != spec.fields[name].unit else None
        reported = convert(value) if convert is not None else value
        out[name] = round(reported, 5 if abs(reported) < 1 else 2)
    return out
