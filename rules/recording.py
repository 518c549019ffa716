"""Recorded MQTT traffic: `qinghe record` writes compressed JSONL; replays and golden tests read it.

One JSON object per line: `{"t": epoch seconds received, "topic", "payload": text, "enc": "text"|"base64",
"retain": bool}`. The first line is a header `{"qinghe_recording": 1, ...}`. Readers also accept
`payload` as a JSON object and `t` as an RFC 3339 string, which keeps hand-written files readable.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from qinghe.bus import InboundMessage, MqttBus
from qinghe.codec import payload_text
from qinghe.config import BrokerConfig
from qinghe.timefmt import parse_timestamp

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded message."""

    t: float
    topic: str
    payload: bytes
    retain: bool = False


def default_topics(prefix: str) -> list[str]:
    """What the rules engine reads, plus the signals it wrote (for comparison)."""
    root = f"{prefix.strip('/')}/v1"
    return [f"{root}/sensor/+/reading", f"{root}/camera/+/event", f"{root}/camera/+/status", f"{root}/rules/signal/+"]


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


class RecordingWriter:
    """Appends records to a (gzip) JSONL file from any thread."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _open(self.path, "w")
        self._file.write(json.dumps({"qinghe_recording": FORMAT_VERSION, **header}) + "\n")
        self._lock = threading.Lock()
        self.count = 0

    def write(self, record: Record) -> None:
        """Append one record."""
        text, enc = payload_text(record.payload)
        line = {"t": round(record.t, 6), "topic": record.topic, "payload": text, "enc": enc, "retain": record.retain}
        with self._lock:
            self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.count += 1

    def close(self) -> None:
        """Flush and close."""
        with self._lock:
            self._file.close()


def read_recording(path: str | Path) -> Iterator[Record]:
    """Records in file order (the header and blank lines are skipped); ValueError names a bad line."""
    with _open(Path(path), "r") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield parse_line(json.loads(line))
            except _Skip:
                continue
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a recording line: {exc}") from None


class _Skip(Exception):  # noqa: N818 - control flow for header lines
    pass


def parse_line(data: Any) -> Record:
    """One JSON line -> Record."""
    if not isinstance(data, dict):
        raise TypeError("a line must be a JSON object")
    if "qinghe_recording" in data:
        raise _Skip
    raw_t = data["t"]
    t = parse_timestamp(raw_t) if isinstance(raw_t, str) else float(raw_t)
    payload = data.get("payload", "")
    if isinstance(payload, dict | list):
        body = json.dumps(payload, ensure_ascii=False).encode()
    elif data.get("enc") == "base64":
        body = base64.b64decode(payload)
    else:
        body = str(payload).encode()
    return Record(t, str(data["topic"]), body, bool(data.get("retain", False)))


def record(
    broker: BrokerConfig, out: Path, topics: list[str], duration_s: float | None, stop: threading.Event | None = None
) -> int:
    """Subscribe and write everything received until `duration_s` passes or `stop` is set; returns the count."""
    stop = stop or threading.Event()
    writer = RecordingWriter(out, {"broker": broker.redacted_url(), "topics": topics, "started": time.time()})
    pending: queue.SimpleQueue[Record | None] = queue.SimpleQueue()

    def on_message(message: InboundMessage) -> None:
        pending.put(Record(message.received_at, message.topic, message.payload, message.retain))

    bus = MqttBus(broker, f"qinghe-record-{os.getpid()}", clean_start=True)
    for topic in topics:
        bus.subscribe(topic, on_message)
    bus.start(wait_s=10)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            _drain(pending, writer, timeout=0.2)
    finally:
        bus.stop()
        _drain(pending, writer, timeout=0.0)
        writer.close()
    return writer.count


def _drain(pending: queue.SimpleQueue[Record | None], writer: RecordingWriter, timeout: float) -> None:
    try:
        item = pending.get(timeout=timeout) if timeout else pending.get_nowait()
    except queue.Empty:
        return
    while item is not None:
        writer.write(item)
        try:
            item = pending.get_nowait()
        except queue.Empty:
            return
