"""Topic building and parsing for the v1 scheme."""

from __future__ import annotations

import pytest

from qinghe.contracts import Colour
from qinghe.errors import PayloadError
from qinghe.topics import Topics


@pytest.mark.parametrize(
    ("route", "params", "expected"),
    [
        ("sensor_reading", {"sensor_id": "aq-01"}, "qh/v1/sensor/aq-01/reading"),
        ("deadletter", {"stage": "ingest"}, "qh/v1/deadletter/ingest"),
        ("camera_snapshot", {"camera_id": "c1", "event_id": "e9"}, "qh/v1/camera/c1/snapshot/e9"),
        ("incident_cmd", {"incident_id": "i-1"}, "qh/v1/incident/i-1/cmd"),
        ("alert", {"colour": "red", "type": "fire"}, "qh/v1/alert/red/fire"),
        ("warden_said", {"speaker_id": "spk-3"}, "qh/v1/warden/spk-3/said"),
    ],
)
def test_build_then_parse_round_trips(route: str, params: dict[str, str], expected: str) -> None:
    topics = Topics()
    assert topics.build(route, **params) == expected
    parsed = topics.parse(expected)
    assert parsed.route == route
    assert parsed.params == params


def test_prefix_is_configurable_and_slashes_trimmed() -> None:
    topics = Topics("/city/qinghu/")
    assert topics.alert(Colour.ORANGE, "air_quality") == "city/qinghu/v1/alert/orange/air_quality"
    assert topics.parse("city/qinghu/v1/incident/abc").params == {"incident_id": "abc"}


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "#", "x\0"])
def test_levels_that_would_break_topics_are_rejected(bad: str) -> None:
    with pytest.raises(PayloadError, match="cannot be used in a topic"):
        Topics().sensor_reading(bad)


@pytest.mark.parametrize(
    "topic",
    ["other/v1/sensor/s1/reading", "qh/v2/sensor/s1/reading", "qh/v1/sensor/s1", "qh/v1/sensor//reading"],
)
def test_foreign_or_malformed_topics_do_not_parse(topic: str) -> None:
    with pytest.raises(PayloadError):
        Topics().parse(topic)


def test_filter_uses_wildcards_for_missing_params() -> None:
    topics = Topics()
    assert topics.filter("sensor_reading") == "qh/v1/sensor/+/reading"
    assert topics.filter("alert", colour="red") == "qh/v1/alert/red/+"


def test_incident_and_incident_cmd_are_distinguished() -> None:
    topics = Topics()
    assert topics.parse("qh/v1/incident/i1").route == "incident"
    assert topics.parse("qh/v1/incident/i1/cmd").route == "incident_cmd"
    assert topics.parse("qh/v1/incident/i1/cmd/rejected").route == "incident_cmd_rejected"
