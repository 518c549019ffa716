"""Line protocol encoding: escaping, field formatting, millisecond timestamps."""

from __future__ import annotations

import pytest

from ingest.lineproto import encode_line, epoch_ms, escape_measurement, escape_tag, series_prefix


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("north gate", r"north\ gate"),
        ("a,b", r"a\,b"),
        ("k=v", r"k\=v"),
        ("back\\slash", "back\\\\slash"),
        ("天柱街", "天柱街"),
        ("two\nlines", r"two\nlines"),
    ],
)
def test_tag_escaping(text: str, escaped: str) -> None:
    assert escape_tag(text) == escaped


def test_measurement_escaping_keeps_equals_signs() -> None:
    assert escape_measurement("a b,c=d") == r"a\ b\,c=d"


def test_series_prefix_sorts_tags_and_drops_empty_ones() -> None:
    prefix = series_prefix("air", {"zone": "z 1", "sensor": "s1", "kind": "air", "empty": ""})
    assert prefix == r"air,kind=air,sensor=s1,zone=z\ 1"


def test_fields_are_floats_in_their_shortest_exact_form() -> None:
    line = encode_line("air,sensor=s1", {"pm25": 35.2, "pm10": 40.0, "o3": 1e-05}, 1_800_000_000_123)
    assert line == "air,sensor=s1 pm25=35.2,pm10=40.0,o3=1e-05 1800000000123"


@pytest.mark.parametrize(
    ("ts", "ms"), [(1_800_000_000.0, 1_800_000_000_000), (1_800_000_000.1234, 1_800_000_000_123), (1.0005, 1000)]
)
def test_epoch_ms_rounds_to_the_nearest_millisecond(ts: float, ms: int) -> None:
    assert epoch_ms(ts) == ms
