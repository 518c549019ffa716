"""The ingest service: MQTT readings -> validator -> disk buffer (group commit, then ack) -> InfluxDB."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ingest.buffer import DiskBuffer
from ingest.committer import Committer
from ingest.dedup import DedupState
from ingest.registry import compile_registry, load_registry_files
from ingest.sink import Backoff, InfluxWriter, PointWriter, SinkWorker
from ingest.validate import Limits, Rejection, Validator
from qinghe.bus import InboundMessage, MqttBus
from qinghe.central_config import CentralConfig
from qinghe.clock import Clock
from qinghe.codec import dead_letter, encode
from qinghe.contracts import SensorReading
from qinghe.outbox import Outbox, OutboxEntry
from qinghe.topics import Topics

log = logging.getLogger(__name__)

STAGE = "ingest"


class IngestService:
    """Subscribes to `sensor/+/reading` (QoS 1, persistent session, manual ack) and stores every valid reading.

    A message is acknowledged only after its reading is committed to the disk buffer, or its dead
    letter to the dead-letter outbox. The sink thread writes the buffer to the database and deletes
    rows only after the database accepted them. `on_reading` sees each valid, new reading once
    it is committed (the rules engine hooks in here).
    """

    def __init__(
        self,
        config: CentralConfig,
        config_dir: Path,
        clock: Clock,
        on_reading: Callable[[SensorReading], None] | None = None,
        *,
        writer: PointWriter | None = None,
    ) -> None:
        self.config = config = load_registry_files(config, Path(config_dir))
        self.clock = clock
        settings = config.ingest
        state_dir = config.resolve(config_dir, config.state_dir)
        self.topics = Topics(config.broker.topic_prefix)
        self._deadletter_topic = self.topics.deadletter(STAGE)
        self.bus = MqttBus(
            config.broker,
            f"{config.service_id}-ingest",
            manual_ack=True,
            receive_maximum=settings.receive_maximum,
            protocol=5 if settings.mqtt_protocol == "5" else 4,
        )
        self.buffer = DiskBuffer(state_dir / settings.buffer_path, sync=settings.buffer_sync)
        registry = compile_registry(config.sensors)
        evicted = self.buffer.forget_sensors(registry)  # dedup state of sensors that left the registry
        if evicted:
            log.info("forgot the dedup state of %d sensors no longer in the registry", evicted)
        persisted = self.buffer.load_dedup()
        dedup = DedupState(persisted)
        limits = Limits(settings.max_payload_bytes, settings.max_future_skew_s, settings.max_age_s)
        self.validator = Validator(registry, self.topics.root, limits, dedup)
        self.outbox = Outbox(state_dir / settings.deadletter_path, self.bus)
        self.sink = SinkWorker(
            self.buffer,
            writer if writer is not None else InfluxWriter(config.influx),
            self._reject_point,
            batch_size=config.influx.batch_size,
            flush_interval_s=config.influx.flush_interval_ms / 1000.0,
            backoff=Backoff(settings.retry_min_s, settings.retry_max_s),
        )
        self.committer = Committer(
            self.buffer,
            self._write_dead_letters,
            self.bus.ack_many,
            lambda: self._generation,
            on_reading=on_reading,
            on_committed=self.sink.notify,
            committed=DedupState(persisted),
            max_batch=settings.commit_max_batch,
            max_rows=settings.buffer_max_rows,
        )
        self._generation = 0
        self._accepting = False
        self.bus.on_connection_change(self._on_connection)
        self.bus.subscribe(self.topics.filter("sensor_reading"), self._on_message, qos=1)

    # ----- lifecycle -------------------------------------------------------------------------------
    def start(self, wait_s: float | None = None) -> None:
        """Start the sink, the committer and the dead-letter pump, then connect (retrying in the background)."""
        log.info(
            "ingest: %d sensors in the registry, %d points in the disk buffer, dedup state for %d sensors",
            len(self.validator.registry),
            self.buffer.depth,
            len(self.validator.dedup),
        )
        self.outbox.start()
        self.sink.start()
        self.committer.start()
        self._accepting = True
        self.bus.start(wait_s=wait_s)

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Block until connected and subscribed (best effort: SUBACK is not surfaced by the bus)."""
        if not self.bus.wait_connected(timeout_s):
            return False
        time.sleep(0.2)
        return True

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop taking messages, commit and ack what is queued, flush the buffer (bounded), disconnect."""
        self._accepting = False  # later deliveries stay unacknowledged and come back after a restart
        self.committer.stop()
        self.sink.stop(flush_timeout_s)
        if not self.outbox.flush(min(flush_timeout_s, 2.0)):
            log.warning("%d dead letters stay in the outbox until the next start", self.outbox.depth())
        self.outbox.stop()
        self.bus.stop()
        self.buffer.close()
        log.info("ingest stopped: %s", self.stats())

    def stats(self) -> dict[str, int]:
        """Counters: stored, rejected, redelivered, written to the database, buffered, ..."""
        c, s = self.committer.stats, self.sink.stats
        return {
            "stored": c.stored,
            "rejected": c.rejected,
            "redelivered": c.redelivered,
            "commits": c.commits,
            "acked": c.acked,
            "stale_acks_skipped": c.stale_acks_skipped,
            "written": s.written,
            "write_failures": s.failures,
            "db_rejected": s.dead_lettered,
            "buffered": self.buffer.depth,
            "queued": self.committer.pending(),
        }

    # ----- network thread --------------------------------------------------------------------------
    def _on_connection(self, connected: bool) -> None:
        if connected:
            self._generation += 1

    def _on_message(self, message: InboundMessage) -> None:
        if not self._accepting:
            return
        # A retained reading comes back on every resubscribe: treat it like a redelivery.
        outcome = self.validator.check(message.topic, message.payload, self.clock.now(), message.dup or message.retain)
        self.committer.submit(message, self._generation, outcome)

    # ----- dead letters ----------------------------------------------------------------------------
    def _write_dead_letters(self, rejected: Sequence[tuple[InboundMessage, Rejection]]) -> None:
        now = self.clock.now()
        entries = [
            OutboxEntry(self._deadletter_topic, encode(dead_letter(m.topic, m.payload, str(r), now, STAGE)))
            for m, r in rejected
        ]
        self.outbox.put_many(entries)
        for message, rejection in rejected[:3]:
            log.debug("rejected %s: %s", message.topic, rejection)

    def _reject_point(self, line: str, reason: str) -> None:
        letter = dead_letter(
            f"influx:{self.config.influx.bucket}", line.encode(), f"db_rejected: {reason}", self.clock.now(), STAGE
        )
        self.outbox.put(OutboxEntry(self._deadletter_topic, encode(letter)))
