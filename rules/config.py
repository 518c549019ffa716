"""Rules section of the central config, and the rule-related file kinds `qinghe config check` recognises."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from qinghe.config import StrictModel


class RulesConfig(StrictModel):
    """Where the rule files are and how the rules service runs; paths are relative to the config file."""

    enabled: bool = True
    files: list[str] = Field(default_factory=list, description="YAML rule files, relative to the config file")
    reload_interval_s: float = Field(2.0, gt=0, description="how often rule files are checked for changes")
    state_file: str = Field("rules-state.db", description="checkpoint and seen camera events, relative to state_dir")
    outbox_file: str = Field("rules-outbox.db", description="signals waiting for the broker, relative to state_dir")
    checkpoint_interval_s: float = Field(10.0, gt=0, description="engine state is saved this often (and on stop)")
    stats_interval_s: float = Field(60.0, gt=0, description="how often fatigue stats are published on rules/stats")
    event_dedupe_ttl_s: float = Field(7 * 86400.0, gt=0, description="camera event ids remembered this long")
    event_dedupe_max: int = Field(500_000, ge=1000, description="at most this many event ids remembered")
    tick_max_s: float = Field(1.0, gt=0, le=60, description="longest sleep of the timer between time checks")
    mqtt_protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1",
        description="MQTT version of the rules service's connection: 3.1.1 is cheaper for paho to receive, "
        "but then the broker's max_inflight_messages bounds the unacknowledged window",
    )
    workers: int = Field(
        1, ge=1, le=64, description="worker processes, each owning a group of zones (only when rules run alone)"
    )


def _is_rule_file(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("rules"), list) and "tests" not in data


def _is_rule_test(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("tests"), list) and "rule_files" in data


def _is_labels(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("labels"), list)


def _is_calendar(data: Any) -> bool:
    return isinstance(data, dict) and "calendar" in data and "holidays" in data


def file_kinds() -> list[Any]:
    """Rule files, rule-test files, replay labels files and holiday calendars."""
    from qinghe.configcheck import FileKind

    def check_rules(path: str) -> None:
        from rules.lint import check_rule_files_standalone

        check_rule_files_standalone([path])

    def check_test(path: str) -> None:
        from rules.testfile import load_test_file

        load_test_file(path)

    def check_labels(path: str) -> None:
        from rules.labels import load_labels

        load_labels(path)

    def check_calendar(path: str) -> None:
        from rules.calendar import load_calendar

        load_calendar(path)

    return [
        FileKind("rule-test", _is_rule_test, check_test),
        FileKind("rules", _is_rule_file, check_rules),
        FileKind("replay-labels", _is_labels, check_labels),
        FileKind("holiday-calendar", _is_calendar, check_calendar),
    ]
