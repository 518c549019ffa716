"""Contract: `mqtts://user:pass@host:port` brokers. The shipped config against a TLS broker that requires a password.

The broker URL, with credentials, comes only from `QINGHE_BROKER` (the shipped config leaves its
`username`/`password` to unset environment variables); the private CA is named by `broker.ca_file`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from qinghe.localservers import LocalMosquitto, LocalVictoriaMetrics
from tests.contract.support import REPO, Program, Wire, base_env, now_ms, run_cli

pytestmark = pytest.mark.integration

USER, PASSWORD = "qa-user", "p@ss:w0rd"  # characters that must be percent-encoded in a URL
URL_PASSWORD = "p%40ss%3Aw0rd"
AVAILABILITY = "qh/v1/service/central/availability"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path) -> Path:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=qinghe-contract-ca", cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "san.cnf", cwd=folder)  # fmt: skip
    return folder


class SecureMosquitto(LocalMosquitto):
    """Mosquitto with only a TLS listener and a password file (no anonymous clients)."""

    def __init__(self, workdir: Path, certs: Path) -> None:
        super().__init__(workdir)
        self.certs = certs

    def command(self) -> list[str]:
        """Write the TLS config and the password file; return the command line."""
        passwords = self.workdir / "passwords"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), USER, PASSWORD], check=True)
        conf = self.workdir / "mosquitto-tls.conf"
        conf.write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    f"listener {self.port} 127.0.0.1",
                    f"cafile {self.certs / 'ca.crt'}",
                    f"certfile {self.certs / 'server.crt'}",
                    f"keyfile {self.certs / 'server.key'}",
                    "allow_anonymous false",
                    f"password_file {passwords}",
                    "persistence false",
                    "user root",
                    "",
                ]
            )
        )
        return [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)]


@dataclass
class Secure:
    """The TLS broker, the running `serve` and a TLS client with the right password."""

    broker: SecureMosquitto
    database: LocalVictoriaMetrics
    program: Program
    wire: Wire
    config: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, database: LocalVictoriaMetrics) -> Iterator[Secure]:
    """`qinghe serve` on a copy of the shipped config (plus `ca_file`) against the TLS broker."""
    root = tmp_path_factory.mktemp("secure")
    certs = _certificates(root / "certs")
    broker = SecureMosquitto(root / "mosquitto", certs)
    broker.start()
    config_dir = shutil.copytree(REPO / "config", root / "config", ignore=shutil.ignore_patterns("demo", "schema"))
    central = config_dir / "central.yaml"
    text = central.read_text()
    assert "  topic_prefix: qh\n" in text
    central.write_text(text.replace("  topic_prefix: qh\n", f"  topic_prefix: qh\n  ca_file: {certs / 'ca.crt'}\n"))
    env = base_env(
        QINGHE_BROKER=f"mqtts://{USER}:{URL_PASSWORD}@127.0.0.1:{broker.port}", QINGHE_INFLUX_URL=database.url
    )
    wire = Wire(broker.port, "qh/v1/#", ca_file=certs / "ca.crt", credentials=(USER, PASSWORD)).start()
    program = Program(["serve", "--config", str(central)], env, root / "serve.log").start()
    try:
        wire.wait_for(lambda w: any(m.payload == b"online" for m in w.on(AVAILABILITY)), 60, "serve online over TLS")
        yield Secure(broker, database, program, wire, central, env)
    finally:
        code = program.terminate()
        wire.stop()
        broker.stop()
    assert code == 0, program.log()[-2000:]


def test_the_broker_really_refuses_a_wrong_password(secure: Secure) -> None:
    refused: list[object] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="contract-intruder", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(secure.config.parent.parent / "certs" / "ca.crt"))
    client.username_pw_set(USER, "wrong")
    client.on_connect = lambda _c, _u, _f, rc, _p: refused.append(rc)
    client.connect("127.0.0.1", secure.broker.port)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not refused and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    assert refused, "no CONNACK"
    assert getattr(refused[0], "is_failure", False), f"a wrong password was accepted: {refused[0]}"


def test_serve_connects_with_the_urls_credentials_and_stores_readings(secure: Secure) -> None:
    ts = now_ms() - 1000
    secure.wire.publish("qh/v1/sensor/aq-sci-01/reading", json.dumps({"ts": ts, "values": {"pm25": 42.5}}))
    deadline = time.monotonic() + 20
    series: list[dict[str, object]] = []
    while not series and time.monotonic() < deadline:
        series = secure.database.export('{__name__="air_pm25",sensor="aq-sci-01"}')
        time.sleep(0.3)
    assert series, secure.program.log()[-2000:]
    assert series[0]["timestamps"] == [ts]
    assert PASSWORD not in secure.program.log()
    assert URL_PASSWORD not in secure.program.log()


def test_simulate_publishes_over_tls_with_the_same_environment(secure: Secure) -> None:
    result = run_cli(
        ["simulate", "sensors", "--sensors", "3", "--rate", "10", "--duration", "1", "--config", str(secure.config)],
        env=secure.env,
        timeout_s=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == {"valid": 10, "invalid": 0}
