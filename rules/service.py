"""The rules service: camera events (and readings when alone) in, RuleSignals out; thin wiring around the engine.

- readings arrive in-process from ingest (`handle_reading`) or, running alone, on `sensor/+/reading`;
- camera events on `camera/+/event` are deduplicated by event id (edge outboxes replay);
- a timer runs `for:` timers, silent-sensor gaps and windows as time passes, reloads changed rule
  files, checkpoints the engine and publishes fatigue stats;
- signals go to `on_signal` in-process, or through a durable outbox to `rules/signal/{rule_id}`;
- MQTT input is read in bursts: the burst's signals and dead letters are committed in one transaction,
  then its messages are acknowledged in one write (`bus.ack_many`).
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qinghe.bus import Availability, InboundMessage, MqttBus
from qinghe.central_config import CentralConfig
from qinghe.clock import Clock
from qinghe.codec import dead_letter, encode
from qinghe.contracts import ObjectEvent, RuleSignal, SensorReading
from qinghe.errors import RetryableError
from qinghe.outbox import Outbox, OutboxEntry
from qinghe.topics import Topics
from rules.engine import Engine, Input
from rules.inputs import Ignored, InputDecoder, Rejected
from rules.registry import Registry
from rules.reload import RuleWatcher
from rules.shards import Shard, WorkerPool, plan, restrict
from rules.stats import FatigueStats
from rules.store import EventDedupe, StateStore

log = logging.getLogger(__name__)

STAGE = "rules"
SOON_S = 1.0  # checkpoint this soon after a signal
CHUNK = 100  # instances a checkpoint serializes per hold of the engine lock (a few ms)
GC_GEN0 = 5_000  # allocations between young-generation collections (CPython's default is 700)
SWITCH_INTERVAL_S = 0.001  # longest a busy thread keeps the interpreter from another (CPython's default: 5 ms)


def tune_runtime() -> None:
    """Interpreter settings for a service that holds many long-lived objects and must answer quickly.

    - Rule state is ~20 long-lived objects per instance: with CPython's default thresholds, creating
      20,000 instances triggers several full collections, each walking every object in the process (a
      sixth of the CPU of a drain, and pauses of 80-300 ms). Everything alive at start (configuration,
      rules, registry, restored state) is frozen, so later collections skip it, and the young-generation
      threshold is raised to 5,000 (never lowered): fewer collections, each still only a few ms (20,000
      made the middle generation's collections take 60-80 ms).
    - While a background thread (a checkpoint) computes, the network thread waited up to 5 ms for the
      interpreter at each hand-over; the switch interval is lowered to 1 ms (never raised).
    """
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0 < GC_GEN0:
        gc.set_threshold(GC_GEN0, gen1, gen2)
    gc.freeze()
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


def merge_registry_files(config: CentralConfig, config_dir: Path) -> CentralConfig:
    """The config with ingest's extra sensor registry files merged in (when ingest is installed)."""
    try:
        from ingest.registry import load_registry_files
    except ImportError:
        return config
    return load_registry_files(config, config_dir)


class RulesService:
    """Runs the rule engine against live traffic, durable and hot-reloadable."""

    def __init__(
        self,
        config: CentralConfig,
        config_dir: Path,
        clock: Clock,
        on_signal: Callable[[RuleSignal], None] | None = None,
        subscribe_readings: bool = False,
        *,
        shard: Shard | None = None,
    ) -> None:
        self.config = config = merge_registry_files(config, Path(config_dir))
        self.settings = settings = config.rules
        self.clock = clock
        self.on_signal = on_signal
        self.shard = shard
        self.topics = Topics(config.broker.topic_prefix)
        self.registry = Registry.from_central(config)
        files = [config.resolve(config_dir, name) for name in settings.files]
        self.watcher = RuleWatcher(files, self.registry)
        ruleset = self.watcher.load(clock.now())  # a broken file fails the start
        self.pool: WorkerPool | None = None
        if shard is None and settings.workers > 1 and subscribe_readings and on_signal is None:
            self.pool = WorkerPool(config, Path(config_dir), plan(self.registry, ruleset, settings.workers))
            return  # this process only supervises the workers
        if shard is None and settings.workers > 1:
            log.warning("rules.workers=%d ignored: readings arrive in-process from ingest", settings.workers)
        own = restrict(self.registry, shard) if shard is not None else self.registry
        self.engine = Engine(ruleset, own)
        self._wire(config, Path(config_dir), subscribe_readings)

    def _wire(self, config: CentralConfig, config_dir: Path, subscribe_readings: bool) -> None:
        settings, suffix = config.rules, f".{self.shard.name}" if self.shard else ""
        state_dir = config.resolve(config_dir, config.state_dir)
        self.store = StateStore(state_dir / (settings.state_file + suffix))
        self._replace_checkpoint = False  # the next checkpoint rewrites every instance
        self._restore()
        self.dedupe = EventDedupe(self.store, settings.event_dedupe_ttl_s, settings.event_dedupe_max)
        self.stats = FatigueStats()
        self.decoder = InputDecoder(config, self.topics)
        name = f"{config.service_id}-rules" + (f"-{self.shard.name}" if self.shard else "")
        availability = Availability(self.topics.build("service_availability", service=name))
        self.bus = MqttBus(
            config.broker, name, availability=availability, manual_ack=True, bulk_read=True,
            protocol=5 if settings.mqtt_protocol == "5" else 4,
        )  # fmt: skip
        self.bus.on_burst_end(self._end_burst)
        self.bus.on_connection_change(self._on_connection)
        self.outbox = Outbox(state_dir / (settings.outbox_file + suffix), self.bus)
        self._lock = threading.RLock()
        self._out: list[OutboxEntry] = []  # signals and dead letters not yet committed
        self._unacked: list[InboundMessage] = []  # processed this burst, acknowledged once _out is committed
        self._stop = threading.Event()
        self._kick = threading.Event()  # set when the timer must look again before its sleep ends
        self._timer: threading.Thread | None = None
        self._timer_until = 0.0
        now = self.clock.now()
        self._next_reload = now + settings.reload_interval_s
        self._next_checkpoint = now + settings.checkpoint_interval_s
        self._next_stats = now + settings.stats_interval_s
        self._status_dirty = True
        self.first_input_at: float | None = None
        self.last_input_at: float | None = None
        self._subscribe(subscribe_readings)

    def _subscribe(self, subscribe_readings: bool) -> None:
        t = self.topics
        if self.shard is None:
            self.bus.subscribe(t.filter("camera_event"), self._on_message)
            self.bus.subscribe(t.filter("camera_status"), self._on_message)
            if subscribe_readings:
                self.bus.subscribe(t.filter("sensor_reading"), self._on_message)
            return
        for camera in sorted(self.shard.cameras):  # a worker takes only what it owns
            self.bus.subscribe(t.build("camera_event", camera_id=camera), self._on_message)
            self.bus.subscribe(t.build("camera_status", camera_id=camera), self._on_message)
        for sensor in sorted(self.shard.sensors):
            self.bus.subscribe(t.sensor_reading(sensor), self._on_message)

    # ----- lifecycle -------------------------------------------------------------------------------
    def start(self, wait_s: float = 10.0) -> None:
        """Start the outbox and the timer, then connect (retrying in the background if the broker is down)."""
        if self.pool is not None:
            self.pool.start()
            return
        tune_runtime()
        self.outbox.start()
        self.tick()  # timers that fell due while the service was down fire now, at their deadlines
        self._timer = threading.Thread(target=self._run_timer, name="rules-timer", daemon=True)
        self._timer.start()
        try:
            self.bus.start(wait_s=wait_s)
        except RetryableError as exc:
            log.warning("%s; signals are buffered in the outbox meanwhile", exc)
        self._publish_status()

    def stop(self, flush_s: float = 5.0) -> None:
        """Stop taking input and the timer, checkpoint, flush the outbox, disconnect."""
        if self.pool is not None:
            self.pool.stop()
            return
        self._stop.set()  # messages arriving from now on stay unacknowledged: the broker redelivers them
        self._kick.set()
        if self._timer is not None:
            self._timer.join(timeout=5)
        with self._lock:
            self.checkpoint()
            self._end_burst()  # what was processed is committed and acknowledged
        if self.bus.connected:
            self.outbox.flush(flush_s)
        self.outbox.stop()
        self.bus.stop()
        self.store.close()

    # ----- inputs ----------------------------------------------------------------------------------
    def handle_reading(self, reading: SensorReading) -> None:
        """A validated reading from ingest (thread-safe); its signals are committed before it returns."""
        if self.pool is not None:
            raise RuntimeError("this rules service runs worker processes that read from MQTT")
        with self._lock:
            self._step(reading)
            self._commit()

    def handle_event(self, event: ObjectEvent) -> bool:
        """A camera event (deduplicated by event_id); False if it was a replay already processed."""
        with self._lock:
            new = self._event(event)
            self._commit()
            return new

    def _event(self, event: ObjectEvent) -> bool:
        now = self.clock.now()
        if self.dedupe.seen(event.event_id):
            self.engine.counters["events_duplicate"] += 1
            return False
        self._step(event)
        self.dedupe.first_time(event.event_id, now)
        return True

    def _on_message(self, message: InboundMessage) -> None:
        """Decode and process; the acknowledgement waits for the end of the burst, when the burst's
        signals and dead letters are committed. One still unacked when we stop is redelivered."""
        if self._stop.is_set():
            return
        now = self.clock.now()
        # a retained reading comes back on every resubscribe: like a redelivery, it is not new
        decoded = self.decoder.decode(message.topic, message.payload, now, message.dup or message.retain)
        with self._lock:
            if isinstance(decoded, SensorReading):  # the busy case first
                self._step(decoded)
            elif isinstance(decoded, Rejected):
                self._dead_letter(message, decoded.reason)
            elif isinstance(decoded, ObjectEvent):
                self._event(decoded)
            elif not isinstance(decoded, Ignored):
                self._step(decoded)
            self._unacked.append(message)

    def _end_burst(self) -> None:
        """Network thread, after each burst: one commit for its signals and dead letters, one ack write."""
        with self._lock:
            try:
                self._commit()
            except Exception:  # the signals stay queued; the messages stay unacked until a commit works
                log.exception("committing %d signals and dead letters failed", len(self._out))
                return
            if self._unacked:
                messages, self._unacked = self._unacked, []
                self.bus.ack_many(messages)

    def _commit(self) -> None:
        """Commit the queued signals and dead letters to the outbox (one transaction); kept if it fails."""
        if self._out:
            self.outbox.put_many(self._out)
            self._out = []

    def _on_connection(self, connected: bool) -> None:
        if not connected:  # packet ids of the lost connection are void: the broker redelivers those (DUP)
            with self._lock:
                self._unacked.clear()

    def _step(self, item: Input) -> None:
        with self._lock:
            now = self.clock.now()
            if self.first_input_at is None:
                self.first_input_at = now
            self.last_input_at = now
            signals = self.engine.step(item, now)
            if signals:
                self._emit(signals)
            wake = self.engine.next_wakeup()
            if wake is not None and wake < self._timer_until:
                self._kick.set()  # a deadline earlier than the timer's sleep: wake it

    def _dead_letter(self, message: InboundMessage, reason: str) -> None:
        log.warning("rejected %s: %s", message.topic, reason)
        letter = dead_letter(message.topic, message.payload, reason, self.clock.now(), STAGE)
        self._out.append(OutboxEntry(self.topics.deadletter(STAGE), encode(letter)))

    def _emit(self, signals: list[RuleSignal]) -> None:
        for signal in signals:
            self.stats.observe(signal)
            log.info(
                "%s %s %s %s: %s", signal.rule_id, signal.status.value, signal.colour.value, signal.dedup_key,
                signal.message,
            )  # fmt: skip
        if self.on_signal is not None:
            for signal in signals:
                try:
                    self.on_signal(signal)
                except Exception:  # alerting's problem must not stop the rules; it dedupes replays by id
                    log.exception("on_signal failed for %s", signal.signal_id)
        else:
            build = self.topics.build
            self._out += [OutboxEntry(build("rule_signal", rule_id=s.rule_id), encode(s)) for s in signals]
        self._next_checkpoint = min(self._next_checkpoint, self.clock.now() + SOON_S)

    # ----- time ------------------------------------------------------------------------------------
    def _run_timer(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the timer must keep running; the error is logged with context
                log.exception("rules timer tick failed")
            with self._lock:
                wake = self.engine.next_wakeup()
                now = self.clock.now()
                delay = (
                    self.settings.tick_max_s if wake is None else min(self.settings.tick_max_s, max(0.0, wake - now))
                )
                self._timer_until = now + delay
                self._kick.clear()
            self._kick.wait(delay)

    def tick(self) -> None:
        """Let time pass: due timers, then reload, checkpoint and stats when they are due."""
        with self._lock:
            now = self.clock.now()
            signals = self.engine.advance(now)
            if signals:
                self._emit(signals)
                self._commit()
            if now >= self._next_reload:
                self._next_reload = now + self.settings.reload_interval_s
                self.reload(now)
            checkpoint_due = now >= self._next_checkpoint
            if now >= self._next_stats:
                self._next_stats = now + self.settings.stats_interval_s
                self._publish_stats()
        if checkpoint_due:
            self.checkpoint()  # outside the lock: it takes it a chunk at a time
        if self._status_dirty and self.bus.connected:
            self._publish_status()

    def reload(self, now: float) -> bool:
        """Reload changed rule files; True if a new rule set was swapped in."""
        before = self.watcher.status.attempted_at
        ruleset = self.watcher.poll(now)
        if self.watcher.status.attempted_at != before:
            self._status_dirty = True
        if ruleset is None:
            return False
        with self._lock:
            signals = self.engine.swap(ruleset, now)
            if signals:
                self._emit(signals)
                self._commit()
        return True

    def checkpoint(self) -> None:
        """Save what changed since the last checkpoint. Changed instances are serialized CHUNK at a time
        under the lock (queued signals are committed first, so saved state is never ahead of them), and
        written in one transaction outside it: readings keep flowing while a checkpoint is taken."""
        changes, batches = self.engine.changes, []
        with self._lock:
            replace, self._replace_checkpoint = self._replace_checkpoint, False
            if replace:
                changes.touch_all(self.engine.instances)
            rounds = changes.pending() // CHUNK + 1  # what changes meanwhile waits for the next checkpoint
        for _ in range(rounds):
            with self._lock:
                self._commit()
                batches.append(changes.take(self.engine.instances, CHUNK))
        with self._lock:
            now = self.clock.now()
            meta = self.engine.snapshot_meta()
            self._next_checkpoint = now + self.settings.checkpoint_interval_s
        try:
            rows = self.store.save_changes(batches, meta, now, replace=replace)
        except Exception:
            with self._lock:
                self._replace_checkpoint = True  # what was taken is not on disk: the next one saves everything
            raise
        log.debug("checkpoint saved (%d instances changed)", rows)

    def _restore(self) -> None:
        data = self.store.load_checkpoint()
        if data is None:
            return
        try:
            self.engine.restore(data["engine"])
        except (KeyError, ValueError, TypeError) as exc:
            log.error("checkpoint unusable (%s); starting with empty rule state", exc)
            self.engine = Engine(self.engine.ruleset, self.registry)
            self._replace_checkpoint = True
            return
        self._replace_checkpoint = bool(data.get("legacy"))  # rewritten row by row at the next checkpoint
        log.info("restored rule state: %s instances", sum(len(v) for v in self.engine.instances.values()))

    # ----- reporting -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What `rules/status` carries: the active rules, the last reload attempt, engine counters."""
        with self._lock:
            return {
                **self.watcher.status.to_json(),
                "at": self.clock.now(),
                "instances": self.engine.summary(),
                "counters": dict(self.engine.counters),
                "events_remembered": len(self.dedupe),
                "outbox_depth": self.outbox.depth(),
            }

    def _publish_status(self) -> None:
        if self.shard is not None and self.shard.index > 0:
            return  # every worker loads the same files; the first one speaks for all
        topic = self.topics.build("rules_status")
        self.bus.publish(topic, json.dumps(self.status(), ensure_ascii=False), retain=True)
        self._status_dirty = False

    def _publish_stats(self) -> None:
        payload = self.stats.summary(self.clock.now())
        payload["instances"] = self.engine.summary()
        payload["counters"] = dict(self.engine.counters)
        payload["first_input_at"], payload["last_input_at"] = self.first_input_at, self.last_input_at
        topic = self.topics.build("rules_stats") + (f"/{self.shard.name}" if self.shard else "")
        self.bus.publish(topic, json.dumps(payload, ensure_ascii=False), retain=True)
