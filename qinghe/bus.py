"""MQTT bus adapter on paho-mqtt 2.x: persistent session, QoS 1, backoff reconnect, last will, safe callbacks."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from qinghe.config import BrokerConfig
from qinghe.errors import RetryableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message as received: topic, raw payload, QoS, retain flag, and the mid needed to ack it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    received_at: float = field(default_factory=time.time)
    dup: bool = False  # MQTT DUP flag: the broker is redelivering a message it sent before


class PublishHandle:
    """Tracks one publish until the broker acknowledges it (PUBACK for QoS 1)."""

    __slots__ = ("_info",)

    def __init__(self, info: mqtt.MQTTMessageInfo) -> None:
        self._info = info

    @property
    def mid(self) -> int:
        """The MQTT packet id."""
        return int(self._info.mid)

    def is_published(self) -> bool:
        """True once the broker acknowledged the message.

        paho's own is_published() raises for messages queued while disconnected (rc NO_CONN), even
        after they were sent and acknowledged on reconnect, so read the flag it sets on PUBACK.
        """
        return bool(self._info._published)

    def wait(self, timeout_s: float) -> bool:
        """Block until acknowledged or `timeout_s` passes; returns whether it was acknowledged."""
        with self._info._condition:
            self._info._condition.wait_for(lambda: bool(self._info._published), timeout_s)
        return self.is_published()


Handler = Callable[[InboundMessage], None]
PublishedHook = Callable[[int], None]
ConnectionHook = Callable[[bool], None]
BurstHook = Callable[[], None]

MAX_BURST = 1000  # packets handled per network-loop pass before writes, keepalive and the burst hooks run


class _BufferedSocket:
    """A socket whose reads are served from one large `recv`.

    paho reads each packet with three tiny `recv` calls (type, length, body) and goes back to `select`
    between packets; from a buffer, a burst of packets costs one system call. `pending()` is the hook
    paho already uses for TLS sockets: while it is non-zero paho does not wait in `select`.
    """

    __slots__ = ("_buf", "_pos", "raw")

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw  # a TCP socket, or an ssl.SSLSocket (a subclass)
        self._buf = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes; raises BlockingIOError like the socket when nothing is there."""
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if available == 0:
            buf = self.raw.recv(max(size, 65536))
            if not buf:
                return buf  # the connection closed
            pos, available = 0, len(buf)
            self._buf = buf
        if size >= available:
            self._buf, self._pos = b"", 0
            return buf[pos:] if pos else buf
        self._pos = pos + size
        return buf[pos : pos + size]

    def pending(self) -> int:
        """Bytes already read from the kernel (and, for TLS, decrypted) but not yet handed to paho."""
        inner = getattr(self.raw, "pending", None)
        return len(self._buf) - self._pos + (int(inner()) if inner is not None else 0)

    def send(self, data: bytes | bytearray) -> int:
        """Write to the socket."""
        return self.raw.send(data)

    def fileno(self) -> int:
        """The socket's descriptor (for `select`)."""
        return self.raw.fileno()

    def setblocking(self, flag: bool) -> None:
        """Passed to the socket."""
        self.raw.setblocking(flag)

    def close(self) -> None:
        """Close the socket and drop what is buffered."""
        self._buf, self._pos = b"", 0
        self.raw.close()


