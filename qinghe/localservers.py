"""Start real local servers (Mosquitto, VictoriaMetrics) on free loopback ports for the demo, benches and tests."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from qinghe.errors import QingheError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise QingheError(f"nothing listening on {LOOPBACK}:{port} after {timeout_s} s")


def _require(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise QingheError(f"{binary} is not installed (run `make setup` or see the README)")
    return path


class LocalServer:
    """A child process serving on a loopback port, restartable on the same port and data dir."""

    name = "server"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line that runs the server."""
        raise NotImplementedError

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it accepts connections."""
        log = (self.workdir / f"{self.name}.stdout.log").open("ab")
        self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        try:
            wait_for_port(self.port, timeout_s)
        except QingheError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port and data."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class LocalMosquitto(LocalServer):
    """Mosquitto with persistence in its own directory, so sessions and queued messages survive restarts."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, max_inflight: int = 20) -> None:
        super().__init__(workdir, port)
        self.max_inflight = max_inflight

    @property
    def url(self) -> str:
        """mqtt:// URL of this broker."""
        return f"mqtt://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        """Write the config and return the mosquitto command line."""
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    f"listener {self.port} {LOOPBACK}",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {data}/",
                    "autosave_interval 1",
                    f"log_dest file {self.workdir}/mosquitto.log",
                    "max_queued_messages 1000000",
                    "max_queued_bytes 0",
                    f"max_inflight_messages {self.max_inflight}",
                    "message_size_limit 10485760",
                    "user root",
                    "",
                ]
            )
        )
        return [_require("mosquitto"), "-c", str(conf)]


class LocalVictoriaMetrics(LocalServer):
    """VictoriaMetrics: a real InfluxDB v2 write path (`/api/v2/write`), read back over its HTTP API."""

    name = "victoria-metrics"

    @property
    def url(self) -> str:
        """http:// URL to give influxdb-client."""
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        """The victoria-metrics command line."""
        return [
            _require("victoria-metrics"),
            f"-storageDataPath={self.workdir / 'data'}",
            f"-httpListenAddr={LOOPBACK}:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def start(self, timeout_s: float = 10.0) -> None:
        """Start and wait for /health."""
        super().start(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise QingheError("victoria-metrics did not become healthy")

    def force_flush(self) -> None:
        """Make freshly written points queryable at once."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass

    def export(self, match: str) -> list[dict[str, Any]]:
        """All series matching a selector, e.g. `{__name__=~"air_.*"}`, as dicts with metric/values/timestamps."""
        self.force_flush()
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=30) as resp:
            body = resp.read().decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def count_samples(self, match: str) -> int:
        """Total samples stored across all series matching `match`."""
        return sum(len(series["values"]) for series in self.export(match))
