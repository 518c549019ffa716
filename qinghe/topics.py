"""Building and parsing v1 topics: every topic is `{prefix}/v1/...` (see docs/contract.md)."""

from __future__ import annotations

from dataclasses import dataclass

from qinghe.contracts import Colour
from qinghe.errors import PayloadError

VERSION_SEGMENT = "v1"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A topic split into its route name and parameters, e.g. ("sensor_reading", {"sensor_id": "s1"})."""

    route: str
    params: dict[str, str]


# route name -> segments after `{prefix}/v1/`; `{name}` captures one level.
_ROUTES: dict[str, tuple[str, ...]] = {
    "sensor_reading": ("sensor", "{sensor_id}", "reading"),
    "deadletter": ("deadletter", "{stage}"),
    "edge_availability": ("edge", "{edge_id}", "availability"),
    "edge_stats": ("edge", "{edge_id}", "stats"),
    "camera_status": ("camera", "{camera_id}", "status"),
    "camera_event": ("camera", "{camera_id}", "event"),
    "camera_snapshot": ("camera", "{camera_id}", "snapshot", "{event_id}"),
    "incident": ("incident", "{incident_id}"),
    "incident_cmd": ("incident", "{incident_id}", "cmd"),
    "incident_cmd_rejected": ("incident", "{incident_id}", "cmd", "rejected"),
    "alert": ("alert", "{colour}", "{type}"),
    "warden_say": ("warden", "{speaker_id}", "say"),
    "warden_said": ("warden", "{speaker_id}", "said"),
    "service_availability": ("service", "{service}", "availability"),
    "service_status": ("service", "{service}", "status"),
    "rules_status": ("rules", "status"),
    "rules_stats": ("rules", "stats"),
    "rule_signal": ("rules", "signal", "{rule_id}"),
}


def _check_level(name: str, value: str) -> str:
    if not value or any(ch in value for ch in "/+#\0"):
        raise PayloadError(f"{name} {value!r} cannot be used in a topic (empty, or has / + # or NUL)")
    return value


class Topics:
    """Topic builder and parser for one prefix (default `qh`)."""

    def __init__(self, prefix: str = "qh") -> None:
        self.prefix = prefix.strip("/")
        self.root = f"{self.prefix}/{VERSION_SEGMENT}"
        self._root_levels = len(self.root.split("/"))

    def build(self, route: str, **params: str) -> str:
        """Build the topic for `route`, e.g. build("sensor_reading", sensor_id="s1")."""
        parts = []
        for segment in _ROUTES[route]:
            if segment.startswith("{"):
                name = segment[1:-1]
                parts.append(_check_level(name, params[name]))
            else:
                parts.append(segment)
        return "/".join((self.root, *parts))

    def filter(self, route: str, **params: str) -> str:
        """Subscription filter for `route`; parameters not given become `+`."""
        parts = [params.get(seg[1:-1], "+") if seg.startswith("{") else seg for seg in _ROUTES[route]]
        return "/".join((self.root, *parts))

    def parse(self, topic: str) -> ParsedTopic:
        """Parse a concrete topic; raise PayloadError if it is not a v1 topic under this prefix."""
        levels = topic.split("/")
        head, rest = levels[: self._root_levels], levels[self._root_levels :]
        if "/".join(head) != self.root:
            raise PayloadError(f"topic {topic!r} is not under {self.root}/")
        for route, segments in _ROUTES.items():
            params = _match(segments, rest)
            if params is not None:
                return ParsedTopic(route, params)
        raise PayloadError(f"topic {topic!r} matches no v1 route")

    # Convenience builders for the busiest topics.
    def sensor_reading(self, sensor_id: str) -> str:
        """`sensor/{sensor_id}/reading`."""
        return self.build("sensor_reading", sensor_id=sensor_id)

    def deadletter(self, stage: str) -> str:
        """`deadletter/{stage}`."""
        return self.build("deadletter", stage=stage)

    def alert(self, colour: Colour, incident_type: str) -> str:
        """`alert/{colour}/{type}`."""
        return self.build("alert", colour=colour.value, type=incident_type)

    def incident(self, incident_id: str) -> str:
        """`incident/{incident_id}`."""
        return self.build("incident", incident_id=incident_id)

    def camera_event(self, camera_id: str) -> str:
        """`camera/{camera_id}/event`."""
        return self.build("camera_event", camera_id=camera_id)

    def camera_snapshot(self, camera_id: str, event_id: str) -> str:
        """`camera/{camera_id}/snapshot/{event_id}`."""
        return self.build("camera_snapshot", camera_id=camera_id, event_id=event_id)

    def camera_status(self, camera_id: str) -> str:
        """`camera/{camera_id}/status`."""
        return self.build("camera_status", camera_id=camera_id)

    def warden_say(self, speaker_id: str) -> str:
        """`warden/{speaker_id}/say`."""
        return self.build("warden_say", speaker_id=speaker_id)


def _match(segments: tuple[str, ...], levels: list[str]) -> dict[str, str] | None:
    if len(segments) != len(levels):
        return None
    params: dict[str, str] = {}
    for segment, level in zip(segments, levels, strict=True):
        if segment.startswith("{"):
            if not level:
                return None
            params[segment[1:-1]] = level
        elif segment != level:
            return None
    return params