class _Client(mqtt.Client):
    """paho's client, optionally reading bursts: every packet already received is handled in one pass,
    then the burst hook runs once (where a consumer commits and acknowledges the burst together)."""

    def __init__(self, *args: Any, bulk_read: bool, on_burst_end: BurstHook, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bulk_read = bulk_read
        self._on_burst_end = on_burst_end

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return _BufferedSocket(sock) if self._bulk_read and isinstance(sock, socket.socket) else sock

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle the packets that have arrived (all of them, up to MAX_BURST, when reading in bulk)."""
        rc = self._read_burst() if isinstance(self._sock, _BufferedSocket) else super().loop_read(max_packets)
        self._on_burst_end()
        return rc

    def _read_burst(self) -> MQTTErrorCode:
        for _ in range(MAX_BURST):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break  # nothing more has arrived
        return MQTTErrorCode.MQTT_ERR_SUCCESS


@dataclass(frozen=True, slots=True)
class Availability:
    """A retained availability topic: `online` after connect, `offline` as last will and on clean stop."""

    topic: str
    online: bytes = b"online"
    offline: bytes = b"offline"


class MqttBus:
    """One MQTT connection shared by a service's stages.

    - persistent session (clean start off, fixed client id), so QoS 1 messages sent while the
      service is down are delivered when it returns;
    - reconnects with exponential backoff and re-subscribes every filter on each connect;
    - `manual_ack=True` lets a consumer acknowledge only once a message is safely stored;
    - `bulk_read=True` reads the socket in large chunks and handles every packet that has arrived in
      one pass; with `on_burst_end` a consumer group-commits and acknowledges (`ack_many`) per burst;
    - an exception in a handler is logged and never kills paho's network thread.
    """

    def __init__(
        self,
        config: BrokerConfig,
        client_id: str,
        *,
        availability: Availability | None = None,
        manual_ack: bool = False,
        clean_start: bool = False,
        max_inflight: int = 1000,
        receive_maximum: int = 65535,
        protocol: int = 5,
        bulk_read: bool = False,
    ) -> None:
        self.config = config
        self.client_id = config.client_id or client_id
        self.availability = availability
        self.manual_ack = manual_ack
        self._clean_start = clean_start
        self._receive_maximum = receive_maximum
        if protocol not in (4, 5):
            raise ValueError(f"MQTT protocol must be 5 or 4 (3.1.1), got {protocol}")
        self._protocol = protocol  # 4 = MQTT 3.1.1: no session expiry or Receive Maximum, cheaper to receive
        self._subscriptions: dict[str, int] = {}
        self._published_hooks: list[PublishedHook] = []
        self._connection_hooks: list[ConnectionHook] = []
        self._burst_hooks: list[BurstHook] = []
        self._bulk_read = bulk_read
        self._connected = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._client = self._make_client(max_inflight)

    # ----- setup -----------------------------------------------------------------------------------
    def _make_client(self, max_inflight: int) -> mqtt.Client:
        v311 = {"clean_session": self._clean_start} if self._protocol == 4 else {}
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if self._protocol == 5 else mqtt.MQTTv311,
            manual_ack=self.manual_ack,
            bulk_read=self._bulk_read,
            on_burst_end=self._burst_end,
            **v311,
        )
        user, password = self.config.credentials()
        if user is not None:
            client.username_pw_set(user, password)
        if self.config.tls:
            context = ssl.create_default_context(cafile=self.config.ca_file)
            if self.config.tls_insecure:
                context.check_hostname = False
            client.tls_set_context(context)
        if self.availability is not None:
            client.will_set(self.availability.topic, self.availability.offline, qos=1, retain=True)
        # paho annotates ints but sleeps on floats; sub-second backoff matters for fast failover.
        client.reconnect_delay_set(self.config.reconnect_min_s, self.config.reconnect_max_s)  # type: ignore[arg-type]
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(0)  # never drop QoS>0 publishes while disconnected
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_unrouted
        client.suppress_exceptions = True
        return client

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Route messages matching `topic_filter` to `handler`; subscribed now and on every reconnect."""

        def on_message(_client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
            self._dispatch(handler, msg)

        self._client.message_callback_add(topic_filter, on_message)
        with self._lock:
            self._subscriptions[topic_filter] = qos
        if self._connected.is_set():
            self._client.subscribe(topic_filter, qos=qos)

    def on_published(self, hook: PublishedHook) -> None:
        """Call `hook(mid)` when the broker has acknowledged a publish (use it to wake a poller)."""
        self._published_hooks.append(hook)

    def on_connection_change(self, hook: ConnectionHook) -> None:
        """Call `hook(connected)` on every connect and disconnect."""
        self._connection_hooks.append(hook)

    def on_burst_end(self, hook: BurstHook) -> None:
        """Call `hook()` on the network thread after each pass over received packets (with `bulk_read`,
        a burst of up to MAX_BURST messages; otherwise one): the place to commit and `ack_many`."""
        self._burst_hooks.append(hook)

    # ----- lifecycle -------------------------------------------------------------------------------
    def start(self, wait_s: float | None = 10.0) -> None:
        """Connect in the background (retrying with backoff); optionally wait for the first connect."""
        log.info("connecting to %s as %s", self.config.redacted_url(), self.client_id)
        if self._protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.config.session_expiry_s
            props.ReceiveMaximum = self._receive_maximum  # bounds unacked deliveries to us
            self._client.connect_async(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=self._clean_start,
                properties=props,
            )
        else:  # MQTT 3.1.1: the session persists (clean_session off) until the broker expires it
            self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()
        if wait_s is not None and not self._connected.wait(wait_s):
            raise RetryableError(f"no connection to {self.config.redacted_url()} within {wait_s} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish `offline` (if configured), flush what is in flight, and disconnect cleanly."""
        self._stopping = True
        if self.availability is not None and self._connected.is_set():
            info = self._client.publish(self.availability.topic, self.availability.offline, qos=1, retain=True)
            info.wait_for_publish(timeout_s)
        deadline = time.monotonic() + timeout_s
        while self._client._out_messages and time.monotonic() < deadline and self._connected.is_set():
            time.sleep(0.01)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        """True while a session with the broker is up."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected or `timeout_s` passes; returns whether connected."""
        return self._connected.wait(timeout_s)

    def pending_publishes(self) -> int:
        """QoS>0 publishes handed to paho and not yet acknowledged by the broker."""
        return len(self._client._out_messages)

    # ----- traffic ---------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> PublishHandle:
        """Queue a publish (kept in memory and sent on reconnect if the link is down).

        The returned handle says when the broker has acknowledged it; poll `is_published()` rather
        than mapping mids in a hook, because the ack can arrive before `publish` returns.
        """
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise RetryableError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        return PublishHandle(info)

    def publish_and_wait(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False, timeout_s: float = 10.0
    ) -> None:
        """Publish and block until the broker acknowledged it; raise RetryableError on timeout."""
        if not self.publish(topic, payload, qos=qos, retain=retain).wait(timeout_s):
            raise RetryableError(f"publish to {topic} not acknowledged within {timeout_s} s")

    def ack(self, message: InboundMessage) -> None:
        """Acknowledge a message received with manual_ack (no-op for QoS 0)."""
        if self.manual_ack and message.qos > 0:
            self._client.ack(message.mid, message.qos)

    def ack_many(self, messages: Iterable[InboundMessage]) -> None:
        """Acknowledge several manual-ack messages in one socket write (a consumer's group commit).

        paho queues, wakes its loop and sends one packet per `ack`; here the QoS 1 PUBACKs are
        concatenated into one buffer, which the broker reads as the same sequence of packets.
        """
        if not self.manual_ack:
            return
        pubacks = []
        for message in messages:
            if message.qos == 1:
                pubacks.append(struct.pack("!BBH", mqtt.PUBACK, 2, message.mid))
            elif message.qos == 2:
                self._client.ack(message.mid, 2)
        if pubacks:
            self._client._packet_queue(mqtt.PUBACK, b"".join(pubacks), 0, 0)

    # ----- paho callbacks (network thread) ---------------------------------------------------------
    def _dispatch(self, handler: Handler, msg: mqtt.MQTTMessage) -> None:
        inbound = InboundMessage(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid, dup=bool(msg.dup))
        try:
            handler(inbound)
        except Exception:  # a handler bug must not kill the network thread
            log.exception("handler for %s failed; message left unacknowledged", msg.topic)

    def _burst_end(self) -> None:
        for hook in self._burst_hooks:
            try:
                hook()
            except Exception:  # like a handler's: logged, and the network thread keeps running
                log.exception("burst hook failed")

    def _on_unrouted(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        log.debug("no handler for %s", msg.topic)
        if self.manual_ack and msg.qos > 0:
            self._client.ack(msg.mid, msg.qos)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker %s refused connection: %s", self.config.redacted_url(), reason)
            return
        _no_delay(client)
        with self._lock:
            filters = [(topic, qos) for topic, qos in self._subscriptions.items()]
        if filters:
            client.subscribe(filters)
        if self.availability is not None:
            client.publish(self.availability.topic, self.availability.online, qos=1, retain=True)
        self._connected.set()
        log.info("connected to %s (session present: %s)", self.config.redacted_url(), flags.session_present)
        self._notify_connection(True)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stopping:
            log.warning("disconnected from %s: %s; reconnecting", self.config.redacted_url(), reason)
            self._notify_connection(False)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: object, mid: int, _reason: ReasonCode, _props: Properties
    ) -> None:
        for hook in self._published_hooks:
            try:
                hook(mid)
            except Exception:
                log.exception("published-hook failed for mid %s", mid)

    def _notify_connection(self, connected: bool) -> None:
        for hook in self._connection_hooks:
            try:
                hook(connected)
            except Exception:
                log.exception("connection hook failed")


def _no_delay(client: mqtt.Client) -> None:
    """Switch Nagle's algorithm off: small packets (acks, alerts) otherwise wait ~40 ms for a delayed ACK."""
    sock = client.socket()
    sock = getattr(sock, "raw", sock)  # under a _BufferedSocket
    try:
        if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a websocket wrapper): leave it
        log.debug("could not set TCP_NODELAY")
