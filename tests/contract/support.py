"""Black-box helpers: a raw MQTT observer and the real `qinghe` programs run as subprocesses.

Nothing here imports Qinghe's own code: the suite sees the system only as a user, a device or a
downstream system does (the broker, the database's HTTP API, the command line and its exit codes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

QINGHE = str(Path(sys.executable).parent / "qinghe")
"""The console script installed next to the interpreter running the tests (`.venv/bin/qinghe`)."""

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Seen:
    """One message as a subscriber saw it, with the QoS and retain flag it was published with."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class Wire:
    """A plain paho MQTT 5 client subscribed to a filter with QoS 2 and retain-as-published.

    Subscribing at QoS 2 means each message arrives with the QoS it was published with; retain-as-published
    keeps the publisher's retain flag on live messages, so both can be asserted on.
    """

    def __init__(
        self,
        port: int,
        topic_filter: str = "#",
        *,
        retained_only: bool = False,
        client_id: str | None = None,
        ca_file: Path | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.port = port
        self.topic_filter = topic_filter
        self.messages: list[Seen] = []
        self._retained_only = retained_only
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._persistent = client_id is not None  # a named client keeps its session across broker restarts
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"contract-{os.getpid()}-{time.time_ns()}",
            protocol=mqtt.MQTTv5,
        )
        self._client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]  # paho sleeps on floats
        if ca_file is not None:
            self._client.tls_set(ca_certs=str(ca_file))
        if credentials is not None:
            self._client.username_pw_set(*credentials)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, _rc: object, _p: object) -> None:
        client.subscribe(self.topic_filter, options=SubscribeOptions(qos=2, retainAsPublished=True))

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: object, _rc: object, _p: object) -> None:
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if self._retained_only and not msg.retain:
            return
        with self._cond:
            self.messages.append(Seen(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))
            self._cond.notify_all()

    def start(self) -> Wire:
        """Connect and wait for the SUBACK."""
        properties = None
        if self._persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 3600
        self._client.connect("127.0.0.1", self.port, clean_start=not self._persistent, properties=properties)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError(f"no SUBACK from the broker on port {self.port}")
        return self

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait for the broker's acknowledgement."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"publish to {topic} was not acknowledged"

    def on(self, topic_filter: str) -> list[Seen]:
        """Messages so far whose topic matches an MQTT filter (`+` and `#` allowed)."""
        with self._cond:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def wait_for(self, predicate: Callable[[Wire], Any], timeout_s: float = 15.0, what: str = "condition") -> Any:
        """Block until `predicate(self)` is truthy and return its value; fail naming `what` otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = predicate(self)
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                last = [m.topic for m in self.messages[-12:]]
                raise AssertionError(f"{what}: not within {timeout_s} s; last topics seen: {last}")
            with self._cond:
                self._cond.wait(min(left, 0.25))


def retained(port: int, topic_filter: str, settle_s: float = 1.0) -> dict[str, bytes]:
    """What a new subscriber receives as retained messages on `topic_filter` (topic -> payload)."""
    wire = Wire(port, topic_filter, retained_only=True).start()
    time.sleep(settle_s)
    wire.stop()
    return {m.topic: m.payload for m in wire.messages}


def run_cli(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout_s: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `qinghe ARGS...` to completion and return its exit code and output."""
    return subprocess.run(
        [QINGHE, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=dict(env) if env is not None else None,
        cwd=cwd,
    )


class Program:
    """A long-running `qinghe` verb (serve, edge) as a child process, with its log in a file."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Program:
        """Start the process; output (both streams) is appended to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([QINGHE, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        """Everything the process has printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL if it does not stop in time)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"qinghe {self.args[0]} did not stop on SIGTERM within {timeout_s} s") from None
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


def base_env(**extra: str) -> dict[str, str]:
    """The test process environment without inherited QINGHE_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QINGHE_")}
    env.update(extra)
    return env


def rfc3339(text: object) -> float:
    """Parse an RFC 3339 timestamp as we publish it; fails the test if it is not one (with an offset)."""
    assert isinstance(text, str), f"timestamp {text!r} is not an RFC 3339 string"
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"timestamp {text!r} has no offset"
    return parsed.timestamp()


def now_ms() -> int:
    """Epoch milliseconds now."""
    return int(time.time() * 1000)
